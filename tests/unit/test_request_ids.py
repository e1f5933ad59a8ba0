"""One request-id mechanism: drawn by ``new_request_id``, bound by ``log_context``."""

from __future__ import annotations

import io
import json
import logging
import uuid

from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from programledger.api.metrics import ApiMetrics
from programledger.api.request_ids import (
    REQUEST_ID_HEADER,
    RequestContextMiddleware,
    add_request_id_header,
)
from programledger.logging import configure_logging, log_context, new_request_id

log = logging.getLogger("programledger.test.request_ids")


@get("/work", sync_to_thread=False)
def work() -> str:
    log.info("working")
    return "done"


def _app() -> Litestar:
    return Litestar(
        route_handlers=[work],
        middleware=[RequestContextMiddleware(ApiMetrics())],
        before_send=[add_request_id_header],
        logging_config=None,  # as the API's app: the process's logging stays as configured
    )


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_drawn_request_id_is_a_uuid() -> None:
    drawn = new_request_id()
    assert str(uuid.UUID(drawn)) == drawn
    assert new_request_id() != drawn


def test_log_context_puts_the_id_on_standard_library_lines() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    try:
        with log_context(request_id="cli-1", command="demo"):
            log.info("inside")
        log.info("outside")
    finally:
        configure_logging("WARNING", "console", io.StringIO())
    inside, outside = _lines(out)
    assert (inside["request_id"], inside["command"]) == ("cli-1", "demo")
    assert "request_id" not in outside


async def test_an_api_request_logs_with_the_id_it_answers_with() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    try:
        async with AsyncTestClient(_app()) as client:
            drawn = await client.get("/work")
            given = await client.get("/work", headers={REQUEST_ID_HEADER: "frontend-7"})
            refused = await client.get("/work", headers={REQUEST_ID_HEADER: "two words"})
    finally:
        configure_logging("WARNING", "console", io.StringIO())
    ids = [r.headers[REQUEST_ID_HEADER] for r in (drawn, given, refused)]
    assert str(uuid.UUID(ids[0])) == ids[0]
    assert ids[1] == "frontend-7"
    assert ids[2] != "two words"
    assert str(uuid.UUID(ids[2])) == ids[2]
    lines = _lines(out)
    for request_id in ids:
        # The handler's line and the access line both carry the id the client got.
        mine = [line for line in lines if line.get("request_id") == request_id]
        assert next(line["message"] for line in mine) == "working"
        assert any(str(line["message"]).startswith("GET /work -> 200") for line in mine)
