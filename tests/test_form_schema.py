"""Field values: per-type JSON Schemas, the compiled template validator, problems with codes,
defaults, the UI form schema and the values expressions read."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.form_schema as form_schema
from conftest import EXAMPLES
from dsl.expressions import parse_expression
from engine.expr_eval import compile_expression
from engine.fields import FIELD_TYPES, TableField
from engine.form_schema import (
    DURATION_PATTERN,
    FORMAT_CHECKER,
    FieldProblem,
    FormValidator,
    TemplateForm,
    accepts,
    compile_check,
    path_text,
    value_schema,
)
from engine.load import load_pack_path
from engine.model import Pack
from engine.values import parse_duration

NOW = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)

# One template with a field of every type (and a table with typed columns).
EVERYTHING = r"""
pack: demo
title: {en: Demo, zh: 演示}
timezone: Asia/Shanghai
locales: [en, zh]
roles: [agent]
teams:
  facilities: {}
  it_support: {}
templates:
  job:
    title: {en: Job, zh: 工单}
    workflow: basic
    fields:
      code: {type: text, pattern: '^S\d{4}$', max_length: 10, help: {en: "S and four digits, e.g. S0001"}}
      notes: {type: long_text, max_length: 20}
      qty: {type: integer, min: 1, max: 5}
      weight: {type: number, min: 0, decimals: 1, unit: kg}
      cost: {type: money, currency: CNY, max: 1000}
      urgent: {type: boolean, default: false}
      priority: {type: choice, options: [P1, P2, {value: P3, label: {en: Low, zh: 低}}], default: P3}
      tags: {type: multi_choice, options: [a, b, c], max_items: 2, default: [a]}
      due: {type: date, default: today}
      seen_at: {type: datetime, default: now}
      effort: {type: duration, min: 30m, max: 1d, default: 1h}
      contact: {type: email}
      phone: {type: phone}
      link: {type: url}
      owner: {type: user}
      team: {type: team, default: facilities}
      asset: {type: asset}
      site: {type: location}
      files: {type: attachments, max_items: 2, accept: ["image/*", ".pdf"], max_size: 1MB}
      signature: {type: signature, required_in: [done]}
      rating: {type: rating, scale: 5}
      parts:
        type: table
        max_rows: 3
        columns:
          part_no: {type: text, required: true}
          qty: {type: integer, min: 1, required: true}
          used_on: date
          unit_cost: {type: money, currency: CNY}
      twice: {type: computed, expr: qty * 2, result: number}
workflows:
  basic:
    initial: open
    states:
      open: {}
      done: {final: true}
    transitions:
      finish: {from: open, to: done, roles: [agent]}
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    path = tmp_path_factory.mktemp("demo") / "pack.yaml"
    path.write_text(EVERYTHING, encoding="utf-8")
    result = load_pack_path(path)
    assert result.ok, result.diagnostics
    assert result.pack is not None
    return result.pack


@pytest.fixture(scope="module")
def form(demo: Pack) -> TemplateForm:
    return TemplateForm.build(demo, "job")


@pytest.fixture(scope="module")
def retail() -> TemplateForm:
    pack = load_pack_path(EXAMPLES / "retail_store").pack
    assert pack is not None
    return TemplateForm.build(pack, "store_repair")


def test_the_demo_template_has_a_field_of_every_type(form: TemplateForm) -> None:
    assert {spec.type for spec in form.specs.values()} == set(FIELD_TYPES)
    assert set(FIELD_TYPES) == form_schema.SCHEMA_TYPES


# -- one valid and one or more invalid values per type ---------------------------------------

