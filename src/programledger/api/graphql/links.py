"""Links between entities (a risk's program, a milestone's dependencies, a resource's
allocations...), read for every parent of one answer at once.

Each link is a :class:`Link`: a read model's batch query (``*_by_id``, ``*_of_programs``,
``*_of_resources``) behind one DataLoader per request. The link fields of the objects of
one level resolve together, so the loader collects their keys and runs its query once:
a page of 1 or 500 risks reaches their programs in one statement, and a nested path
costs one statement per link, not per parent.

A link reads as of the moment its parent was read (each object carries the position it
was read at, ``at``; ``None`` for current rows), so a nested answer shows one moment: the
loader's keys carry that position, and a batch holding several positions reads each in
a statement of its own.

The loaders do not cache (``cache=False``): a WebSocket's context lives as long as its
connection, and a cached row would outlive the moment it was read at. Batching needs no
cache; a key asked for twice in one batch is read once.

A program's own nested lists (risks, milestones...) are read differently, by looking
ahead in the operation (see :mod:`programs`); a program reached through a link reads the
nested lists selected under the link with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from strawberry.dataloader import DataLoader

from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.reads import one_connection
from programledger.projections.engine.queries import Reader

__all__ = ["Link", "linked", "program_of"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Link(Generic[K, V]):
    """A link read in batches: ``read`` answers many keys at one position in one
    statement (or a fixed few), by key; a key it does not answer gets ``missing``."""

    def __init__(
        self,
        name: str,
        read: Callable[[Reader, Sequence[K], int | None], Awaitable[Mapping[K, V]]],
        missing: V,
    ) -> None:
        self.name = name
        self._read = read
        self._missing = missing

    def load(self, info: ApiInfo, at: int | None, key: K) -> Awaitable[V]:
        """What ``key`` links to, as of position ``at`` (``None``: now), read with the
        keys the other objects of this level ask for."""
        loaders = info.context.loaders
        loader = loaders.get(self.name)
        if loader is None:
            loader = loaders[self.name] = self._loader(info)
        found: Awaitable[V] = loader.load((at, key))
        return found

    def _loader(self, info: ApiInfo) -> DataLoader[tuple[int | None, K], V]:
        pool = info.context.services.pool

        async def batch(keys: list[tuple[int | None, K]]) -> list[V]:
            by_position: defaultdict[int | None, list[K]] = defaultdict(list)
            for at, key in keys:
                by_position[at].append(key)
            found: dict[tuple[int | None, K], V] = {}
            async with one_connection(pool) as reads:
                for at, wanted in by_position.items():
                    for key, value in (await self._read(reads, wanted, at)).items():
                        found[(at, key)] = value
            return [found.get(key, self._missing) for key in keys]

        return DataLoader(batch, cache=False)


def linked(what: str) -> str:
    """The description of a link field to ``what``."""
    return f"{what}, as of the same moment as this object (read for all of its level at once)."


def program_of(info: ApiInfo, at: int | None, program_id: Any) -> Awaitable[Any]:
    """The program ``program_id`` as of ``at``, with the nested lists the operation selects
    under this field (one statement each, for every program of the batch)."""
    # programs.py imports the feature modules whose objects link back to their program,
    # so the link reaches it at run time rather than at import.
    from programledger.api.graphql.programs import PROGRAM, nested_lists

    return PROGRAM.load(info, at, (frozenset(nested_lists(info)), program_id))
