"""Importing a read model loads that model and the engine's core, not the machinery that
runs projections: a query path (or a tool that needs one row type) should not pay for the
runner, the rebuild or ``rich``, and the packages' ``__init__`` files hold no import
cycle that works only by import order.

Each import runs in a fresh interpreter, since this test process has loaded everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

READ_MODELS = ["programs", "milestones", "decisions", "risks", "allocations", "audit"]
NEVER_LOADED = [
    "rich",
    "programledger.projections.engine.runner",
    "programledger.projections.engine.rebuild",
    "programledger.projections.engine.status",
    "programledger.projections.registry",
]


def _loaded_after(statement: str) -> set[str]:
    probe = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("model", READ_MODELS)
def test_one_read_model_loads_neither_runner_nor_rebuild_nor_rich(model: str) -> None:
    loaded = _loaded_after(f"import programledger.projections.{model}")
    assert f"programledger.projections.{model}" in loaded
    assert loaded.isdisjoint(NEVER_LOADED), sorted(loaded.intersection(NEVER_LOADED))
    others = {f"programledger.projections.{m}" for m in READ_MODELS if m != model}
    assert loaded.isdisjoint(others), sorted(loaded.intersection(others))


@pytest.mark.parametrize(
    "package", ["programledger.projections", "programledger.projections.engine"]
)
def test_package_init_imports_nothing_of_its_own(package: str) -> None:
    loaded = _loaded_after(f"import {package}")
    mine = {m for m in loaded if m.startswith(f"{package}.")}
    assert mine <= {"programledger.projections.engine"}, sorted(mine)


@pytest.mark.parametrize(
    "module",
    [
        "programledger.projections.registry",
        "programledger.projections.engine.status",
        "programledger.projections.engine.rebuild",
        "programledger.projections.engine.runner",
        "programledger.projections.engine.rebuild_share",
    ],
)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Whichever module a process imports first, the imports resolve: no cycle."""
    assert module in _loaded_after(f"import {module}")
