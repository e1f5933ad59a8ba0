"""GraphiQL served by the API itself: its page, and React, GraphiQL and the explorer plugin.

Strawberry's page loads them from a public CDN, so on a closed network (where auditors
often work) it stays blank. Here the same files, unchanged from the npm registry (see
``assets/graphiql/README.md``), ship in the wheel and are served under
:data:`GRAPHIQL_ASSETS_PATH`; the page names no other host. The files are public and
carry no data, so they are served without a token, as the page itself is.
"""

from __future__ import annotations

import functools
from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

__all__ = ["GRAPHIQL_ASSETS_PATH", "graphiql_assets", "graphiql_page"]

GRAPHIQL_ASSETS_PATH = "/graphiql"
_ASSETS = Path(__file__).parent / "assets"


@functools.cache
def graphiql_page() -> str:
    """The HTML of the GraphiQL page, with the assets' URLs on this server."""
    template = (_ASSETS / "graphiql.html").read_text(encoding="utf-8")
    return template.replace("{{assets}}", GRAPHIQL_ASSETS_PATH)


def graphiql_assets() -> Router:
    """The route serving the assets. Each file's folder names its version, so a file at a
    URL never changes and browsers may keep it a year."""
    return create_static_files_router(
        path=GRAPHIQL_ASSETS_PATH,
        directories=[_ASSETS / "graphiql"],
        name="graphiql-assets",
        cache_control=CacheControlHeader(max_age=365 * 86_400, public=True),
        opt={"exclude_from_auth": True},
        include_in_schema=False,
    )