VALID: list[tuple[str, Any]] = [
    ("code", "S0001"),
    ("notes", "two\nlines"),
    ("qty", 5),
    ("weight", 1.5),
    ("weight", 0.1 + 0.2),  # 0.30000000000000004 still has one decimal
    ("cost", 99.9),
    ("cost", 12),
    ("urgent", False),
    ("priority", "P3"),
    ("tags", ["a", "b"]),
    ("tags", []),
    ("due", "2026-11-25"),
    ("seen_at", "2026-11-25T09:30:00+08:00"),
    ("seen_at", "2026-11-25T01:30:00.123Z"),
    ("effort", "1h30m"),
    ("effort", "1d"),
    ("contact", "ana.li@example.com"),
    ("phone", "+86 (21) 5555-0100"),
    ("link", "https://example.com/a?b=1"),
    ("owner", "u123"),
    ("team", "facilities"),
    ("asset", "AC-01"),
    ("site", {"lat": 31.2, "lon": 121.4, "address": "1 Nanjing Rd"}),
    ("site", {"lat": -90, "lon": 180}),
    ("files", [{"id": "f1", "name": "a.jpg", "content_type": "image/jpeg", "size": 10}]),
    ("files", [{"id": "f2", "name": "Report.PDF"}]),
    ("signature", {"image": "data:image/png;base64,iVBORw0KGgo=", "signed_by": "u1"}),
    ("signature", {"image": "att_123", "signed_at": "2026-11-25T09:30:00+08:00"}),
    ("rating", 1),
    ("parts", [{"part_no": "A", "qty": 1, "used_on": "2026-11-25", "unit_cost": 2.5}]),
    ("parts", []),
    ("twice", 2.5),
]

INVALID: list[tuple[str, Any, str, str]] = [
    # field, value, problem field, code
    ("code", "X1", "code", "pattern"),
    ("code", "S0001\n", "code", "single-line"),
    ("code", 5, "code", "type"),
    ("notes", "x" * 21, "notes", "max-length"),
    ("qty", 6, "qty", "maximum"),
    ("qty", 0, "qty", "minimum"),
    ("qty", 2.5, "qty", "type"),
    ("qty", True, "qty", "type"),
    ("weight", 1.25, "weight", "decimals"),
    ("weight", -1, "weight", "minimum"),
    ("weight", float("nan"), "weight", "type"),
    ("weight", float("inf"), "weight", "type"),
    ("cost", 1000.5, "cost", "maximum"),
    ("cost", "12", "cost", "type"),
    ("cost", 1e16, "cost", "maximum"),
    ("urgent", "yes", "urgent", "type"),
    ("priority", "P9", "priority", "option"),
    ("tags", ["a", "a"], "tags", "duplicate"),
    ("tags", ["a", "b", "c"], "tags", "max-items"),
    ("tags", ["z"], "tags[0]", "option"),
    ("tags", "a", "tags", "type"),
    ("due", "2026-02-30", "due", "format"),
    ("due", "25/11/2026", "due", "format"),
    ("due", "2026-11-25\n", "due", "format"),
    ("seen_at", "2026-11-25T09:30:00", "seen_at", "format"),
    ("seen_at", "2026-11-25 09:30:00+08:00", "seen_at", "format"),
    ("seen_at", "2026-11-25T25:30:00+08:00", "seen_at", "format"),
    ("effort", "10m", "effort", "minimum"),
    ("effort", "2d", "effort", "maximum"),
    ("effort", "90 minutes", "effort", "format"),
    ("effort", "", "effort", "format"),
    ("contact", "ana@localhost", "contact", "format"),
    ("contact", "ana li@example.com", "contact", "format"),
    ("phone", "call me", "phone", "format"),
    ("phone", "+86 21\n", "phone", "single-line"),
    ("link", "ftp://example.com", "link", "format"),
    ("link", "https://", "link", "format"),
    ("owner", "", "owner", "min-length"),
    ("team", "nobody", "team", "option"),
    ("asset", 12, "asset", "type"),
    ("site", {"lat": 91, "lon": 0}, "site.lat", "maximum"),
    ("site", {"lat": 1}, "site.lon", "required"),
    ("site", {"lat": 1, "lon": 2, "alt": 3}, "site.alt", "unknown-field"),
    ("site", {"lat": "1", "lon": 2}, "site.lat", "type"),
    ("site", [31.2, 121.4], "site", "type"),
    ("files", [{"id": str(i), "name": f"{i}.jpg"} for i in range(3)], "files", "max-items"),
    (
        "files",
        [{"id": "f1", "name": "a.exe", "content_type": "application/x-msdownload"}],
        "files[0]",
        "accept",
    ),
    ("files", [{"name": "a.jpg"}], "files[0].id", "required"),
    ("files", [{"id": "f", "name": "a.jpg", "size": 2 * 1024**2}], "files[0].size", "maximum"),
    ("signature", {"signed_by": "u1"}, "signature.image", "required"),
    ("signature", {"image": "not an id"}, "signature.image", "format"),
    ("signature", {"image": "a", "signed_at": "yesterday"}, "signature.signed_at", "format"),
    ("rating", 0, "rating", "minimum"),
    ("rating", 6, "rating", "maximum"),
    ("parts", [{"part_no": "A", "qty": 1}, {"part_no": "B", "qty": 0}], "parts[1].qty", "minimum"),
    ("parts", [{"part_no": "A"}], "parts[0].qty", "required"),
    ("parts", [{"part_no": "", "qty": 1}], "parts[0].part_no", "required"),
    ("parts", [{"part_no": None, "qty": 1}], "parts[0].part_no", "required"),
    ("parts", [{"part_no": "A", "qty": 1, "used_on": "soon"}], "parts[0].used_on", "format"),
    ("parts", [{"part_no": "A", "qty": 1, "x": 1}], "parts[0].x", "unknown-field"),
    ("parts", [{"part_no": "A", "qty": 1}] * 4, "parts", "max-items"),
    ("parts", ["A"], "parts[0]", "type"),
    ("twice", "x", "twice", "type"),
]


