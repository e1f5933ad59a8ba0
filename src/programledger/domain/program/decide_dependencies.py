"""``decide`` for a program's dependencies. Split from ``decide.py`` only to keep each
file readable; the program's lifecycle guard has already run when these are called."""

from __future__ import annotations

from programledger.domain._checks import Checks, require_item
from programledger.domain.errors import AlreadyExists, ValidationError
from programledger.domain.program.commands import (
    ChangeDependencyNeededBy,
    ClearDependencyRisk,
    FlagDependencyAtRisk,
    ProgramCommand,
    RegisterDependency,
    ReopenDependency,
    ResolveDependency,
)
from programledger.domain.program.events import (
    DependencyFlaggedAtRisk,
    DependencyNeededByChanged,
    DependencyRegistered,
    DependencyReopened,
    DependencyResolved,
    DependencyRiskCleared,
)
from programledger.domain.program.state import (
    Dependency,
    DependencyStatus,
    ExternalTarget,
    ItemKind,
    ItemRef,
    Program,
    ProgramItemTarget,
    find,
    within,
)

__all__ = [
    "DEPENDENCY_LIFECYCLE",
    "change_needed_by",
    "clear_dependency_risk",
    "flag_dependency",
    "register_dependency",
    "reopen_dependency",
    "resolve_dependency",
]

_DS = DependencyStatus
DEPENDENCY_LIFECYCLE: dict[type[ProgramCommand], frozenset[DependencyStatus]] = {
    ChangeDependencyNeededBy: frozenset({_DS.OPEN, _DS.AT_RISK}),
    FlagDependencyAtRisk: frozenset({_DS.OPEN}),
    ClearDependencyRisk: frozenset({_DS.AT_RISK}),
    ResolveDependency: frozenset({_DS.OPEN, _DS.AT_RISK}),
    ReopenDependency: frozenset({_DS.RESOLVED}),
}
"""Command on a dependency -> the dependency statuses it is allowed in. A resolved
dependency changes only by being reopened."""


def register_dependency(state: Program, c: RegisterDependency) -> DependencyRegistered:
    checks = Checks()
    checks.line("title", c.title)
    checks.optional_text("description", c.description)
    checks.day("needed_by", c.needed_by)
    _require_item(state, c.dependent, "dependent", checks)
    match c.depends_on:
        case ExternalTarget(party=party, contact=contact):
            checks.line("depends_on.party", party)
            checks.optional_line("depends_on.contact", contact)
        case ProgramItemTarget(program_id=state.program_id, kind=kind, item_id=item_id):
            target = ItemRef(kind=kind, item_id=item_id)
            _require_item(state, target, "depends_on", checks)
            if target == c.dependent:
                checks.fail("depends_on", "an item cannot depend on itself")
    checks.done()
    if find(state.dependencies, lambda d: d.dependency_id, c.dependency_id) is not None:
        raise AlreadyExists("dependency", c.dependency_id, within=within(state))
    return DependencyRegistered(
        program_id=c.program_id,
        dependency_id=c.dependency_id,
        title=c.title,
        description=c.description,
        dependent=c.dependent,
        depends_on=c.depends_on,
        needed_by=c.needed_by,
    )


def _require_item(state: Program, ref: ItemRef, path: str, checks: Checks) -> None:
    """Items of this program must exist; those of other programs live on other streams."""
    if ref.kind is ItemKind.WORKSTREAM:
        known = find(state.workstreams, lambda w: w.workstream_id, ref.item_id) is not None
    else:
        known = find(state.milestones, lambda m: m.milestone_id, ref.item_id) is not None
    if not known:
        checks.fail(
            f"{path}.item_id",
            f"{ref.kind.value.lower()} {ref.item_id} does not exist in {within(state)}",
        )


def _dependency(
    state: Program,
    c: ChangeDependencyNeededBy
    | FlagDependencyAtRisk
    | ClearDependencyRisk
    | ResolveDependency
    | ReopenDependency,
) -> Dependency:
    dependency = find(state.dependencies, lambda d: d.dependency_id, c.dependency_id)
    return require_item(
        "dependency", c.dependency_id, dependency, DEPENDENCY_LIFECYCLE, c, within(state)
    )


def change_needed_by(state: Program, c: ChangeDependencyNeededBy) -> DependencyNeededByChanged:
    checks = Checks()
    checks.day("needed_by", c.needed_by)
    checks.text("reason", c.reason)
    checks.done()
    dependency = _dependency(state, c)
    if dependency.needed_by == c.needed_by:
        raise ValidationError.single(
            "needed_by", f"the dependency is already needed by {c.needed_by}"
        )
    return DependencyNeededByChanged(
        program_id=c.program_id,
        dependency_id=c.dependency_id,
        needed_by=c.needed_by,
        reason=c.reason,
    )


def flag_dependency(state: Program, c: FlagDependencyAtRisk) -> DependencyFlaggedAtRisk:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _dependency(state, c)
    return DependencyFlaggedAtRisk(
        program_id=c.program_id, dependency_id=c.dependency_id, reason=c.reason
    )


def clear_dependency_risk(state: Program, c: ClearDependencyRisk) -> DependencyRiskCleared:
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    _dependency(state, c)
    return DependencyRiskCleared(
        program_id=c.program_id, dependency_id=c.dependency_id, reason=c.reason
    )


def resolve_dependency(state: Program, c: ResolveDependency) -> DependencyResolved:
    checks = Checks()
    checks.text("resolution", c.resolution)
    checks.done()
    _dependency(state, c)
    return DependencyResolved(
        program_id=c.program_id, dependency_id=c.dependency_id, resolution=c.resolution
    )


def reopen_dependency(state: Program, c: ReopenDependency) -> DependencyReopened:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _dependency(state, c)
    return DependencyReopened(
        program_id=c.program_id, dependency_id=c.dependency_id, reason=c.reason
    )
