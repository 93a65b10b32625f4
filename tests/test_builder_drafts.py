"""Drafts as the builder edits them: validation located in the text and in the model, the
merged JSON, and JSON edits applied to the YAML with the admin's comments kept."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder_api.drafts import (
    DraftError,
    apply_merge_patch,
    document_yaml,
    draft_document,
    replace_from_json,
    validate_files,
)
from builder_api.merge_patch import apply_to_data, patch_between
from dsl.yaml_loader import load_yaml_text
from engine.load import load_pack_path, load_pack_texts
from engine.schema import SCHEMA_ID

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "workflows"
RETAIL = EXAMPLES / "retail_store"
BROKEN = ROOT / "tests" / "broken"


def _files(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): p.read_text(encoding="utf-8")
        for p in sorted(directory.rglob("*"))
        if p.suffix in (".yaml", ".yml", ".flow")
    }


@pytest.fixture
def retail() -> dict[str, str]:
    return _files(RETAIL)


def _at(files: dict[str, str], file: str | None, line: int | None, column: int | None) -> str:
    assert file is not None and line is not None and column is not None
    return files[file].splitlines()[line - 1][column - 1 :]


# -- load_pack_texts: the same checks as files on disk ---------------------------------------


@pytest.mark.parametrize("directory", sorted(p for p in EXAMPLES.iterdir() if p.is_dir()))
def test_texts_load_like_the_directory(directory: Path) -> None:
    disk = load_pack_path(directory)
    texts = load_pack_texts(_files(directory))
    assert texts.ok and disk.ok
    assert texts.pack is not None and disk.pack is not None
    assert texts.pack.model_dump() == disk.pack.model_dump()


@pytest.mark.parametrize(
    "case", ["multi_duplicate_template", "multi_syntax_error_in_one_file", "ref_unknown_role.yaml"]
)
def test_texts_report_what_the_directory_reports(case: str) -> None:
    path = BROKEN / case
    disk = load_pack_path(path)
    files = _files(path) if path.is_dir() else {path.name: path.read_text(encoding="utf-8")}
    texts = load_pack_texts(files)
    assert not texts.ok
    assert [(d.code, d.span and (d.span.line, d.span.column)) for d in texts.diagnostics] == [
        (d.code, d.span and (d.span.line, d.span.column)) for d in disk.diagnostics
    ]
    # File names are shown as given, not as paths on disk.
    assert all(d.span is None or d.span.file in files for d in texts.diagnostics)


@pytest.mark.parametrize(
    "name",
    [
        "/etc/pack.yaml",
        "../pack.yaml",
        "a//b.yaml",
        "notes.txt",
        ".yaml",
        "a\\b.yaml",
        "x" * 300 + ".yaml",
    ],
)
def test_names_that_are_not_plain_relative_pack_files_are_refused(name: str) -> None:
    result = load_pack_texts({name: "pack: x\n", "pack.yaml": "title: x\n"})
    assert [d.code for d in result.diagnostics] == ["bad-file-name"]
    assert repr(name) in result.diagnostics[0].message and result.pack is None


# -- validate_files --------------------------------------------------------------------------


def test_the_retail_example_validates(retail: dict[str, str]) -> None:
    report = validate_files(retail)
    assert report.ok and report.errors == 0 and report.diagnostics == ()


def test_a_broken_draft_gives_every_error_located_in_text_and_model(
    retail: dict[str, str],
) -> None:
    files = dict(retail)
    files["store_repair.yaml"] = files["store_repair.yaml"].replace(
        "workflow: repair", "workflow: repiar"
    )
    files["inspection.yaml"] = files["inspection.yaml"].replace(
        "roles: [area_manager, engineer]\n        form: [store_location]",
        "roles: [area_manger, engineer]\n        form: [store_location]",
    )
    report = validate_files(files)
    assert not report.ok and report.errors == 2
    by_pointer = {d.pointer: d for d in report.diagnostics}
    workflow = by_pointer["/templates/store_repair/workflow"]
    assert (workflow.file, workflow.line, workflow.column) == ("store_repair.yaml", 12, 15)
    assert workflow.end_line == 12 and workflow.end_column == 21
    assert workflow.hint == "did you mean 'repair'?"
    role = by_pointer["/workflows/inspection/transitions/check_in/roles/0"]
    assert role.file == "inspection.yaml" and role.code == "unknown-reference"
    for d in report.diagnostics:
        assert _at(files, d.file, d.line, d.column).startswith(("repiar", "area_manger"))


def test_model_errors_carry_pointers_too(retail: dict[str, str]) -> None:
    files = dict(retail)
    files["store_repair.yaml"] = files["store_repair.yaml"].replace(
        "scale: 5", "scale: 5\n        colour: gold"
    )
    (d,) = validate_files(files).diagnostics
    assert d.pointer == "/templates/store_repair/fields/rating/colour"
    assert _at(files, d.file, d.line, d.column).startswith("colour")


def test_a_pointer_missing_from_a_diagnostic_is_recovered_from_the_source_map() -> None:
    path = BROKEN / "multi_duplicate_template"
    files = _files(path)
    disk = load_pack_path(path)
    assert any(d.code == "duplicate-definition" and d.pointer is None for d in disk.diagnostics)
    duplicates = [d for d in validate_files(files).diagnostics if d.code == "duplicate-definition"]
    assert duplicates and all(d.pointer and d.pointer.startswith("/") for d in duplicates)
    for d in duplicates:
        name = d.pointer.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        assert _at(files, d.file, d.line, d.column).startswith(name)


def test_a_syntax_error_is_located_without_a_pointer(retail: dict[str, str]) -> None:
    files = {**retail, "pack.yaml": retail["pack.yaml"].replace("timezone:", "timezone", 1)}
    report = validate_files(files)
    assert not report.ok
    (d,) = report.diagnostics
    assert d.file == "pack.yaml" and d.line is not None and d.pointer is None


# -- documents -------------------------------------------------------------------------------


def test_draft_document_is_the_merged_json(retail: dict[str, str]) -> None:
    doc = draft_document(retail)
    assert doc is not None
    assert set(doc["templates"]) == {"store_repair", "store_inspection"}
    assert doc["pack"] == "retail_store"
    json.dumps(doc)  # plain JSON, shared YAML aliases included
    broken = {**retail, "pack.yaml": "pack: [unclosed\n"}
    assert draft_document(broken) is None


def test_document_yaml_is_canonical_and_reads_back(retail: dict[str, str]) -> None:
    doc = draft_document(retail)
    assert doc is not None
    text = document_yaml(doc)
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_ID}"
    loaded, diagnostics = load_yaml_text(text, "pack.yaml")
    assert not diagnostics and loaded is not None and loaded.data == doc
    assert validate_files({"pack.yaml": text}).ok


def test_document_yaml_refuses_data_that_is_not_json() -> None:
    with pytest.raises(DraftError) as caught:
        document_yaml({"pack": "x", "templates": {"t": {"ref": {1, 2}}}})
    assert [d.pointer for d in caught.value.diagnostics] == ["/templates/t/ref"]


# -- merge patches ---------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_a_merge_patch_keeps_comments_across_the_files_of_a_pack(
    retail: dict[str, str],
) -> None:
    before = copy.deepcopy(retail)
    patch = {
        "templates": {
            "store_repair": {"fields": {"priority": {"default": "P2"}, "engineer_notes": None}},
            "store_inspection": {"title": {"en": "Store audit"}},
        },
        "workflows": {"repair": {"states": {"waiting_parts": {"sla": "stop"}}}},
        "rules": {"new_rule": {"on": "created", "do": [{"set": {"priority": "P1"}}]}},
        "version": "2026.1",
    }
    out = apply_merge_patch(retail, patch)
    assert retail == before  # the input is never changed
    repair, inspection, pack = out["store_repair.yaml"], out["inspection.yaml"], out["pack.yaml"]
    for comment in (
        "# P1: the store cannot trade or food is at risk (cold chain, no power, all tills down).",
        "# P2: part of the store is affected. P3: everything else.",
        "# Taken by the dispatcher by hand, or by the rule routed_means_assigned when routing",
        "# Counted in store opening hours: overnight, when the store is shut, the clocks stand still.",
    ):
        assert comment in _lines(repair)
    assert "# A store closed for a refit is not inspected that month." in _lines(inspection)
    assert "# Retail chain: store repairs and monthly store inspections." in _lines(pack)
    # Each edit landed in the file that holds what it edits; new things in a holder of
    # their section, a new setting in the main file.
    assert "default: P2" in repair and "engineer_notes: {" not in repair
    assert "Store audit" in inspection
    assert "new_rule:" in inspection and "new_rule" not in repair
    assert "version: '2026.1'" in pack
    doc = draft_document(out)
    assert doc is not None
    assert doc["templates"]["store_repair"]["fields"]["priority"]["default"] == "P2"
    assert "engineer_notes" not in doc["templates"]["store_repair"]["fields"]
    assert doc["templates"]["store_inspection"]["title"] == {"en": "Store audit", "zh": "门店巡检"}
    assert doc["workflows"]["repair"]["states"]["waiting_parts"]["sla"] == "stop"
    assert doc["version"] == "2026.1"
    assert doc == apply_to_data(draft_document(retail), patch)


def test_untouched_files_and_lines_stay_byte_for_byte(retail: dict[str, str]) -> None:
    out = apply_merge_patch(retail, {"workflows": {"inspection": {"initial": "on_site"}}})
    assert out["pack.yaml"] == retail["pack.yaml"]
    assert out["store_repair.yaml"] == retail["store_repair.yaml"]
    old, new = retail["inspection.yaml"].splitlines(), out["inspection.yaml"].splitlines()
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert changed == [("    initial: planned", "    initial: on_site")]


def test_a_patch_that_changes_nothing_returns_the_files_as_they_were(
    retail: dict[str, str],
) -> None:
    assert apply_merge_patch(retail, {"pack": "retail_store", "nothing": None}) == retail


def test_deleting_an_entry_keeps_the_comments_around_it(retail: dict[str, str]) -> None:
    out = apply_merge_patch(retail, {"rules": {"monthly_inspection": None}})
    text = out["inspection.yaml"]
    assert "monthly_inspection:" not in text
    assert "# A store closed for a refit is not inspected that month." in _lines(text)
    doc = draft_document(out)
    assert doc is not None and "monthly_inspection" not in doc["rules"]


def test_a_new_section_goes_into_the_main_file(retail: dict[str, str]) -> None:
    out = apply_merge_patch(retail, {"canned_replies": None, "skills": {"welding": {}}})
    assert "welding: {}" in out["pack.yaml"]
    assert "canned_replies" not in out["inspection.yaml"]


def test_a_flow_file_is_edited_with_its_comments() -> None:
    files = {
        "pack.yaml": (
            "pack: demo\ntitle: {en: Demo}\ntimezone: UTC\nroles: [agent, customer]\n"
            "templates:\n  repair: {title: {en: Repair}, workflow: basic}\n"
        ),
        "flows/basic.flow": (
            "# The basic workflow.\nworkflow basic {\n  initial open\n  # where tickets start\n"
            "  state open\n  final done\n  open -> done : finish roles agent  # the only way out\n}\n"
        ),
    }
    assert validate_files(files).ok
    out = apply_merge_patch(
        files, {"workflows": {"basic": {"transitions": {"finish": {"roles": ["customer"]}}}}}
    )
    flow = out["flows/basic.flow"]
    assert "# The basic workflow." in flow and "# where tickets start" in flow
    assert "finish roles customer  # the only way out" in flow
    assert out["pack.yaml"] == files["pack.yaml"]
    doc = draft_document(out)
    assert doc is not None
    assert doc["workflows"]["basic"]["transitions"]["finish"]["roles"] == ["customer"]


@pytest.mark.parametrize(
    ("patch", "pointer", "code"),
    [
        (["templates"], "", "draft-not-an-object"),
        ({"templates": {"x": {"ref": math.nan}}}, "/templates/x/ref", "draft-bad-value"),
        ({"rules": {"r": {"do": [{"set": object()}]}}}, "/rules/r/do/0/set", "draft-bad-value"),
        ({"rules": {1: {}}}, "/rules", "draft-bad-key"),
    ],
)
def test_bad_patch_shapes_are_refused_with_pointers(
    retail: dict[str, str], patch: Any, pointer: str, code: str
) -> None:
    with pytest.raises(DraftError) as caught:
        apply_merge_patch(retail, patch)
    (d,) = caught.value.diagnostics
    assert (d.code, d.pointer) == (code, pointer)
    (view,) = caught.value.views()
    assert view.pointer == pointer and view.file is None


def test_a_patch_nested_too_deep_is_refused(retail: dict[str, str]) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(DraftError) as caught:
        apply_merge_patch(retail, {"messages": deep})
    assert caught.value.diagnostics[0].code == "draft-too-deep"


def test_a_draft_whose_file_does_not_parse_cannot_be_patched(retail: dict[str, str]) -> None:
    files = {**retail, "pack.yaml": "pack: [unclosed\n"}
    with pytest.raises(DraftError) as caught:
        apply_merge_patch(files, {"version": "2"})
    (d,) = caught.value.diagnostics
    assert d.code == "yaml-syntax" and d.span is not None and d.span.file == "pack.yaml"


def test_a_draft_starts_from_nothing() -> None:
    out = apply_merge_patch({}, {"pack": "new", "title": {"en": "New"}, "timezone": "UTC"})
    assert list(out) == ["pack.yaml"]
    assert draft_document(out) == {"pack": "new", "title": {"en": "New"}, "timezone": "UTC"}


# -- replacing from JSON ---------------------------------------------------------------------


def test_replace_from_json_round_trips_and_keeps_comments(retail: dict[str, str]) -> None:
    doc = draft_document(retail)
    assert doc is not None
    new = copy.deepcopy(doc)
    states = new["workflows"]["repair"]["states"]
    del states["waiting_parts"]
    new["workflows"]["repair"]["transitions"] = {
        k: t
        for k, t in new["workflows"]["repair"]["transitions"].items()
        if "waiting_parts" not in (t["to"], t["from"])
    }
    new["templates"]["store_repair"]["fields"]["priority"]["options"] = ["P1", "P2"]
    new["templates"]["store_repair"]["fields"]["priority"]["default"] = "P2"
    new["roles"]["auditor"] = {"title": {"en": "Auditor", "zh": "审计"}}
    new["description"] = None  # null means absent
    out = replace_from_json(retail, new)
    del new["description"]
    assert draft_document(out) == new
    assert "# P2: part of the store is affected. P3: everything else." in _lines(
        out["store_repair.yaml"]
    )
    assert out["inspection.yaml"] == retail["inspection.yaml"]
    assert "waiting_parts: {" not in out["store_repair.yaml"]


def test_replacing_with_the_same_document_changes_no_byte(retail: dict[str, str]) -> None:
    doc = draft_document(retail)
    assert doc is not None
    assert replace_from_json(retail, doc) == retail


# -- the merge patch itself ------------------------------------------------------------------

RFC_7396_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7396_EXAMPLES)
def test_merge_patch_follows_the_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    assert apply_to_data(target, patch) == result


_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text("ab", max_size=2)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=12,
)
_objects = st.dictionaries(st.sampled_from("abcd"), _json, max_size=4)


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    return value


@settings(max_examples=200, deadline=None)
@given(old=_objects, new=_objects)
def test_patch_between_turns_the_old_document_into_the_new(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    old = _no_nulls(old)
    assert apply_to_data(old, patch_between(old, new)) == _no_nulls(new)


def test_a_section_spread_as_lists_is_replaced_in_one_file() -> None:
    files = {
        "pack.yaml": "pack: demo  # the id\nroles: [agent]  # staff\n",
        "more.yaml": "# more roles\nroles: [customer]\n",
    }
    out = apply_merge_patch(files, {"roles": ["agent", "customer", "auditor"]})
    assert out["pack.yaml"] == "pack: demo  # the id\nroles: [agent, customer, auditor] # staff\n"
    assert out["more.yaml"] == "# more roles\n{}\n"
    assert draft_document(out) == {"pack": "demo", "roles": ["agent", "customer", "auditor"]}


def test_a_key_merged_in_with_yaml_merge_keys_cannot_be_deleted_through_json() -> None:
    files = {
        "pack.yaml": (
            "workflows:\n  w:\n    transitions:\n"
            "      t1: &t {from: a, to: b, roles: [agent]}\n"
            "      t2: {<<: *t, to: c}\n"
        )
    }
    with pytest.raises(DraftError) as caught:
        apply_merge_patch(files, {"workflows": {"w": {"transitions": {"t2": {"roles": None}}}}})
    (d,) = caught.value.diagnostics
    assert d.code == "draft-cannot-edit" and d.pointer == "/workflows/w/transitions/t2/roles"
    assert "merge" in d.message
