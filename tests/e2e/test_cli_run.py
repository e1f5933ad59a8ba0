"""``programledger run`` on the embedded default: starts, serves, stops cleanly, keeps data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import scratch_dir

pytestmark = pytest.mark.embedded


def _start(data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMLEDGER_")}
    env["PROGRAMLEDGER_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "programledger", "run"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 90) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f"{text!r} never appeared; output:\n{''.join(lines)}")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_starts_embedded_servers_and_stops_cleanly_on_sigterm() -> None:
    data_dir = scratch_dir("programledger-run-")
    proc = _start(data_dir)
    lines = _wait_for(proc, "programledger is up")
    assert any("starting the embedded PostgreSQL" in line for line in lines)
    assert any("starting the embedded NATS" in line for line in lines)
    assert _stop(proc) == 0
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    again = _start(data_dir)
    lines = _wait_for(again, "programledger is up")
    assert not any("applied migration" in line for line in lines), "data was not kept"
    assert _stop(again) == 0


def test_bad_configuration_exits_2_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMLEDGER_")}
    env["PROGRAMLEDGER_DATABASE_URL"] = "mysql://nowhere/x"
    result = subprocess.run(
        [sys.executable, "-m", "programledger", "run"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "PROGRAMLEDGER_DATABASE_URL" in result.stderr
