"""The builder palette: everything the engine knows, each with a schema a property panel can
use, read off the engine's own types so nothing can be left out."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from builder_api.drafts import draft_document
from builder_api.palette import Palette, PaletteEntry, palette
from engine.expr_check import FUNCTIONS
from engine.fields import FieldSpec
from engine.model import Action, Channel, IntakeChannel, RoutingStrategy, Trigger
from runtime.routing import TERMINAL

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"
PACK_DIRS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def built() -> Palette:
    return palette(None)


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    out = []
    for directory in PACK_DIRS:
        files = {
            str(p.relative_to(directory)): p.read_text(encoding="utf-8")
            for p in sorted(directory.rglob("*.yaml"))
        }
        doc = draft_document(files)
        assert doc is not None, directory.name
        out.append(doc)
    return out


def _by_name(entries: list[Any]) -> dict[str, Any]:
    return {e["name"]: e for e in entries}


def _every_entry(built: Palette) -> Iterator[tuple[str, PaletteEntry]]:
    groups: dict[str, list[Any]] = {
        "field_types": built["field_types"],
        "node_kinds": built["node_kinds"],
        "triggers": built["triggers"],
        "actions": built["actions"],
    }
    for group, entries in groups.items():
        for entry in entries:
            yield f"{group}/{entry['name']}", entry


# -- coverage: compared with the engine's unions, read here independently ------------------


def _union_args(annotation: Any) -> tuple[Any, ...]:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return typing.get_args(annotation)


def _tags(annotation: Any) -> list[str]:
    return [m.__metadata__[0].tag for m in _union_args(annotation)]


def test_every_field_spec_member_is_a_field_type(built: Palette) -> None:
    members = _union_args(FieldSpec)
    type_names = [typing.get_args(m.model_fields["type"].annotation)[0] for m in members]
    assert [e["name"] for e in built["field_types"]] == type_names
    assert len(type_names) == 23


def test_every_action_and_trigger_member_is_in_the_palette(built: Palette) -> None:
    assert [e["name"] for e in built["actions"]] == _tags(Action)
    assert [e["name"] for e in built["triggers"]] == _tags(Trigger)


def test_every_condition_function_is_in_the_palette_with_its_arity(built: Palette) -> None:
    conditions = _by_name(built["conditions"])
    assert list(conditions) == list(FUNCTIONS)
    for name, sig in FUNCTIONS.items():
        entry = conditions[name]
        assert len(entry["parameters"]) == sig.arity[1]
        assert entry["signature"] == sig.summary
        assert entry["result"]


def test_condition_types_come_from_the_checker(built: Palette) -> None:
    conditions = _by_name(built["conditions"])
    assert conditions["len"]["parameters"][0]["types"] == ["text", "list"]
    assert conditions["len"]["result"] == ["number"]
    assert conditions["days_since"]["parameters"][0]["types"] == ["date", "datetime"]
    assert conditions["is_set"]["parameters"][0]["types"] == ["any"]
    assert conditions["max"]["result"] == ["number", "duration"]


def test_strategies_and_channels_are_the_engines_literals(built: Palette) -> None:
    strategies = built["routing_strategies"]
    assert [s["name"] for s in strategies] == list(typing.get_args(RoutingStrategy))
    assert {s["name"] for s in strategies if s["terminal"]} == set(TERMINAL)
    assert [c["name"] for c in built["intake_channels"]] == list(typing.get_args(IntakeChannel))
    assert [c["name"] for c in built["notification_channels"]] == list(typing.get_args(Channel))


def test_node_kinds_are_the_named_things_of_a_pack(built: Palette) -> None:
    kinds = _by_name(built["node_kinds"])
    expected = {"state", "transition", "template", "workflow", "role", "team", "calendar"}
    assert expected | {"sla_policy", "rule"} <= set(kinds)
    assert kinds["state"]["placement"] == "/workflows/{workflow}/states/{state}"
    assert kinds["state"]["parent"] == "workflow"
    assert kinds["sla_policy"]["placement"] == "/sla/{sla_policy}"
    assert kinds["template"]["description"].startswith("A kind of ticket")


def test_entries_carry_the_models_descriptions(built: Palette) -> None:
    fields = _by_name(built["field_types"])
    assert fields["signature"]["description"] == "A handwritten signature captured on screen."
    assert fields["table"]["column"] is False and fields["text"]["column"] is True
    assert fields["long_text"]["title"] == "Long text"
    props = fields["choice"]["schema"]["properties"]
    assert props["options"]["description"].startswith("The allowed values")
    actions = _by_name(built["actions"])
    assert actions["notify"]["description"] == "Send a message to people over one or more channels."


def test_locale_is_reported_and_results_are_independent(built: Palette) -> None:
    zh = palette("zh")
    assert zh["requested_locale"] == "zh" and zh["locale"] == "en"
    zh["field_types"].clear()
    assert palette("zh")["field_types"] == built["field_types"]


# -- the schemas -----------------------------------------------------------------------------


def test_every_schema_is_a_valid_self_contained_2020_12_schema(built: Palette) -> None:
    for where, entry in _every_entry(built):
        schema = entry["schema"]
        Draft202012Validator.check_schema(schema)
        text = repr(schema)
        refs = set(re.findall(r"'\$ref': '([^']+)'", text))
        defs = schema.get("$defs", {})
        assert all(r.startswith("#/$defs/") and r[8:] in defs for r in refs), where
        assert "'discriminator'" not in text and "'definitions'" not in text, where


def _validator(entry: PaletteEntry) -> Draft202012Validator:
    return Draft202012Validator(entry["schema"])


def _placed(document: dict[str, Any], placement: str) -> Iterator[Any]:
    """Every value at a placement pattern such as `/workflows/{workflow}/states/{state}`."""
    nodes = [document]
    for step in placement.strip("/").split("/"):
        wildcard = step.startswith("{")
        nodes = [
            child
            for node in nodes
            if isinstance(node, dict)
            for key, child in node.items()
            if wildcard or key == step
        ]
    yield from nodes


def test_node_kind_schemas_accept_every_instance_in_the_examples(
    built: Palette, documents: list[dict[str, Any]]
) -> None:
    checked: dict[str, int] = {}
    for kind in built["node_kinds"]:
        validator = _validator(kind)
        for document in documents:
            for value in _placed(document, kind["placement"]):
                if kind["section"] in ("roles", "skills") and isinstance(value, str):
                    continue  # roles written as a list of names
                errors = [e.message for e in validator.iter_errors(value)]
                assert not errors, (kind["name"], value, errors)
                checked[kind["name"]] = checked.get(kind["name"], 0) + 1
    must = ("state", "transition", "template", "workflow", "role", "team", "calendar", "rule")
    assert all(checked.get(k, 0) > 0 for k in (*must, "sla_policy")), checked


def test_field_type_schemas_accept_every_field_in_the_examples(
    built: Palette, documents: list[dict[str, Any]]
) -> None:
    validators = {e["name"]: _validator(e) for e in built["field_types"]}
    seen: set[str] = set()
    for document in documents:
        for spec in _placed(document, "/templates/{t}/fields/{f}"):
            errors = [e.message for e in validators[spec["type"]].iter_errors(spec)]
            assert not errors, (spec, errors)
            seen.add(spec["type"])
    assert {"choice", "table", "signature", "attachments"} <= seen


def _actions(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for rule in _placed(document, "/rules/{r}"):
        yield from rule["do"]
    for transition in _placed(document, "/workflows/{w}/transitions/{t}"):
        yield from transition.get("do", [])
    for policy in _placed(document, "/sla/{s}"):
        yield from policy.get("on_warning", [])
        yield from policy.get("on_breach", [])


def test_trigger_and_action_schemas_accept_the_examples(
    built: Palette, documents: list[dict[str, Any]]
) -> None:
    actions = {e["name"]: _validator(e) for e in built["actions"]}
    triggers = {e["name"]: _validator(e) for e in built["triggers"]}
    kinds: set[str] = set()
    for document in documents:
        for action in _actions(document):
            (kind,) = action.keys()
            assert not list(actions[kind].iter_errors(action)), action
            kinds.add(kind)
        for rule in _placed(document, "/rules/{r}"):
            on = rule["on"]
            tag = "name" if isinstance(on, str) else next(k for k in on if k in triggers)
            assert not list(triggers[tag].iter_errors(on)), on
            kinds.add(f"on:{tag}")
    assert {"notify", "assign", "set", "on:name", "on:entered"} <= kinds


def test_schemas_refuse_what_the_model_refuses(built: Palette) -> None:
    fields = {e["name"]: _validator(e) for e in built["field_types"]}
    assert not fields["choice"].is_valid({"type": "choice", "options": []})
    assert not fields["text"].is_valid({"type": "text", "colour": "red"})
    assert not fields["text"].is_valid({"type": "text", "label": {"english": "x"}})
    state = _validator(_by_name(built["node_kinds"])["state"])
    assert not state.is_valid({"sla": "sometimes"})
    assert state.is_valid({"sla": "pause", "title": {"en": "Waiting", "zh": "等待"}})
