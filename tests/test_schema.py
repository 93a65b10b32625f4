"""The published JSON Schema: in step with the model, draft-07 only, described everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import EXAMPLES, MINIMAL
from dsl.sources import discover_packs, load_pack_source
from dsl.yaml_loader import load_yaml_text
from engine.load import SECTIONS
from engine.schema import SCHEMA_PATH, render_schema

NEWER_KEYWORDS = {
    "unevaluatedProperties",
    "prefixItems",
    "$defs",
    "dependentRequired",
    "dependentSchemas",
    "$anchor",
    "$dynamicRef",
    "unevaluatedItems",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def test_committed_schema_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "schemas/pack.schema.json is out of date; run `ticketflow schema`"
    )


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}/{i}")


def test_schema_is_draft_07(schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    used = {k for _, node in _walk(schema) for k in node}
    assert not used & NEWER_KEYWORDS


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    missing = [
        f"{path}/{name}"
        for path, node in _walk(schema)
        if isinstance(node.get("properties"), dict) and not path.endswith("/properties")
        for name, prop in node["properties"].items()
        if "description" not in prop
    ]
    assert missing == []


def test_every_object_refuses_unknown_keys(schema: dict[str, Any]) -> None:
    open_objects = [
        path
        for path, node in _walk(schema)
        if "properties" in node
        and node.get("additionalProperties") is not False
        and not path.endswith("/properties")
    ]
    assert open_objects == []


def test_schema_catches_a_typo_like_the_validator(schema: dict[str, Any]) -> None:
    doc, _ = load_yaml_text(MINIMAL.replace("default: P3", "defalt: P3"))
    assert doc is not None
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc.data))
    assert errors, "the schema must refuse an unknown key"


@pytest.mark.parametrize("pack", discover_packs([EXAMPLES]), ids=lambda p: p.root.name)
def test_example_packs_validate_against_the_schema(pack: Any, schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    merged, diags = load_pack_source(pack, SECTIONS)
    assert merged is not None and not diags
    assert [e.message for e in validator.iter_errors(merged.data)] == []
    for path in pack.files:
        text = Path(path).read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema=../../../schemas/pack.schema.json")
        doc, _ = load_yaml_text(text)
        assert doc is not None
        assert [e.message for e in validator.iter_errors(doc.data)] == [], path