@pytest.mark.parametrize(("name", "value"), VALID, ids=[f"{n}={v!r}"[:60] for n, v in VALID])
def test_valid_value_is_accepted(form: TemplateForm, name: str, value: Any) -> None:
    assert form.validate({name: value}) == []
    assert jsonschema.Draft202012Validator(form.schemas[name]).is_valid(value)


@pytest.mark.parametrize(
    ("name", "value", "where", "code"), INVALID, ids=[f"{w}:{c}" for _, _, w, c in INVALID]
)
def test_invalid_value_is_refused_with_code_and_location(
    form: TemplateForm, name: str, value: Any, where: str, code: str
) -> None:
    problems = form.validate({name: value})
    assert (where, code) in [(p.field, p.code) for p in problems], problems
    assert all(p.message for p in problems)


def test_messages_say_what_is_allowed(form: TemplateForm) -> None:
    def message(name: str, value: Any) -> str:
        (problem,) = form.validate({name: value})
        return problem.message

    assert message("priority", "P9") == "must be one of P1, P2, P3"
    assert message("rating", 6) == "must be at most 5"
    assert message("effort", "10m") == "must be at least 30m"
    assert (
        message("code", "X1") == r"must match the pattern ^S\d{4}$ (S and four digits, e.g. S0001)"
    )
    assert message("tags", ["a", "b", "c"]) == "must have at most 2 options"
    assert (
        message("files", [{"id": "f", "name": "a.txt"}]) == "must be a file of type image/*, .pdf"
    )
    assert message("weight", 1.25) == "must have at most 1 decimal"
    assert message("due", "tomorrow") == "must be a date written YYYY-MM-DD, e.g. 2026-11-25"
    assert message("qty", "3") == "must be a whole number"
    assert "lat, lon, address" in message("site", {"lat": 1, "lon": 2, "alt": 3})


# -- null, empty, required -------------------------------------------------------------------


def test_null_clears_any_field(form: TemplateForm) -> None:
    assert form.validate(dict.fromkeys(form.specs)) == []


def test_required_fields_must_be_non_empty(form: TemplateForm) -> None:
    values = {"code": None, "notes": "", "tags": [], "qty": 0, "urgent": False}
    problems = form.validate(values, required=["code", "notes", "tags", "owner", "urgent"])
    assert [(p.field, p.code) for p in problems] == [
        ("code", "required"),
        ("notes", "required"),
        ("qty", "minimum"),
        ("tags", "required"),
        ("owner", "required"),
    ]
    assert problems[0].message == "must have a value"


def test_an_empty_required_value_is_reported_once_as_required(form: TemplateForm) -> None:
    assert form.validate({"owner": ""}, required=["owner"]) == [
        FieldProblem("owner", "required", "must have a value")
    ]


def test_unknown_field_gets_a_did_you_mean_hint(form: TemplateForm) -> None:
    (problem,) = form.validate({"qyt": 1})
    assert problem == FieldProblem(
        "qyt", "unknown-field", "'job' has no field 'qyt'; did you mean 'qty'?"
    )
    assert form.validate({"qyt": None})[0].code == "unknown-field"


