"""GraphiQL works on a closed network: the API serves its page and every asset the page
loads, the page names no other host, and Chromium renders the editor with every other host
unreachable. Production turns GraphiQL and introspection off unless enabled."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from graphql import get_introspection_query

from programledger.api import ApiLimits
from tests.e2e.browser import chromium, needs_chromium
from tests.e2e.conftest import Api, ApiFactory

if TYPE_CHECKING:
    from playwright.async_api import Route

HTML = {"Accept": "text/html"}


class _References(HTMLParser):
    """Every URL the page loads: scripts, stylesheets, icons, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str | None]] = []
        """(kind, URL, integrity)"""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") or values.get("href")
        if url is not None:
            self.found.append((tag, url, values.get("integrity")))


async def test_the_graphiql_page_loads_only_from_the_api_itself(api: Api) -> None:
    page = await api.http.get("/graphql", headers=HTML)
    references = _References()
    references.feed(page.text)
    assets = [(tag, url, integrity) for tag, url, integrity in references.found if url != "data:,"]

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert {tag for tag, _, _ in assets} == {"script", "link"}
    assert len(assets) == 6
    for tag, url, integrity in assets:
        assert url.startswith("/graphiql/"), url
        answer = await api.http.get(url)
        assert answer.status_code == 200, url
        expected = "text/javascript" if tag == "script" else "text/css"
        assert answer.headers["content-type"].startswith(expected), (url, answer.headers)
        digest = base64.b64encode(hashlib.sha384(answer.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url  # the npm registry's file, unchanged


@needs_chromium
async def test_chromium_renders_graphiql_with_every_other_host_unreachable(api: Api) -> None:
    elsewhere: list[str] = []

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost", "::1"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    async with chromium() as browser:
        page = await browser.new_page()
        await page.route("**/*", loopback_only)
        failed: list[str] = []
        page.on("pageerror", lambda error: failed.append(str(error)))
        await page.goto(api.base_url + "/graphql")
        editor = await page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=20_000)
        assert editor is not None
        text = await editor.inner_text()

    assert "me { subject roles expiresAt }" in text
    assert elsewhere == []
    assert failed == []


async def test_without_graphiql_and_introspection_neither_is_served(
    api_with: ApiFactory,
) -> None:
    async with api_with(graphiql=False, limits=ApiLimits(introspection=False)) as api:
        page = await api.http.get("/graphql", headers=HTML)
        asset = await api.http.get("/graphiql/react-18.2.0/react.production.min.js")
        introspection = (await api.post(get_introspection_query())).json()
        typename = (await api.post("{ __typename }")).json()

    assert "graphiql" not in page.text.lower()
    assert asset.status_code == 404
    assert "data" not in introspection
    assert "introspection" in introspection["errors"][0]["message"]
    assert typename == {"data": {"__typename": "Query"}}
