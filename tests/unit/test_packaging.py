"""The package list in pyproject.toml names every package folder, and only those.

``package-dir`` maps ``projections/`` into ``programledger``, which rules out
``packages.find``: a package folder missing from the list would be left out of the wheel
and the editable install, and show only as an import error somewhere else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_and_every_listed_package_exists() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = config["package-dir"]
    assert package_dir == {"": "src", "programledger.projections": "projections"}

    found = {
        ".".join(init.parent.relative_to(ROOT / "src").parts)
        for init in (ROOT / "src").rglob("__init__.py")
    } | {
        ".".join(("programledger", *init.parent.relative_to(ROOT).parts))
        for init in (ROOT / "projections").rglob("__init__.py")
    }
    listed = set(config["packages"])
    assert not found - listed, (
        f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    )
    assert not listed - found, f"listed, but no such package folder: {sorted(listed - found)}"