def test_unknown_fields_are_ignored_when_not_known_only(form: TemplateForm) -> None:
    assert form.validate({"qyt": 1, "legacy": None, "qty": 2}, known_only=False) == []
    assert form.validate({"qyt": 1, "qty": 9}, known_only=False)[0].field == "qty"


def test_read_only_fields_must_not_be_given(form: TemplateForm) -> None:
    problems = form.validate({"twice": 4, "qty": 2}, read_only=form.computed)
    assert problems == [FieldProblem("twice", "read-only", "cannot be changed")]


def test_every_problem_is_reported_sorted_by_field_order(form: TemplateForm) -> None:
    values = {
        "zzz": 1,
        "rating": 9,
        "parts": [{"part_no": "A", "qty": 0}] * 11 + [{"qty": "x"}],
        "code": "bad",
        "qty": 0,
    }
    fields = [p.field for p in form.validate(values)]
    assert fields == [
        "code",
        "qty",
        "rating",
        "parts",
        "parts[0].qty",
        "parts[1].qty",
        "parts[2].qty",
        "parts[3].qty",
        "parts[4].qty",
        "parts[5].qty",
        "parts[6].qty",
        "parts[7].qty",
        "parts[8].qty",
        "parts[9].qty",
        "parts[10].qty",
        "parts[11].part_no",
        "parts[11].qty",
        "zzz",
    ]


def test_non_object_values_are_one_problem(form: TemplateForm) -> None:
    assert form.validate(["qty"]) == [  # type: ignore[arg-type]
        FieldProblem("", "type", "must be an object of field values")
    ]


def test_path_text() -> None:
    assert path_text(("parts", 2, "qty")) == "parts[2].qty"
    assert path_text(("site", "lat")) == "site.lat"
    assert path_text(()) == ""


# -- one compiled validator ------------------------------------------------------------------


def test_the_validator_is_compiled_once_per_form(
    retail: TemplateForm, monkeypatch: pytest.MonkeyPatch
) -> None:
    validator = retail.validator

    def no_compiling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validate() compiled a schema")

    monkeypatch.setattr(form_schema, "FormValidator", no_compiling)
    monkeypatch.setattr(jsonschema, "Draft202012Validator", no_compiling)
    for i in range(200):
        assert retail.validate({"store_no": f"S{i:04d}", "category": "pos"}) == []
        assert retail.validate({"store_no": "bad"})[0].code == "pattern"
    assert retail.validator is validator


def test_the_template_schema_holds_every_field_and_no_other(retail: TemplateForm) -> None:
    assert retail.schema["additionalProperties"] is False
    assert retail.schema["properties"] == dict(retail.schemas)
    assert retail.validator.schema is retail.schema


PAYLOADS = st.dictionaries(
    st.sampled_from(["code", "qty", "weight", "priority", "tags", "due", "site", "parts", "nope"]),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 7),
        st.floats(-1, 2, allow_nan=False),
        st.sampled_from(["", "S0001", "P1", "P9", "2026-11-25", "2026-02-30", "a"]),
        st.lists(st.sampled_from(["a", "b", "z"]), max_size=3),
        st.fixed_dictionaries({"lat": st.integers(-100, 100), "lon": st.integers(-200, 200)}),
        st.lists(
            st.fixed_dictionaries(
                {"part_no": st.sampled_from(["A", ""]), "qty": st.integers(0, 2)}
            ),
            max_size=4,
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(values=PAYLOADS)
def test_validate_agrees_with_the_compiled_template_schema(
    form: TemplateForm, values: dict[str, Any]
) -> None:
    # validate() answers from per-field validators first; the template's validator decides.
    assert (form.validate(values) == []) == form.validator.is_valid(values)


# The compiled accept checks may say no where the validator says yes (that only costs time),
# never yes where it says no.
KEYS = ["lat", "lon", "address", "id", "name", "content_type", "size", "url", "image"]
KEYS += ["signed_by", "signed_at", "part_no", "qty", "used_on", "unit_cost", "x"]
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.integers(),
    st.floats(),
    st.text(alphabet="aS01.-@:/ \n", max_size=8),
    st.sampled_from([value for _, value in VALID]),
    st.sampled_from([value for _, value, _, _ in INVALID]),
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted({n for n, _ in VALID})), value=JSON_VALUES)
def test_a_compiled_check_accepts_only_what_the_validator_accepts(
    form: TemplateForm, name: str, value: Any
) -> None:
    schema = form.schemas[name]
    if compile_check(schema)(value):
        assert FormValidator(schema, format_checker=FORMAT_CHECKER).is_valid(value)


