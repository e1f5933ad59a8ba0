"""The committed event catalogue and stream definition are what the code generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from programledger.adapters.nats.catalogue import (
    asyncapi_document,
    event_schema,
    event_schema_files,
    render,
    stream_definition,
    write_event_schemas,
)
from programledger.adapters.nats.envelope import subject_for
from programledger.adapters.nats.stream import StreamSettings
from programledger.application.registry import application_registry
from tests.support.events import Renamed, store_test_registry

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate with: programledger schema (at the repository root)"


def test_committed_event_schemas_match_the_code() -> None:
    expected = event_schema_files(application_registry())
    folder = ROOT / "docs" / "schemas"
    committed = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.json")}
    assert sorted(committed) == sorted(expected), f"schema files differ; {REGENERATE}"
    drifted = [name for name, text in expected.items() if committed[name] != text]
    assert not drifted, f"{drifted} differ from the code; {REGENERATE}"


def test_committed_asyncapi_matches_the_code() -> None:
    committed = (ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8")
    assert committed == render(asyncapi_document(application_registry())), REGENERATE


def test_committed_stream_definition_matches_the_code() -> None:
    path = ROOT / "infra" / "nats" / "stream.json"
    assert path.read_text(encoding="utf-8") == render(stream_definition()), REGENERATE
    settings = StreamSettings.from_file(path, prefix="acme")
    assert (settings.replicas, settings.duplicate_window) == (3, 120.0)
    assert settings.subjects == ["acme.>"]


def test_every_domain_event_type_can_be_a_subject_token() -> None:
    for name in application_registry().names():
        assert subject_for("programledger", None, "program", name).endswith(f".{name}")


def test_an_event_schema_names_its_type_and_version() -> None:
    schema = event_schema(Renamed)
    assert (schema["title"], schema["x-schema-version"]) == ("TestRenamed", 2)
    assert schema["required"] == ["first", "last"]
    assert schema["description"].startswith("At schema version 2")


def test_write_event_schemas_removes_stale_files(tmp_path: Path) -> None:
    (tmp_path / "Gone.json").write_text("{}", encoding="utf-8")
    written = write_event_schemas(store_test_registry(), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(p.name for p in written)
    assert json.loads((tmp_path / "TestNoted.json").read_text())["x-event-type"] == "TestNoted"


def test_asyncapi_has_a_channel_per_event_type() -> None:
    document = asyncapi_document(store_test_registry(), prefix="acme")
    assert document["asyncapi"] == "3.0.0"
    assert sorted(document["channels"]) == ["TestNoted", "TestRenamed"]
    assert document["channels"]["TestNoted"]["address"] == (
        "{prefix}.{programId}.{streamType}.TestNoted"
    )
    assert document["components"]["parameters"]["prefix"]["default"] == "acme"


@pytest.mark.parametrize("name", ["TestNoted", "TestRenamed"])
def test_asyncapi_references_resolve(name: str) -> None:
    document = asyncapi_document(store_test_registry())

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document["channels"][name]) + refs(document["components"]):
        target: object = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict)
            target = target[part]
