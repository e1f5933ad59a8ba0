"""The cost of an event on disk: bytes per event by table and index.

Loads ``--events`` generated events of every kind (programs, milestones, budgets, risks,
resources and allocations, as ``bench/projections.py`` writes them) with COPY, rebuilds
every read model from them, and reports each table and index of the schema divided by
the number of events (``programledger.adapters.postgres.sizes``). ``--schema`` reports an
existing store instead (nothing is generated or changed). ``--write-docs`` writes the
report to ``docs/storage.md``.

Run: ``.venv/bin/python bench/storage.py [--events 100000] [--write-docs]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv (the strict editable
# install links the working tree's code): reach bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio

from bench._common import drop_schemas, fresh_schema_name, positive_int, postgres_url
from bench.projections import _store, load_store, readable
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.sizes import StorageReport, storage_report
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.registry import PROJECTIONS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "storage.md"

_PREAMBLE = """# Storage: what an event costs

Written by `bench/storage.py --write-docs` (do not edit by hand): {events:,} generated
events of every kind (programs with milestones, budgets and health reports, risks,
resources and allocations, in the mix `bench/projections.py` writes), loaded into the
event store and every read model rebuilt from them. Each table's size includes its TOAST
data; indexes are listed under their table. Sizes right after a rebuild: a live read
model also holds the dead row versions its updates leave until a vacuum.

Reproduce on any store with `bench/storage.py --schema <schema>` (reads the catalogue
only), or from Python with `programledger.adapters.postgres.sizes.storage_report`.

```
"""


def markdown(report: StorageReport) -> str:
    return _PREAMBLE.format(events=report.events) + "\n".join(report.lines()) + "\n```\n"


async def generated(url: str, events: int) -> StorageReport:
    schema = fresh_schema_name("storage")
    try:
        await load_store(url, schema, events)
        store = await _store(url, schema)
        try:
            await readable(store, events)
            for name in PROJECTIONS:
                await rebuild(store.pool, store, name, progress=False)
            return await storage_report(store.pool, schema)
        finally:
            await store.pool.close()
    finally:
        await drop_schemas(url, [schema])


async def existing(url: str, schema: str) -> StorageReport:
    pool = await create_pool(url, schema, min_size=1, max_size=1)
    try:
        return await storage_report(pool, schema)
    finally:
        await pool.close()


async def main(args: argparse.Namespace) -> None:
    with postgres_url(args.database_url) as (url, _):
        if args.schema:
            report = await existing(url, args.schema)
        else:
            report = await generated(url, args.events)
    print("\n".join(report.lines()))
    if args.write_docs:
        DOCS.write_text(markdown(report))
        print(f"wrote {DOCS}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--events", type=positive_int, default=100_000)
    parser.add_argument("--schema", default=None, help="report this store; generate nothing")
    parser.add_argument("--write-docs", action="store_true", help="write docs/storage.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
