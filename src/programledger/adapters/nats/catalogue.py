"""The event catalogue for downstream teams, generated from the code that produces events.

- ``docs/schemas/<EventType>.json``: a JSON Schema (2020-12) per event type, from its
  msgspec Struct, plus ``EventEnvelope.json`` for the payload around it;
- ``docs/asyncapi.json``: an AsyncAPI 3.0 document of the subjects, headers and payloads;
- ``infra/nats/stream.json``: the JetStream stream definition for production.

Hand-written copies drift; ``programledger schema`` regenerates them (with
``schema.graphql``) and a test fails when the committed files differ from what the code
generates.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import msgspec

from programledger.adapters.nats.envelope import (
    HEADER_CORRELATION_ID,
    HEADER_EVENT_TYPE,
    HEADER_MSG_ID,
    HEADER_POSITION,
    HEADER_SCHEMA_VERSION,
    HEADER_STORE_ID,
    HEADER_STREAM_ID,
    HEADER_VERSION,
    NO_PROGRAM,
    EventEnvelope,
)
from programledger.adapters.nats.stream import StreamSettings
from programledger.domain.events import DomainEvent, EventRegistry

__all__ = [
    "ENVELOPE_SCHEMA_NAME",
    "asyncapi_document",
    "envelope_schema",
    "event_schema",
    "event_schema_files",
    "render",
    "stream_definition",
    "write_asyncapi",
    "write_event_schemas",
    "write_stream_definition",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE_SCHEMA_NAME = "EventEnvelope"
DEFAULT_PREFIX = "programledger"
PRODUCTION_REPLICAS = 3


def render(document: Any) -> str:
    """Stable text, so that regenerating unchanged code changes no byte."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _doc(cls: type) -> str | None:
    return inspect.cleandoc(cls.__doc__) if cls.__doc__ else None


def _clean_descriptions(node: Any) -> Any:
    """msgspec copies docstrings with their source indentation."""
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v)
            if k == "description" and isinstance(v, str)
            else _clean_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(v) for v in node]
    return node


def _split(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """msgspec answers ``{"$ref": "#/$defs/X", "$defs": {...}}``: the body of X, and the
    other definitions it refers to."""
    schema = _clean_descriptions(schema)
    defs = dict(schema.get("$defs", {}))
    name = str(schema["$ref"]).rsplit("/", 1)[-1]
    return defs.pop(name), defs


def event_schema(cls: type[DomainEvent]) -> dict[str, Any]:
    """The JSON Schema of one event type's ``data``, titled with its stable name."""
    body, defs = _split(msgspec.json.schema(cls))
    body.pop("title", None)
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{cls.event_type}.json",
        "title": cls.event_type,
    }
    description = _doc(cls)
    if description:
        schema["description"] = description
    schema["x-event-type"] = cls.event_type
    schema["x-schema-version"] = cls.schema_version
    schema.update({k: v for k, v in body.items() if k != "description"})
    if defs:
        schema["$defs"] = defs
    return schema


_ENVELOPE_DESCRIPTION = (
    "The payload of every message the relay publishes: one stored event with all its "
    "metadata, and its data at the current schema version. Optional metadata that is absent "
    "is null, never a missing key. Readers must ignore properties they do not know: new "
    "ones may be added without notice."
)


def envelope_schema() -> dict[str, Any]:
    body, defs = _split(msgspec.json.schema(EventEnvelope))
    body.pop("title", None)
    properties = body["properties"]
    properties["recorded_at"] = {
        "type": "string",
        "format": "date-time",
        "description": "When the event was recorded (RFC 3339, with offset).",
    }
    properties["position"]["description"] = (
        "Global position in the event store: strictly increasing in publish order; dedupe "
        "and resume by it."
    )
    properties["data"] = {
        "description": "The event's data at the current schema version: validate it with "
        "the schema named by event_type (<event_type>.json).",
        "type": "object",
    }
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{ENVELOPE_SCHEMA_NAME}.json",
        "title": ENVELOPE_SCHEMA_NAME,
        "description": _ENVELOPE_DESCRIPTION,
        **{k: v for k, v in body.items() if k != "description"},
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _event_types(registry: EventRegistry) -> list[type[DomainEvent]]:
    return [registry.type_for(name) for name in registry.names()]


def event_schema_files(registry: EventRegistry) -> dict[str, str]:
    """File name → content of every schema file, envelope included."""
    files = {f"{ENVELOPE_SCHEMA_NAME}.json": render(envelope_schema())}
    for cls in _event_types(registry):
        files[f"{cls.event_type}.json"] = render(event_schema(cls))
    return files


def write_event_schemas(registry: EventRegistry, out_dir: Path) -> list[Path]:
    """Write the schema files; ``*.json`` files there that the code no longer produces are
    removed, because the folder is generated and a stale schema would mislead."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = event_schema_files(registry)
    for stale in out_dir.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# --- AsyncAPI ------------------------------------------------------------------------------


def _components_refs(node: Any) -> Any:
    """``#/$defs/X`` means the root of a standalone schema; inside AsyncAPI it must point
    at ``#/components/schemas/X``. msgspec's OpenAPI-style ``discriminator`` object becomes
    AsyncAPI's, which is just the name of the tag property."""
    if isinstance(node, dict):
        converted: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                converted[key] = value.replace("#/$defs/", "#/components/schemas/")
            elif key == "discriminator" and isinstance(value, dict):
                converted[key] = value["propertyName"]
            else:
                converted[key] = _components_refs(value)
        return converted
    if isinstance(node, list):
        return [_components_refs(v) for v in node]
    return node


