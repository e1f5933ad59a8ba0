"""docs/architecture.md's layer table is the import-linter contract in prose: a newcomer
reads the table, CI checks the contract, and the two must not drift apart."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    assert layers["containers"] == ["programledger"]
    return list(layers["layers"])


def _documented_layers() -> list[str]:
    guide = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = guide.split("## Layers and imports", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| `([a-z_]+)(?:/|\.py)` \|", section, flags=re.MULTILINE)
    return cells


def test_the_layer_table_lists_the_contract_layers_in_order() -> None:
    assert _documented_layers() == _contract_layers()


def test_every_top_level_module_has_a_layer() -> None:
    package = ROOT / "src" / "programledger"
    modules = {
        p.stem if p.suffix == ".py" else p.name
        for p in package.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and not p.name.startswith("_")
    }
    layers = _contract_layers()
    assert modules <= set(layers), f"no layer for {sorted(modules - set(layers))}"
    for layer in layers:
        assert importlib.util.find_spec(f"programledger.{layer}") is not None, layer
