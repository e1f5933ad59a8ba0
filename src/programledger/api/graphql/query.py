"""The ``Query`` root: the read models as a frontend and an auditor read them.

Each read model has one GraphQL module (its types, filters, sorts, resolvers and nested
loaders) defining a ``<Feature>Queries`` type, and the root inherits them all: a new
feature adds its module and one base class here. What they share (arguments, paging,
connections, role checks) is in :mod:`reads` and :mod:`connections`.

Every list and object comes from the projections' query functions (PostgreSQL read
models), never from replaying the event store, so a dashboard costs index lookups; the
exceptions are ``history`` and ``verifyIntegrity``, which exist to read the event store
itself. Lists are Relay connections with keyset cursors; nested lists of a program are
batched, so a page of programs costs the same statements for 1 or 50.

Permissions: the read models, now or as of a moment (``asOf``, ``asOfPosition``,
``knownAt``), need READ (every role): a "last week" view is a frontend feature. The audit
trail, history and integrity checks need AUDIT (auditor or admin), and are nullable, so a
refusal is a ``FORBIDDEN`` error entry beside the rest of the answer.
``projectionStatus`` needs READ only, because a frontend shows "data as of ..." banners
from it; it exposes no business data.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from programledger.api.auth import Capability, Role
from programledger.api.graphql.allocations import AllocationQueries
from programledger.api.graphql.audit import AuditQueries
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.decisions import DecisionQueries
from programledger.api.graphql.feed import FeedQueries
from programledger.api.graphql.integrity import IntegrityQueries
from programledger.api.graphql.milestones import MilestoneQueries
from programledger.api.graphql.nodes import NodeQueries
from programledger.api.graphql.objectives import ObjectiveQueries
from programledger.api.graphql.parts import PartQueries
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.portfolios import PortfolioQueries
from programledger.api.graphql.programs import ProgramQueries
from programledger.api.graphql.raid import RaidQueries
from programledger.api.graphql.risks import RiskQueries
from programledger.api.graphql.scenarios import ScenarioQueries
from programledger.api.graphql.schedule import ScheduleQueries
from programledger.api.graphql.staffing import StaffingQueries
from programledger.api.graphql.status import StatusQueries
from programledger.api.graphql.status_reports import StatusReportQueries
from programledger.api.graphql.webhooks import WebhookQueries

__all__ = ["Me", "MeQueries", "Query"]


@strawberry.type(description="The caller, as the bearer token says.")
class Me:
    subject: str = strawberry.field(description="Written as the actor of every command.")
    roles: list[Role]
    expires_at: datetime


def _me(info: ApiInfo) -> Me:
    identity = info.context.identity
    assert identity is not None  # the READ permission ran first
    return Me(
        subject=identity.subject, roles=sorted(identity.roles), expires_at=identity.expires_at
    )


@strawberry.type
class MeQueries:
    me: Me = strawberry.field(resolver=_me, extensions=[allowed(Capability.READ)])


@strawberry.type
class Query(
    MeQueries,
    ProgramQueries,
    PartQueries,
    RiskQueries,
    RaidQueries,
    MilestoneQueries,
    DecisionQueries,
    AllocationQueries,
    StaffingQueries,
    AuditQueries,
    StatusQueries,
    IntegrityQueries,
    ScheduleQueries,
    PortfolioQueries,
    ObjectiveQueries,
    StatusReportQueries,
    ScenarioQueries,
    NodeQueries,
    FeedQueries,
    WebhookQueries,
):
    """The fields of every ``<Feature>Queries``, in the order of the bases."""
