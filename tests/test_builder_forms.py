"""Form schemas of the builder API for react-jsonschema-form: the JSON Schema filtered by
permissions, the UI schema (order, widgets, labels in a locale), the field rules exported
for a UI and evaluated on the server, and the forms of transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from builder_api.forms import evaluate_rules, form, transition_form
from conftest import EXAMPLES
from engine.blueprint import Blueprint, compile_pack
from engine.load import load_pack_path
from engine.model import Pack
from runtime.actors import Actor
from runtime.records import InvalidCommand, NotFound, PermissionDenied

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)

# A field of every type, a table, a choice long enough for a drop-down, a computed field.
EVERY_TYPE = r"""
pack: kinds
title: {en: Kinds, zh: 类型}
timezone: Asia/Shanghai
locales: [en, zh]
roles: [agent]
teams: {facilities: {}}
templates:
  job:
    title: {en: Job, zh: 工单}
    workflow: basic
    fields:
      code: {type: text, placeholder: {en: S0001}, help: {en: Store code, zh: 门店编号}}
      notes: {type: long_text}
      qty: {type: integer, unit: pcs}
      weight: {type: number, decimals: 1, unit: kg}
      cost: {type: money, currency: CNY}
      urgent: {type: boolean}
      priority: {type: choice, options: [P1, P2, {value: P3, label: {en: Low, zh: 低}}]}
      colour: {type: choice, options: [red, orange, yellow, green, blue, violet]}
      tags: {type: multi_choice, options: [a, b, c]}
      due: {type: date}
      at: {type: datetime}
      spent: {type: duration}
      mail: {type: email}
      phone: {type: phone, region: CN}
      link: {type: url}
      owner: {type: user, roles: [agent]}
      team: {type: team}
      device: {type: asset, asset_types: [fridge]}
      site: {type: location, capture: device}
      photos: {type: attachments, max_items: 3, accept: ["image/*"]}
      signature: {type: signature}
      stars: {type: rating, scale: 10}
      parts: {type: table, max_rows: 5, columns: {part_no: text, qty: integer}}
      total: {type: computed, expr: qty * 2, result: number}
workflows:
  basic:
    initial: open
    states:
      open: {}
      done: {final: true}
    transitions:
      finish: {from: open, to: done, roles: [agent]}
