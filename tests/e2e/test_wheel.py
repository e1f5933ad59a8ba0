"""The wheel is the product: built from the sources, installed in a fresh virtualenv outside
the checkout, ``programledger run`` serves GraphQL with the read models in it.

``projections/`` reaches ``programledger.projections`` only through the ``package-dir``
mapping in pyproject.toml, so a test run from the checkout (through the editable install)
cannot show that the wheel holds it; this one runs nothing from the checkout. The
dependencies come from the package index pip is configured with, pinned to the versions
this test environment runs, so pip takes them from its cache where it can.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
import pytest_asyncio

from tests.e2e.test_cli_run import PROPOSE, Running
from tests.support.relay_process import delete_stream
from tests.support.servers import scratch_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)
"""Left out of the copy the wheel is built from: environments, caches and earlier builds
(a stale ``build/lib`` would otherwise end up in the wheel)."""

PROGRAMS = "{ programs(first: 10) { totalCount nodes { code name } } }"


def _check(*command: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _pins() -> str:
    """This environment's distributions as ``name==version`` lines, itself left out."""
    found = {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }
    found.pop("programledger", None)
    return "".join(f"{name}=={version}\n" for name, version in sorted(found.items()))


def _install_wheel(work: Path) -> Path:
    """Build the wheel from a copy of the sources and install it into ``work/venv``."""
    sources = work / "sources"
    shutil.copytree(ROOT, sources, ignore=NOT_SOURCES)
    dist = work / "dist"
    _check(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, sources)
    [wheel] = dist.glob("programledger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "programledger/projections/__init__.py",
        "programledger/projections/risks.py",
        "programledger/projections/registry.py",
        "programledger/projections/engine/runner.py",
        "programledger/adapters/postgres/migrations/0001_event_store.sql",
        "programledger/py.typed",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert not any(name.startswith("projections/") for name in names), "a top-level projections"

    venv = work / "venv"
    _check(sys.executable, "-m", "venv", "--without-pip", venv)
    pins = work / "pins.txt"
    pins.write_text(_pins())
    python = venv / "bin" / "python"
    _check(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "-c", pins, wheel)
    return venv


@pytest_asyncio.fixture
async def stream_prefix(nats_url: str, subject_prefix: str) -> AsyncIterator[str]:
    yield subject_prefix
    nc = await nats.connect(nats_url)
    try:
        await delete_stream(nc.jetstream(), subject_prefix)
    finally:
        await nc.close()


async def test_the_wheel_installed_outside_the_checkout_runs_and_answers_a_query(
    pg_url: str, nats_url: str, schema: str, stream_prefix: str
) -> None:
    work = scratch_dir("programledger-wheel-")
    try:
        venv = await asyncio.to_thread(_install_wheel, work)
        elsewhere = work / "elsewhere"
        elsewhere.mkdir()
        located = await asyncio.to_thread(
            _check,
            venv / "bin" / "python",
            "-c",
            "import programledger.projections.risks as m; print(m.__file__)",
            cwd=elsewhere,
        )
        assert Path(located.strip()).is_relative_to(venv), located

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PROGRAMLEDGER_") and k != "PYTHONPATH"
        }
        env |= {
            "PROGRAMLEDGER_DATABASE_URL": pg_url,
            "PROGRAMLEDGER_SCHEMA": schema,
            "PROGRAMLEDGER_NATS_URL": nats_url,
            "PROGRAMLEDGER_SUBJECT_PREFIX": stream_prefix,
            "PROGRAMLEDGER_HTTP_PORT": "0",
            "PROGRAMLEDGER_DATA_DIR": str(work / "data"),
        }
        programledger = str(venv / "bin" / "programledger")
        run = Running(env, command=(programledger, "run"), cwd=elsewhere)
        try:
            up = await asyncio.to_thread(run.wait_for, "programledger is up")
            found = re.search(r"API (http://\S+/graphql)", up)
            assert found is not None, up
            graphql = found[1]

            token = await asyncio.to_thread(
                subprocess.run,
                [programledger, "mint-token", "--subject", "alice", "--role", "editor"],
                env=env,
                cwd=elsewhere,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert token.returncode == 0, token.stderr
            auth = {"Authorization": f"Bearer {token.stdout.strip()}"}
            proposal = {
                "programId": str(uuid.uuid4()),
                "code": "WHEEL-1",
                "name": "Installed from the wheel",
                "objective": "Prove the wheel holds the read side",
                "sponsor": "Dana",
                "owner": "Tom",
                "priority": 3,
                "startDate": "2027-01-01",
                "targetEndDate": "2027-06-30",
                "plannedBudget": {"amountMinor": 100_000, "currency": "EUR"},
                "waitForProjections": True,
            }
            async with httpx.AsyncClient(timeout=30) as http:
                accepted = (
                    await http.post(
                        graphql,
                        json={"query": PROPOSE, "variables": {"input": proposal}},
                        headers=auth,
                    )
                ).json()
                payload = accepted["data"]["proposeProgram"]
                assert payload["__typename"] == "ProposeProgramSuccess", accepted
                assert payload["projectionsCaughtUp"] is True, accepted
                listed = (await http.post(graphql, json={"query": PROGRAMS}, headers=auth)).json()
            assert listed == {
                "data": {
                    "programs": {
                        "totalCount": 1,
                        "nodes": [{"code": "WHEEL-1", "name": "Installed from the wheel"}],
                    }
                }
            }
        finally:
            code, _ = await asyncio.to_thread(run.stop)
        assert code == 0, "".join(run.lines[-20:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
