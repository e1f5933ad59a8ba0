"""Every read model the system keeps, by name: what runners, rebuilds and the API share."""

from __future__ import annotations

from programledger.projections import (
    allocations,
    audit,
    decisions,
    milestones,
    portfolios,
    programs,
    raid,
    risks,
    scenarios,
    schedule,
    status_reports,
)
from programledger.projections.engine.core import Projection

__all__ = ["PROJECTIONS", "get_projection"]

PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        programs.PROJECTION,
        milestones.PROJECTION,
        decisions.PROJECTION,
        risks.PROJECTION,
        raid.PROJECTION,
        allocations.PROJECTION,
        audit.PROJECTION,
        schedule.PROJECTION,
        status_reports.PROJECTION,
        scenarios.PROJECTION,
        portfolios.PROJECTION,
    )
}


def get_projection(name: str) -> Projection:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise KeyError(
            f"no projection named {name!r}; the projections are {', '.join(PROJECTIONS)}"
        ) from None