@pytest.mark.parametrize(("name", "value"), VALID, ids=[f"{n}={v!r}"[:60] for n, v in VALID])
def test_a_compiled_check_accepts_valid_values_without_the_validator(
    form: TemplateForm, name: str, value: Any
) -> None:
    assert compile_check(form.schemas[name])(value)


def test_a_valid_payload_never_walks_the_validator(
    retail: TemplateForm, monkeypatch: pytest.MonkeyPatch
) -> None:
    def walking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the validator walked a valid payload")

    monkeypatch.setattr(type(retail.validator), "iter_errors", walking)
    payload = {
        "store_no": "S0123",
        "category": "hvac",
        "priority": "P2",
        "description": "AC blows warm air",
        "asset": "AC-01",
        "parts_approved": False,
        "store_location": {"lat": 31.23, "lon": 121.47},
        "rating": 4,
        "parts": [{"part_no": "P-1", "qty": 2, "unit_cost": 12.5}, {"part_no": "P-2", "qty": 1}],
        "photos": [{"id": "f1", "name": "a.jpg", "content_type": "image/jpeg"}],
        "signature": {"image": "data:image/png;base64,iVBORw0KGgo="},
        "engineer_notes": None,
    }
    assert retail.validate(payload, required=["signature"]) == []


def test_a_schema_with_a_keyword_the_compiler_does_not_know_uses_the_validator() -> None:
    check = compile_check({"type": "integer", "multipleOf": 3})
    assert check(9)
    assert not check(10)


# -- value schemas ---------------------------------------------------------------------------


def test_every_value_schema_is_a_valid_draft_2020_12_schema(form: TemplateForm) -> None:
    for schema in form.schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_a_value_schema_without_null_refuses_empty_values(form: TemplateForm) -> None:
    strict = jsonschema.Draft202012Validator(value_schema(form.specs["owner"], nullable=False))
    assert strict.is_valid("u1")
    assert not strict.is_valid(None)
    assert not strict.is_valid("")
    tags = jsonschema.Draft202012Validator(value_schema(form.specs["tags"], nullable=False))
    assert not tags.is_valid([])


def test_a_bare_money_column_still_gets_a_schema() -> None:
    # The pack checks refuse it (no currency); building a form must not crash on it.
    table = TableField(type="table", columns={"cost": "money", "qty": "integer"})
    row = value_schema(table)["items"]["properties"]
    assert row["cost"]["type"] == ["number", "null"]
    assert row["qty"]["type"] == ["integer", "null"]


def test_computed_fields_are_read_only_in_the_schema(form: TemplateForm) -> None:
    assert form.schemas["twice"]["readOnly"] is True
    assert form.computed == frozenset({"twice"})


def test_a_team_field_names_one_of_the_packs_teams(form: TemplateForm) -> None:
    assert form.schemas["team"]["enum"] == ["facilities", "it_support", None]


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="0123456789wdhms \n", max_size=12))
def test_the_duration_pattern_accepts_what_parse_duration_reads(text: str) -> None:
    try:
        parse_duration(text)
        readable = True
    except ValueError:
        readable = False
    assert (jsonschema.Draft202012Validator({"pattern": DURATION_PATTERN}).is_valid(text)) == (
        readable
    )


@pytest.mark.parametrize(
    ("name", "attack"),
    [
        ("contact", "a@" + ".b" * 50_000),
        ("contact", "a" * 100_000 + "@"),
        ("phone", "1" + " " * 100_000 + "x"),
        ("link", "http://" + "a" * 100_000 + " "),
        ("effort", "1" * 100_000),
        ("code", "S" * 200_000),
    ],
)
def test_long_values_are_refused_quickly(form: TemplateForm, name: str, attack: str) -> None:
    started = time.perf_counter()
    assert form.validate({name: attack})
    assert time.perf_counter() - started < 0.5


