"""``programledger run`` on the embedded default: starts, serves HTTP, stops cleanly, keeps data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.servers import scratch_dir

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = "http://localhost:3000"
"""A single-page app in development, on an origin of its own."""
STOP_WITHIN = 60.0
"""Seconds a SIGTERM may take to stop the API, relay, projections and both servers."""


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMLEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PROGRAMLEDGER_DATA_DIR"] = str(data_dir)
    env["PROGRAMLEDGER_HTTP_PORT"] = "0"
    env["PROGRAMLEDGER_CORS_ORIGINS"] = FRONTEND
    return env


class Running:
    """``programledger run`` as a process; its log lines are read as they come, so a full
    pipe never blocks it. ``command`` and ``cwd`` let a test run another installation."""

    def __init__(
        self,
        env: Mapping[str, str],
        command: Sequence[str] = (sys.executable, "-m", "programledger", "run"),
        cwd: Path | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"{text!r} never appeared; output:\n{''.join(self.lines)}")

    def stop(self) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_WITHIN)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        return code, time.monotonic() - started


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "programledger", *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PROPOSE = """
mutation Propose($input: ProposeProgramInput!) {
  proposeProgram(input: $input) {
    __typename ... on CommandAccepted { position version projectionsCaughtUp }
  }
}
"""


def test_run_serves_http_on_embedded_servers_and_stops_cleanly_on_sigterm() -> None:
    data_dir = scratch_dir("programledger-run-")
    run = Running(_env(data_dir))
    up = run.wait_for("programledger is up")
    assert any("starting the embedded PostgreSQL" in line for line in run.lines)
    assert any("starting the embedded NATS" in line for line in run.lines)
    if os.geteuid() == 0:
        assert any("unprivileged system user 'programledger'" in line for line in run.lines)
    found = re.search(r"API (http://\S+/graphql)", up)
    assert found is not None, up
    graphql = found[1]

    token = _cli(data_dir, "mint-token", "--subject", "alice", "--role", "editor")
    assert token.returncode == 0, token.stderr
    auth = {"Authorization": f"Bearer {token.stdout.strip()}"}
    program_id = str(uuid.uuid4())
    proposal = {
        "programId": program_id,
        "code": "SMOKE-1",
        "name": "Smoke test",
        "objective": "Prove the all-in-one run",
        "sponsor": "Dana",
        "owner": "Tom",
        "priority": 3,
        "startDate": "2027-01-01",
        "targetEndDate": "2027-06-30",
        "plannedBudget": {"amountMinor": 100_000, "currency": "EUR"},
        "waitForProjections": True,
    }
    with httpx.Client(timeout=30) as http:
        accepted = http.post(
            graphql, json={"query": PROPOSE, "variables": {"input": proposal}}, headers=auth
        ).json()
        payload = accepted["data"]["proposeProgram"]
        assert payload["__typename"] == "ProposeProgramSuccess"
        assert payload["projectionsCaughtUp"] is True, "relay and projections run in-process"
        me = http.post(graphql, json={"query": "{ me { subject roles } }"}, headers=auth).json()
        assert me["data"]["me"] == {"subject": "alice", "roles": ["EDITOR"]}
        assert http.get(graphql.removesuffix("/graphql") + "/ready").status_code == 200
        preflight = http.options(
            graphql,
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == FRONTEND
        page = http.get(graphql, headers={"Accept": "text/html"})
        assert "/graphiql/graphiql-3.8.3/graphiql.min.js" in page.text

        # A second process on the same data directory uses the running PostgreSQL and
        # leaves it running: the next write still goes through.
        exported = _cli(data_dir, "export", "--program", "SMOKE-1")
        assert exported.returncode == 0, exported.stderr
        assert program_id in exported.stdout
        assert "leaving it running" in exported.stderr
        second = {**proposal, "programId": str(uuid.uuid4()), "code": "SMOKE-2"}
        again = http.post(
            graphql, json={"query": PROPOSE, "variables": {"input": second}}, headers=auth
        ).json()
        assert again["data"]["proposeProgram"]["__typename"] == "ProposeProgramSuccess", again

    code, took = run.stop()
    assert code == 0, "".join(run.lines[-20:])
    assert took < STOP_WITHIN
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "nats" / "nats-server.pid").exists()

    again_run = Running(_env(data_dir))
    again_run.wait_for("programledger is up")
    assert not any("applied migration" in line for line in again_run.lines), "data was not kept"
    assert again_run.stop()[0] == 0


def test_bad_configuration_exits_2_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMLEDGER_")}
    env["PROGRAMLEDGER_DATABASE_URL"] = "mysql://nowhere/x"
    result = subprocess.run(
        [sys.executable, "-m", "programledger", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "PROGRAMLEDGER_DATABASE_URL" in result.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists()


def _wait_until(check: Callable[[], bool], what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within}s")
        time.sleep(0.05)


def test_run_keeps_its_addresses_and_takes_its_servers_back_after_a_sigkill() -> None:
    """``running.json`` names the servers and their owner; a SIGKILLed ``run`` leaves them
    running, and the next ``run`` finds them where they were, takes them over and stops
    them on exit."""
    data_dir = scratch_dir("programledger-run-kill-")
    first = Running(_env(data_dir))
    first.wait_for("programledger is up")
    record = json.loads((data_dir / "running.json").read_text())
    assert record["pid"] == first.proc.pid
    status = _cli(data_dir, "status")
    assert status.returncode == 0, status.stderr
    for name in ("api", "postgres", "nats"):
        assert record[name] in status.stdout, status.stdout
    assert re.search(r"store id: [0-9a-f-]{36}", status.stdout), status.stdout
    assert "process: pid" in status.stdout
    assert "running" in status.stdout

    first.proc.kill()
    first.proc.wait(30)
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    nats_pid = int((data_dir / "nats" / "nats-server.pid").read_text().strip())
    assert _alive(postmaster), "the killed run's PostgreSQL outlives it"
    assert _alive(nats_pid), "the killed run's NATS outlives it"
    orphaned = _cli(data_dir, "status")
    assert orphaned.returncode == 1
    assert "gone (killed)" in orphaned.stdout

    second = Running(_env(data_dir))
    second.wait_for("programledger is up")
    assert any("taking over the embedded PostgreSQL" in line for line in second.lines)
    assert not any("leaving it running" in line for line in second.lines)
    again = json.loads((data_dir / "running.json").read_text())
    assert again["pid"] == second.proc.pid
    assert again["postgres"] == record["postgres"]
    assert again["nats"] == record["nats"], "NATS is back on its port"
    assert _alive(postmaster), "the same PostgreSQL serves on"

    code, _took = second.stop()
    assert code == 0, "".join(second.lines[-20:])
    _wait_until(lambda: not _alive(postmaster), "the taken-over PostgreSQL stopping")
    assert not _alive(nats_pid)
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "nats" / "nats-server.pid").exists()
    assert not (data_dir / "running.json").exists()
    stopped = _cli(data_dir, "status")
    assert stopped.returncode == 1
    assert "no programledger process runs embedded servers" in stopped.stdout
