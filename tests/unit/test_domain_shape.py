"""The domain's structure: every module imports on its own, and every aggregate has the
same shape, so adding an event is the same edits on each of them (docs/architecture.md)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

from programledger import domain

AGGREGATES = (
    domain.program,
    domain.risk,
    domain.resource,
    domain.schedule,
    domain.portfolio,
    domain.objective,
    domain.assumption,
    domain.issue,
)
SHAPE = ("commands", "events", "state", "decide", "evolve")


def _domain_modules() -> list[str]:
    walked = pkgutil.walk_packages(domain.__path__, f"{domain.__name__}.")
    return [domain.__name__, *sorted(info.name for info in walked)]


@pytest.mark.parametrize("module", _domain_modules())
def test_each_domain_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """A cycle through a package ``__init__`` shows only when the module is the first one
    imported, so each gets an interpreter of its own."""
    result = subprocess.run(
        [sys.executable, "-c", f"import importlib; importlib.import_module({module!r})"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("aggregate", AGGREGATES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_aggregate_has_the_same_files(aggregate: ModuleType) -> None:
    for part in SHAPE:
        importlib.import_module(f"{aggregate.__name__}.{part}")
    for name in ("decide", "evolve", "fold"):
        assert callable(getattr(aggregate, name)), name
        assert name in aggregate.__all__


@pytest.mark.parametrize("aggregate", AGGREGATES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_an_aggregate_package_exports_what_its_modules_export(aggregate: ModuleType) -> None:
    """Every public name of the aggregate's commands, events and state is importable from
    the package, so callers never reach into its modules."""
    exported = set(aggregate.__all__)
    for part in ("commands", "events"):
        module = importlib.import_module(f"{aggregate.__name__}.{part}")
        assert set(module.__all__) <= exported, part
    for name in aggregate.__all__:
        assert hasattr(aggregate, name), name