def test_accept_matches_media_types_and_extensions() -> None:
    assert accepts(["image/*"], "a.jpg", "image/jpeg")
    assert accepts(["image/*"], "a.jpg", "IMAGE/PNG; charset=binary")
    assert not accepts(["image/*"], "a.jpg", "video/mp4")
    assert accepts(["image/*"], "a.jpg", None)  # nothing to check against
    assert accepts([".pdf"], "x.PDF", None)
    assert not accepts([".pdf"], "x.doc", None)
    assert accepts(["application/pdf", ".pdf"], "x", "application/pdf")


# -- normalize -------------------------------------------------------------------------------


def test_normalize_makes_empty_text_null_and_integral_floats_ints(form: TemplateForm) -> None:
    values = {
        "code": "",
        "qty": 3.0,
        "rating": 4.0,
        "weight": 2.0,
        "seen_at": "2026-11-25T09:30:00",
        "parts": [{"part_no": "", "qty": 2.0, "used_on": ""}],
        "unknown": "",
    }
    out = form.normalize(values)
    assert out == {
        "code": None,
        "qty": 3,
        "rating": 4,
        "weight": 2.0,
        "seen_at": "2026-11-25T09:30:00",  # no offset: not guessed, validate refuses it
        "parts": [{"part_no": None, "qty": 2, "used_on": None}],
        "unknown": "",
    }
    assert type(out["qty"]) is int
    assert values["code"] == ""  # the input is not changed
    assert form.validate(out, known_only=False)[0].field == "seen_at"


# -- to_env ----------------------------------------------------------------------------------


def test_to_env_converts_stored_json_to_expression_values(form: TemplateForm) -> None:
    stored = {
        "due": "2026-11-25",
        "seen_at": "2026-11-25T09:30:00+08:00",
        "effort": "1h30m",
        "weight": 2,
        "cost": 12,
        "qty": 3,
        "site": {"lat": 1.0, "lon": 2.0},
        "parts": [{"part_no": "A", "qty": 1, "used_on": "2026-11-24", "unit_cost": 3}],
        "twice": 6,
        "link": None,
    }
    env = form.to_env(stored)
    assert env["due"] == date(2026, 11, 25)
    assert env["seen_at"] == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    assert env["seen_at"].utcoffset() == timedelta(hours=8)
    assert env["effort"] == timedelta(hours=1, minutes=30)
    assert type(env["weight"]) is float and type(env["cost"]) is float
    assert type(env["twice"]) is float
    assert env["qty"] == 3 and env["site"] == {"lat": 1.0, "lon": 2.0}
    assert env["parts"] == [
        {"part_no": "A", "qty": 1, "used_on": date(2026, 11, 24), "unit_cost": 3.0}
    ]
    assert env["link"] is None
    assert "owner" not in env
    assert stored["due"] == "2026-11-25"  # the stored values are not changed
    assert stored["parts"][0]["used_on"] == "2026-11-24"


def test_to_env_feeds_the_expression_evaluator(form: TemplateForm) -> None:
    env = form.to_env(
        {"due": "2026-11-20", "effort": "2h", "seen_at": "2026-11-25T09:30:00+08:00", "qty": 2}
    )
    env["now"] = NOW

    def run(text: str) -> Any:
        return compile_expression(parse_expression(text), frozenset(form.specs))(env)

    assert run("days_since(due) == 5") is True
    assert run("effort > 1h") is True
    assert run("hours_since(seen_at) == 16") is True
    assert run("qty * weight") is None


def test_to_env_names_the_field_of_an_unreadable_stored_value(form: TemplateForm) -> None:
    with pytest.raises(ValueError, match="date field 'due'"):
        form.to_env({"due": "someday"})


def test_to_env_of_a_template_without_conversions_copies(retail: TemplateForm) -> None:
    stored = {"store_no": "S0001", "rating": 5}
    env = retail.to_env(stored)
    assert env == stored and env is not stored


# -- defaults --------------------------------------------------------------------------------


