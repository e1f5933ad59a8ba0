"""A worker process of a rebuild in shares (see ``rebuild``): ``python -m
programledger.projections.engine.rebuild_share`` reads its task (JSON) on stdin and reports on
stdout, a JSON line at a time, until ``done``.

A module of its own, run as a program, so that starting a worker imports only what a
rebuild needs, never the caller's ``__main__``; and, being a process's entry point, it
builds the process's event registry, as ``bootstrap`` does for the others.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

from programledger.application.registry import application_registry
from programledger.projections.engine.rebuild import ShareReport, ShareTask, run_share

_encoder = msgspec.json.Encoder()


def _report(report: ShareReport) -> None:
    sys.stdout.buffer.write(_encoder.encode(report) + b"\n")
    sys.stdout.buffer.flush()


def main() -> None:
    task = msgspec.json.decode(sys.stdin.buffer.read(), type=ShareTask)
    try:
        asyncio.run(run_share(task, application_registry(), _report))
    except Exception as exc:
        _report(ShareReport("error", error=f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