"""


def load(source: Path) -> Pack:
    result = load_pack_path(source)
    assert result.ok, [d.headline() for d in result.diagnostics]
    assert result.pack is not None
    return result.pack


@pytest.fixture(scope="module")
def retail() -> Blueprint:
    return compile_pack(load(EXAMPLES / "retail_store"))


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    path = tmp_path_factory.mktemp("kinds") / "pack.yaml"
    path.write_text(EVERY_TYPE, encoding="utf-8")
    return load(path)


# -- the form of a template --------------------------------------------------------------


def test_ui_order_is_the_template_field_order(retail: Blueprint) -> None:
    schema = form(retail, "store_repair", locale="en")
    fields = list(retail.model.templates["store_repair"].fields)
    assert schema["uiSchema"]["ui:order"] == fields
    assert list(schema["schema"]["properties"]) == fields
    assert (schema["state"], schema["locale"], schema["transition"]) == ("new", "en", None)


def test_a_widget_for_every_field_type(kinds: Pack) -> None:
    ui = form(kinds, "job")["uiSchema"]
    chosen = {
        name: ui[name].get("ui:widget") or f"field:{ui[name].get('ui:field')}"
        for name in ui["ui:order"]
    }
    assert chosen == {
        "code": "text",
        "notes": "textarea",
        "qty": "updown",
        "weight": "updown",
        "cost": "updown",
        "urgent": "checkbox",
        "priority": "radio",
        "colour": "select",  # six options: a drop-down
        "tags": "checkboxes",
        "due": "date",
        "at": "datetime",
        "spent": "text",
        "mail": "email",
        "phone": "text",
        "link": "uri",
        "owner": "user",
        "team": "select",
        "device": "asset",
        "site": "field:location",
        "photos": "attachments",
        "signature": "field:signature",
        "stars": "rating",
        "parts": "field:None",  # rjsf's own array field, with options for its rows
        "total": "updown",
    }
    assert ui["phone"]["ui:options"] == {"inputType": "tel", "region": "CN"}
    assert ui["photos"]["ui:options"] == {"accept": ["image/*"], "max_items": 3}
    assert ui["stars"]["ui:options"] == {"scale": 10}
    assert ui["device"]["ui:options"] == {"scan": True, "asset_types": ["fridge"]}
    assert ui["cost"]["ui:options"] == {"currency": "CNY"}
    assert ui["spent"]["ui:placeholder"] == "1h30m"
    assert ui["total"]["ui:readonly"] is True
    assert ui["parts"]["ui:options"] == {
        "max_rows": 5,
        "addable": True,
        "removable": True,
        "orderable": False,
    }
    assert ui["parts"]["items"]["ui:order"] == ["part_no", "qty"]
    assert ui["parts"]["items"]["qty"]["ui:widget"] == "updown"


def test_option_labels_follow_the_schema_enum(kinds: Pack) -> None:
    schema = form(kinds, "job", locale="zh")
    assert schema["schema"]["properties"]["priority"]["enum"] == ["P1", "P2", "P3", None]
    assert schema["uiSchema"]["priority"]["ui:enumNames"] == ["P1", "P2", "低", "—"]
    assert schema["uiSchema"]["tags"]["ui:enumNames"] == ["a", "b", "c"]


def test_labels_in_the_requested_locale(retail: Blueprint) -> None:
    zh = form(retail, "store_repair", locale="zh")
    en = form(retail, "store_repair", locale="en")
    assert (zh["uiSchema"]["store_no"]["ui:title"], en["uiSchema"]["store_no"]["ui:title"]) == (
        "门店编号",
        "Store number",
    )
    assert zh["uiSchema"]["store_no"]["ui:help"] == "S 加四位数字，如 S0123"
    assert en["uiSchema"]["category"]["ui:enumNames"] == [
        "Air conditioning",
        "Lighting",
        "Till / POS",
        "Refrigeration",
    ]
    assert (zh["uiSchema"]["ui:title"], en["schema"]["title"]) == ("门店报修", "Store repair")
    # A locale the pack does not have: its first locale (zh); none given: the actor's.
    assert (
        form(retail, "store_repair", locale="fr")["uiSchema"]["store_no"]["ui:title"] == "门店编号"
    )
    actor = Actor.of("u1", ["dispatcher"], locale="en")
    assert form(retail, "store_repair", role=actor)["locale"] == "en"


def test_a_field_the_role_may_not_read_is_left_out(retail: Blueprint) -> None:
    engineer = form(retail, "store_repair", role="engineer", locale="en")
    dispatcher = form(retail, "store_repair", role="dispatcher", locale="en")
    assert "store_manager_phone" in dispatcher["schema"]["properties"]
    assert "store_manager_phone" not in engineer["schema"]["properties"]
    assert "store_manager_phone" not in engineer["uiSchema"]
    assert "store_manager_phone" not in engineer["uiSchema"]["ui:order"]


def test_fields_the_role_may_not_write_are_read_only(retail: Blueprint) -> None:
    engineer = form(retail, "store_repair", role="engineer", locale="en")
    assert engineer["schema"]["properties"]["store_no"]["readOnly"] is True
    assert engineer["uiSchema"]["store_no"]["ui:readonly"] is True
    assert "readOnly" not in engineer["schema"]["properties"]["engineer_notes"]
    assert "ui:readonly" not in engineer["uiSchema"]["engineer_notes"]
    # The store manager writes nothing once the repair is closed.
    closed = form(retail, "store_repair", state="closed", role="store_manager")
    assert all(ui.get("ui:readonly") for name, ui in closed["uiSchema"].items() if ":" not in name)


def test_the_form_is_the_runtime_form_schema_for_the_same_reader(retail: Blueprint) -> None:
    tpl = retail.templates["store_repair"]
    schema = form(retail, "store_repair", state="resolved", role="engineer", locale="en")["schema"]
    assert schema["required"] == ["store_no", "category", "signature"]
    assert schema["properties"]["rating"]["title"] == "Rating"
    assert schema["$schema"] == tpl.form.json_schema(locale="en")["$schema"]


def test_unknown_names_are_refused_with_a_hint(retail: Blueprint) -> None:
    with pytest.raises(NotFound, match="did you mean 'store_repair'"):
        form(retail, "store_repiar")
    with pytest.raises(InvalidCommand, match="did you mean 'resolved'"):
        form(retail, "store_repair", state="resolvd")
    with pytest.raises(InvalidCommand, match="did you mean 'engineer'"):
        form(retail, "store_repair", role="enginer")


# -- rules ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def desk() -> Blueprint:
    return compile_pack(load(EXAMPLES / "it_service_desk"))


def test_rules_name_the_fields_their_conditions_read(desk: Blueprint, retail: Blueprint) -> None:
    rules = form(desk, "service_request", locale="en")["rules"]
    by_field = {(r["field"], r["kind"]): r for r in rules}
    assert by_field[("laptop_model", "visible_if")] == {
        "field": "laptop_model",
        "kind": "visible_if",
        "condition": 'catalogue_item == "new_laptop"',
        "depends_on": ["catalogue_item"],
        "context": [],
        "states": [],
    }
    assert by_field[("approver", "required_if")]["depends_on"] == ["needs_approval"]
    assert by_field[("rating", "visible_if")]["context"] == ["state"]
    signature = next(r for r in form(retail, "store_repair")["rules"] if r["field"] == "signature")
    assert (signature["kind"], signature["condition"], signature["states"]) == (
        "required_in",
        'state in ["resolved"]',
        ["resolved"],
    )


def test_a_rule_reading_ticket_attributes_lists_them_as_context() -> None:
    bp = compile_pack(load(EXAMPLES / "property"))
    rules = form(bp, "home_repair")["rules"]
    readonly = next(r for r in rules if (r["field"], r["kind"]) == ("feedback", "readonly_if"))
    assert readonly["depends_on"] == []
    assert readonly["context"] == ["state", "ticket.state_entered_at"]


def test_evaluate_rules_hides_and_requires_fields_as_their_conditions_say(desk: Blueprint) -> None:
    agent = Actor.of("a1", ["service_desk_agent"])
    laptop = evaluate_rules(desk, "service_request", {"catalogue_item": "new_laptop"}, agent, NOW)
    access = evaluate_rules(
        desk, "service_request", {"catalogue_item": "access_request"}, agent, NOW
    )
    laptop_fields = {"laptop_model", "laptop_reason", "needed_by"}
    assert laptop_fields.isdisjoint(laptop["hidden"])
    assert laptop_fields <= set(access["hidden"])
    assert {"laptop_model", "laptop_reason"} <= set(laptop["required"])
    assert {"system", "access_level"} <= set(access["required"])
    assert "system" not in laptop["required"]
    # The rating shows once the request is fulfilled.
    assert "rating" in laptop["hidden"]
    fulfilled = evaluate_rules(desk, "service_request", {}, agent, NOW, state="fulfilled")
    assert "rating" not in fulfilled["hidden"]
    # Lists are in the template's field order.
    order = list(desk.templates["service_request"].fields)
    assert access["hidden"] == sorted(access["hidden"], key=order.index)


def test_evaluate_rules_reads_half_typed_values_as_empty(desk: Blueprint) -> None:
    agent = Actor.of("a1", ["service_desk_agent"])
    values = {"catalogue_item": "peripheral", "needed_by": "2026-1"}
    outcome = evaluate_rules(desk, "service_request", values, agent, NOW)
    assert "peripherals" in outcome["required"] and "needed_by" not in outcome["hidden"]
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_rules(desk, "service_request", values, agent, datetime(2026, 1, 1))


def test_evaluate_rules_locks_what_the_reader_may_not_change(retail: Blueprint) -> None:
    engineer = evaluate_rules(retail, "store_repair", {}, "engineer", NOW, state="in_progress")
    assert "store_no" in engineer["readonly"] and "engineer_notes" not in engineer["readonly"]
    assert "store_manager_phone" not in engineer["readonly"]  # hidden from engineers


# -- transition forms ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def after_sales() -> Blueprint:
    return compile_pack(load(EXAMPLES / "after_sales"))


def test_a_transition_form_asks_only_its_fields_with_its_requirements(
    after_sales: Blueprint,
) -> None:
    technician = Actor.of("t1", ["technician"])
    tr = after_sales.model.workflows["service"].transitions["complete"]
    fields = after_sales.model.templates["service_request"].fields

    schema = transition_form(after_sales, "service_request", "complete", technician, "en")

    assert schema["uiSchema"]["ui:order"] == tr.form
    assert list(schema["schema"]["properties"]) == tr.form
    assert schema["schema"]["required"] == [
        f
        for f in tr.form
        if f in tr.requires or fields[f].required or "resolved" in fields[f].required_in
    ]
    assert "parts" not in schema["schema"]["required"]
    assert (schema["schema"]["title"], schema["uiSchema"]["ui:title"]) == ("Job done", "Job done")
    assert (schema["transition"], schema["state"], schema["comment"]) == (
        "complete",
        "on_site",
        "optional",
    )
    assert not any(p.get("readOnly") for p in schema["schema"]["properties"].values())


def test_a_transition_form_for_a_role_that_may_not_take_it_is_refused(retail: Blueprint) -> None:
    with pytest.raises(PermissionDenied, match="'wait_parts' may be taken by engineer"):
        transition_form(retail, "store_repair", "wait_parts", "store_staff")
    with pytest.raises(NotFound, match="did you mean 'wait_parts'"):
        transition_form(retail, "store_repair", "wait_part", "engineer")
    with pytest.raises(InvalidCommand, match="not taken from state 'new'"):
        transition_form(retail, "store_repair", "wait_parts", "engineer", state="new")


def test_a_transition_form_knows_its_comment_mode(retail: Blueprint) -> None:
    schema = transition_form(retail, "store_repair", "wait_parts", "engineer", "zh")
    assert schema["comment"] == "required"
    assert schema["uiSchema"]["ui:order"] == ["parts"]
    assert schema["uiSchema"]["ui:title"] == "等待备件"
    assert "ui:description" not in schema["uiSchema"]


def test_forms_of_a_store_repair_for_a_store_manager(retail: Blueprint, snapshot: Any) -> None:
    assert (
        form(retail, "store_repair", state="resolved", role="store_manager", locale="en")
        == snapshot
    )
