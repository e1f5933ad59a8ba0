"""The read models' progress in GraphQL: ``projectionStatus``, for "data as of ..."
banners. It needs READ only: it exposes no business data."""

from __future__ import annotations

from datetime import datetime

import strawberry

from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.reads import reader
from programledger.api.graphql.types import SafeInt
from programledger.projections.engine.status import ProjectionStatus, projection_status

__all__ = ["ProjectionStatusType", "StatusQueries"]


@strawberry.type(name="ProjectionStatus", description="A read model's progress and health.")
class ProjectionStatusType:
    name: str
    state: str = strawberry.field(description="idle, running, stopped or failed.")
    position: SafeInt
    head_position: SafeInt
    lag_positions: SafeInt
    lag_seconds: float
    events_applied: SafeInt
    error: str | None
    failed_position: SafeInt | None
    failed_event_type: str | None
    updated_at: datetime | None

    @staticmethod
    def of(s: ProjectionStatus) -> ProjectionStatusType:
        return ProjectionStatusType(
            name=s.name,
            state=s.state,
            position=SafeInt(s.position),
            head_position=SafeInt(s.head_position),
            lag_positions=SafeInt(s.lag_positions),
            lag_seconds=s.lag_seconds,
            events_applied=SafeInt(s.events_applied),
            error=s.error,
            failed_position=None if s.failed_position is None else SafeInt(s.failed_position),
            failed_event_type=s.failed_event_type,
            updated_at=s.updated_at,
        )


async def _projection_status(info: ApiInfo) -> list[ProjectionStatusType]:
    found = await projection_status(info.context.services.pool)
    return [ProjectionStatusType.of(s) for s in found]


@strawberry.type
class StatusQueries:
    projection_status: list[ProjectionStatusType] = strawberry.field(
        resolver=_projection_status,
        extensions=reader(),
        description="Each read model's position and lag (for 'data as of' banners).",
    )