def _headers_schema() -> dict[str, Any]:
    def text(description: str, **extra: Any) -> dict[str, Any]:
        return {"type": "string", "description": description, **extra}

    return {
        "type": "object",
        "required": [
            HEADER_MSG_ID,
            HEADER_POSITION,
            HEADER_STREAM_ID,
            HEADER_VERSION,
            HEADER_EVENT_TYPE,
            HEADER_SCHEMA_VERSION,
        ],
        "properties": {
            HEADER_MSG_ID: text("The event id; JetStream drops a duplicate.", format="uuid"),
            HEADER_POSITION: text("Global position in the event store.", pattern="^[0-9]+$"),
            HEADER_STREAM_ID: text("The event's stream, '<stream type>-<id>'."),
            HEADER_VERSION: text("The event's version in its stream.", pattern="^[0-9]+$"),
            HEADER_EVENT_TYPE: text("The stable event type name."),
            HEADER_SCHEMA_VERSION: text(
                "Schema version of the payload's data.", pattern="^[0-9]+$"
            ),
            HEADER_CORRELATION_ID: text("Correlation id, when the command had one.", format="uuid"),
            HEADER_STORE_ID: text(
                "The event store the event was recorded in (set by relays since store ids).",
                format="uuid",
            ),
            "Nats-Expected-Last-Sequence": text(
                "Set by the relay to keep the stream in order; consumers ignore it.",
                pattern="^[0-9]+$",
            ),
        },
        "additionalProperties": {"type": "string"},
    }


def asyncapi_document(registry: EventRegistry, prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """AsyncAPI 3.0: one channel and one receive operation per event type."""
    schemas: dict[str, Any] = {"Headers": _headers_schema()}
    envelope = envelope_schema()
    schemas[ENVELOPE_SCHEMA_NAME] = _components_refs(
        {k: v for k, v in envelope.items() if k not in {"$schema", "$id", "$defs"}}
    )
    schemas.update(_components_refs(envelope.get("$defs", {})))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls in _event_types(registry):
        name = cls.event_type
        schema = event_schema(cls)
        for def_name, definition in _components_refs(schema.pop("$defs", {})).items():
            if schemas.setdefault(def_name, definition) != definition:
                raise ValueError(f"two event types define different schemas named {def_name}")
        if name in schemas:
            raise ValueError(f"event type {name} clashes with a shared schema name")
        schemas[name] = _components_refs(
            {k: v for k, v in schema.items() if k not in {"$schema", "$id"}}
        )
        messages[name] = {
            "name": name,
            "title": name,
            **({"description": schema["description"]} if "description" in schema else {}),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/Headers"},
            "payload": {
                "allOf": [
                    {"$ref": f"#/components/schemas/{ENVELOPE_SCHEMA_NAME}"},
                    {
                        "type": "object",
                        "properties": {
                            "event_type": {"const": name},
                            "schema_version": {"const": cls.schema_version},
                            "data": {"$ref": f"#/components/schemas/{name}"},
                        },
                    },
                ]
            },
        }
        channels[name] = {
            "address": f"{{prefix}}.{{programId}}.{{streamType}}.{name}",
            "title": name,
            "parameters": {
                "prefix": {"$ref": "#/components/parameters/prefix"},
                "programId": {"$ref": "#/components/parameters/programId"},
                "streamType": {"$ref": "#/components/parameters/streamType"},
            },
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"receive{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "programledger events",
            "version": "1.0.0",
            "description": (
                "Every event committed to the programledger event store, published by the "
                "relay to the JetStream stream that captures '<prefix>.>', in global position "
                "order, once each. See docs/events.md for ordering, delivery and consumer "
                "guidance."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "NATS with JetStream; the deployment's own address.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "prefix": {
                    "description": "The deployment's subject prefix (setting subject_prefix).",
                    "default": prefix,
                },
                "programId": {
                    "description": (
                        "The program the event concerns (a UUID), or "
                        f"'{NO_PROGRAM}' for events that concern no single program."
                    ),
                },
                "streamType": {
                    "description": (
                        "The type of the event's stream (the part of the stream id before "
                        "the first '-'), e.g. program, risk, resource."
                    ),
                },
            },
            "messages": messages,
            "schemas": schemas,
        },
    }


def write_asyncapi(registry: EventRegistry, path: Path, prefix: str = DEFAULT_PREFIX) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(asyncapi_document(registry, prefix)), encoding="utf-8")
    return path


def stream_definition() -> dict[str, Any]:
    """The production stream: the default prefix, replicated on three servers."""
    return StreamSettings(DEFAULT_PREFIX, replicas=PRODUCTION_REPLICAS).definition()


def write_stream_definition(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(stream_definition()), encoding="utf-8")
    return path