def test_defaults_are_stored_json_read_off_the_clock(form: TemplateForm) -> None:
    defaults = form.defaults(NOW)  # 17:30 UTC is 01:30 the next day in Shanghai
    assert defaults == {
        "urgent": False,
        "priority": "P3",
        "tags": ["a"],
        "due": "2026-11-26",
        "seen_at": "2026-11-26T01:30:00+08:00",
        "effort": "1h",
        "team": "facilities",
    }
    assert form.validate(defaults) == []
    assert form.defaults(NOW, "UTC")["due"] == "2026-11-25"
    assert form.defaults(NOW, timezone(timedelta(hours=-5)))["seen_at"] == (
        "2026-11-25T12:30:00-05:00"
    )


def test_defaults_are_fresh_copies(form: TemplateForm) -> None:
    form.defaults(NOW)["tags"].append("b")
    assert form.defaults(NOW)["tags"] == ["a"]


def test_clock_defaults_need_an_aware_now(form: TemplateForm) -> None:
    with pytest.raises(ValueError, match="aware"):
        form.defaults()
    with pytest.raises(ValueError, match="aware"):
        form.defaults(datetime(2026, 11, 25, 12, 0))


# -- every example ---------------------------------------------------------------------------


def _example_templates() -> list[tuple[str, str]]:
    found = []
    for pack_dir in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        pack = load_pack_path(pack_dir).pack
        assert pack is not None
        found += [(pack_dir.name, name) for name in pack.templates]
    return found


@pytest.mark.parametrize(("pack_dir", "template"), _example_templates())
def test_every_example_template_builds_and_its_defaults_validate(
    pack_dir: str, template: str
) -> None:
    pack = load_pack_path(EXAMPLES / pack_dir).pack
    assert pack is not None
    form = TemplateForm.build(pack, template)
    defaults = form.defaults(NOW)
    assert form.validate(defaults) == []
    assert form.validate(form.normalize(defaults)) == []
    assert form.validate(dict.fromkeys(form.specs)) == []
    for locale in (None, *pack.locales):
        schema = form.json_schema(locale=locale, state="closed")
        jsonschema.Draft202012Validator.check_schema(schema)
        json.dumps(schema)
    missing = form.validate(defaults, required=form.required_on_create)
    assert {p.field for p in missing} == {n for n in form.required_on_create if n not in defaults}
    assert {p.code for p in missing} <= {"required"}


# -- the UI form schema ----------------------------------------------------------------------


def test_json_schema_is_cached_per_arguments(retail: TemplateForm) -> None:
    first = retail.json_schema(locale="en", writable=["photos", "rating"])
    assert retail.json_schema(locale="en", writable=("rating", "photos")) is first
    assert retail.json_schema(locale="zh", writable=["photos", "rating"]) is not first


def test_json_schema_marks_fields_not_writable_read_only(retail: TemplateForm) -> None:
    schema = retail.json_schema(writable=["photos"])
    props = schema["properties"]
    assert "readOnly" not in props["photos"]
    assert props["store_no"]["readOnly"] is True
    assert props["parts"]["items"]["properties"]["qty"]["readOnly"] is True
    assert all("readOnly" not in p for p in retail.json_schema(writable="*")["properties"].values())


def test_json_schema_requires_fields_of_the_state(retail: TemplateForm) -> None:
    assert retail.json_schema()["required"] == ["store_no", "category"]
    resolved = retail.json_schema(state="resolved", required=["engineer_notes"])
    assert resolved["required"] == ["store_no", "category", "engineer_notes", "signature"]
    assert resolved["properties"]["signature"]["type"] == "object"  # null no longer allowed
    assert resolved["properties"]["engineer_notes"]["minLength"] == 1


def test_json_schema_of_the_store_repair_form(retail: TemplateForm, snapshot: Any) -> None:
    assert retail.json_schema(locale="en") == snapshot


def test_json_schema_of_the_store_repair_form_in_chinese_for_a_store_manager(
    retail: TemplateForm, snapshot: Any
) -> None:
    schema = retail.json_schema(locale="zh", state="resolved", writable=["photos", "rating"])
    assert schema == snapshot


def test_json_schema_of_every_field_type(form: TemplateForm, snapshot: Any) -> None:
    assert form.json_schema(locale="zh-Hans") == snapshot


# -- the runtime's problem type --------------------------------------------------------------


def test_the_runtime_reports_the_engines_field_problems() -> None:
    from runtime.records import FieldProblem as RuntimeFieldProblem

    assert RuntimeFieldProblem is FieldProblem
