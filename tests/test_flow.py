"""The text DSL (`.flow` files): same data as YAML, located errors, canonical formatting.

- every example pack goes YAML -> model -> DSL -> model unchanged, and its DSL form validates;
- `format_flow` is idempotent and keeps every comment;
- a pack may mix YAML and DSL files; semantic errors point into the DSL text;
- the corpus `tests/flow_bad/` holds one mistake per file (described in its first line); the
  rendered diagnostics are snapshot-tested in `__snapshots__/test_flow.ambr`: after changing
  a message on purpose, review and refresh with `pytest tests/test_flow.py --snapshot-update`;
- hostile input (deep nesting, oversize files) fails fast.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from dsl.diagnostics import Diagnostic, render_text
from dsl.flow_parser import load_flow_file, load_flow_text, parse_flow
from dsl.flow_writer import FlowFormatError, format_flow, write_flow
from dsl.sources import MergedDocument, PackSource, discover_packs
from dsl.yaml_loader import LoadLimits
from engine.load import PackResult, load_pack, load_pack_path, validate_document
from engine.model import Pack

BAD = Path(__file__).resolve().parent / "flow_bad"
BAD_CASES = sorted(p.stem for p in BAD.glob("*.flow"))
PACKS = discover_packs([EXAMPLES])

# The engine's callable discriminators make pydantic warn while serialising actions and
# triggers (the output is right); that is the engine's business, not this file's.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


def _dump(pack: Pack) -> dict[str, Any]:
    return pack.model_dump(by_alias=True, exclude_defaults=True, mode="json")


def _yaml_pack(source: PackSource) -> PackResult:
    result = load_pack(source)
    if result.pack is None or not result.ok:
        pytest.skip(f"{source.root.name}: the YAML pack itself does not validate")
    return result


def _errors(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.headline() for d in diagnostics if d.is_error]


# -- (a) every example pack: YAML -> model -> DSL -> model ---------------------------------------


def test_there_are_example_packs() -> None:
    assert PACKS


@pytest.mark.parametrize("source", PACKS, ids=[p.root.name for p in PACKS])
def test_example_pack_round_trips_through_the_dsl(source: PackSource) -> None:
    result = _yaml_pack(source)
    assert result.pack is not None
    text = write_flow(_dump(result.pack))
    doc, diagnostics = load_flow_text(text, f"{source.root.name}.flow")
    assert doc is not None, render_text(diagnostics, {f"{source.root.name}.flow": text})
    again = Pack.model_validate(doc.data)
    assert again.model_dump() == result.pack.model_dump()


@pytest.mark.parametrize("source", PACKS, ids=[p.root.name for p in PACKS])
def test_example_pack_in_the_dsl_validates_like_the_yaml(
    source: PackSource, tmp_path: Path
) -> None:
    result = _yaml_pack(source)
    assert result.pack is not None
    path = tmp_path / "pack.flow"
    path.write_text(write_flow(_dump(result.pack)), encoding="utf-8")
    flow = load_pack_path(path)
    assert flow.pack is not None and _errors(flow.diagnostics) == []
    assert flow.pack.model_dump() == result.pack.model_dump()
    # The same warnings too (e.g. unused definitions), now located in the DSL file.
    assert Counter(d.code for d in flow.diagnostics) == Counter(d.code for d in result.diagnostics)
    assert all(d.span is not None and d.span.file == str(path) for d in flow.diagnostics)


@pytest.mark.parametrize("source", PACKS, ids=[p.root.name for p in PACKS])
def test_written_dsl_is_already_canonical(source: PackSource) -> None:
    result = _yaml_pack(source)
    assert result.pack is not None
    text = write_flow(_dump(result.pack))
    assert format_flow(text) == text


# -- the format, by example ----------------------------------------------------------------------

SKETCH = """\
workflow repair {
  initial new
  states new, assigned, in_progress, resolved
  state waiting_parts pauses sla
  final closed
  new -> assigned         : assign  roles dispatcher requires assignee
  in_progress -> resolved : resolve when len(parts) == 0 or parts_approved requires signature
}
rule p1_alert on created if priority == "P1" do notify "role:manager" via sms, wecom message p1_alert
"""


def test_design_sketch_means_what_the_yaml_sketch_means() -> None:
    doc, diagnostics = load_flow_text(SKETCH, "sketch.flow")
    assert doc is not None and not diagnostics
    assert doc.data == {
        "workflows": {
            "repair": {
                "initial": "new",
                "states": {
                    "new": {},
                    "assigned": {},
                    "in_progress": {},
                    "resolved": {},
                    "waiting_parts": {"sla": "pause"},
                    "closed": {"final": True},
                },
                "transitions": {
                    "assign": {
                        "from": "new",
                        "to": "assigned",
                        "roles": ["dispatcher"],
                        "requires": ["assignee"],
                    },
                    "resolve": {
                        "from": "in_progress",
                        "to": "resolved",
                        "when": "len(parts) == 0 or parts_approved",
                        "requires": ["signature"],
                    },
                },
            }
        },
        "rules": {
            "p1_alert": {
                "on": "created",
                "if": 'priority == "P1"',
                "do": [
                    {
                        "notify": {
                            "to": "role:manager",
                            "via": ["sms", "wecom"],
                            "message": "p1_alert",
                        }
                    }
                ],
            }
        },
    }


def test_expressions_keep_their_exact_source_text() -> None:
    text = 'rule r on created if priority   ==  "P1"  and (a or\n   b) do notify x\n'
    doc, _ = load_flow_text(text)
    assert doc is not None
    assert doc.data["rules"]["r"]["if"] == 'priority   ==  "P1"  and (a or\n   b)'


def test_keywords_are_names_where_a_name_is_expected() -> None:
    text = (
        "template t {\n"
        "  field owner team required\n"
        "  field state text\n"
        "  field c choice {\n"
        "    option label\n"
        "  }\n"
        "}\n"
        'workflow w {\n  initial final\n  states final, do\n  "state" -> do : then\n}\n'
    )
    doc, diagnostics = load_flow_text(text)
    assert doc is not None, diagnostics
    fields = doc.data["templates"]["t"]["fields"]
    assert fields["owner"] == {"type": "team", "required": True}
    assert fields["state"] == {"type": "text"}
    assert fields["c"]["options"] == ["label"]
    assert doc.data["workflows"]["w"]["transitions"]["then"] == {"from": "state", "to": "do"}


def test_scalars_mean_what_they_mean_in_yaml() -> None:
    text = (
        "x {a: 5, b: 5.0, c: -3, d: true, e: null, f: 30m, g: 80%, h: 2026-01-04, i: P1,\n"
        '   j: "5", k: mon-fri, l: \'^S\\d{4}$\', m: "tab\\there", n: []}\n'
    )
    doc, diagnostics = load_flow_text(text)
    assert doc is not None, diagnostics
    assert doc.data["x"] == {
        "a": 5,
        "b": 5.0,
        "c": -3,
        "d": True,
        "e": None,
        "f": "30m",
        "g": "80%",
        "h": "2026-01-04",
        "i": "P1",
        "j": "5",
        "k": "mon-fri",
        "l": "^S\\d{4}$",
        "m": "tab\there",
        "n": [],
    }
    assert isinstance(doc.data["x"]["b"], float)


def test_a_name_alone_is_text_a_bracketed_one_a_list() -> None:
    doc, _ = load_flow_text("rule r on created do notify a then notify [a] then notify a, b\n")
    assert doc is not None
    assert [a["notify"]["to"] for a in doc.data["rules"]["r"]["do"]] == ["a", ["a"], ["a", "b"]]


def test_a_second_permission_statement_makes_a_list() -> None:
    text = "permission agent for a see own\npermission agent for b see all write *\n"
    doc, _ = load_flow_text(text, "p.flow")
    assert doc is not None
    assert doc.data["permissions"]["agent"] == [
        {"templates": ["a"], "see": "own"},
        {"templates": ["b"], "see": "all", "write": "*"},
    ]
    span = doc.source.value(("permissions", "agent", 1, "write"))
    assert span is not None and (span.line, span.column) == (2, 38)


def test_generic_form_reaches_any_key() -> None:
    text = (
        "template t {\n"
        "  future_key {deep: [1, {x: y}]}\n"
        '  "field" 3\n'
        "}\n"
        "templates {u: {title: U}}\n"
        "custom_section [a, b]\n"
    )
    doc, diagnostics = load_flow_text(text)
    assert doc is not None, diagnostics
    assert doc.data == {
        "templates": {
            "t": {"future_key": {"deep": [1, {"x": "y"}]}, "field": 3},
            "u": {"title": "U"},
        },
        "custom_section": ["a", "b"],
    }


# -- (b) formatting ---------------------------------------------------------------------------

COMMENTED = """\
# Retail pack, DSL form.
pack retail_store   # the pack's id
timezone "Asia/Shanghai"

# roles of the pack
roles customer, agent, dispatcher, engineer

workflow repair {  # the main one
  initial new
  # plain states
  states new, assigned, in_progress, resolved
  state waiting_parts pauses sla   # clocks stop here
  final closed
  new -> assigned : assign roles dispatcher requires assignee
  # resolving needs a signature
  in_progress -> resolved : resolve when len(parts) == 0 or parts_approved requires signature {
    # who
    roles engineer
    title {
      en: "Resolve"  # english
      # chinese next
      zh: "完成"
    }
    # end of resolve
  }
  assigned -> in_progress : start roles [engineer,   # the only one
     dispatcher]
  # end of workflow
}
rule p1_alert on created if priority == "P1" do notify "role:manager" via sms, wecom message p1_alert
rule two on created {
  do notify assignee
  # then assign
  do assign "role:manager"
}
# trailing file comment
"""


def _comments(text: str) -> Counter[str]:
    return Counter(m.group(0).rstrip() for m in re.finditer(r"#[^\n]*", text))


def test_format_is_idempotent_and_keeps_every_comment() -> None:
    once = format_flow(COMMENTED)
    twice = format_flow(once)
    assert twice == once
    assert _comments(once) == _comments(COMMENTED)
    before, _ = load_flow_text(COMMENTED)
    after, _ = load_flow_text(once)
    assert before is not None and after is not None and after.data == before.data


def test_format_keeps_comments_next_to_their_statement() -> None:
    once = format_flow(COMMENTED)
    lines = once.splitlines()
    assert lines[lines.index("  # resolving needs a signature") + 1].startswith(
        "  in_progress -> resolved : resolve {"
    )
    assert "  state waiting_parts pauses sla  # clocks stop here" in lines
    assert lines[lines.index("  # end of workflow") + 1] == "}"
    assert lines[-1] == "# trailing file comment"


def test_format_keeps_a_comment_inside_a_multi_line_expression() -> None:
    text = (
        "workflow w {\n  initial a\n  states a, b\n"
        '  a -> b : go when (priority == "P1" or   # urgent\n'
        "      parts_approved) roles agent\n}\n"
    )
    once = format_flow(text)
    assert format_flow(once) == once
    assert "# urgent" in once
    doc, _ = load_flow_text(once)
    assert doc is not None
    go = doc.data["workflows"]["w"]["transitions"]["go"]
    assert go["when"] == '(priority == "P1" or\n      parts_approved)'


def test_format_refuses_text_that_does_not_parse() -> None:
    with pytest.raises(FlowFormatError) as caught:
        format_flow("workflow w {\n", "w.flow")
    assert caught.value.diagnostics[0].code == "dsl-syntax"


# -- (c) mixed packs ------------------------------------------------------------------------------

MIXED_YAML = """\
pack: demo
title: {en: Demo, zh: 演示}
timezone: Asia/Shanghai
locales: [en, zh]
roles: [agent, customer]
templates:
  repair:
    title: {en: Repair, zh: 报修}
    ref: "R-{seq:05}"
    workflow: basic
    fields:
      priority: {type: choice, options: [P1, P2, P3], default: P3}
"""

MIXED_FLOW = """\
workflow basic {
  initial open
  state open
  final done
  open -> done : finish roles agent when priority == "P1"
}
rule p1 on created for repair if priority == "P1" do notify "role:agent"
"""


def test_mixed_yaml_and_dsl_pack_validates(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(MIXED_YAML, encoding="utf-8")
    (tmp_path / "flow.flow").write_text(MIXED_FLOW, encoding="utf-8")
    (source,) = discover_packs([tmp_path])
    assert sorted(p.name for p in source.files) == ["flow.flow", "pack.yaml"]
    result = load_pack(source)
    assert result.ok, _errors(result.diagnostics)
    assert result.pack is not None
    assert result.pack.workflows["basic"].transitions["finish"].when == 'priority == "P1"'
    assert result.pack.rules["p1"].templates == ["repair"]


def test_a_directory_of_dsl_files_alone_is_a_pack(tmp_path: Path) -> None:
    header = 'pack demo\ntitle "Demo"\ntimezone "UTC"\nroles agent\n'
    (tmp_path / "a.flow").write_text(header, encoding="utf-8")
    (tmp_path / "b.flow").write_text(
        'template t workflow w title "T"\nworkflow w {\n  initial a\n  final a\n}\n',
        encoding="utf-8",
    )
    result = load_pack_path(tmp_path)
    assert result.ok, _errors(result.diagnostics)


# -- (d) semantic errors located in the DSL text ---------------------------------------------------


def _located(tmp_path: Path, flow: str) -> list[tuple[str, int, int]]:
    (tmp_path / "pack.yaml").write_text(MIXED_YAML, encoding="utf-8")
    (tmp_path / "flow.flow").write_text(flow, encoding="utf-8")
    result = load_pack_path(tmp_path)
    return [
        (d.code, d.span.line, d.span.column)
        for d in result.diagnostics
        if d.is_error and d.span is not None and d.span.file.endswith("flow.flow")
    ]


def test_unknown_state_in_a_transition_points_at_the_state_name(tmp_path: Path) -> None:
    flow = MIXED_FLOW.replace("open -> done", "open -> doen")
    assert _located(tmp_path, flow) == [("unknown-reference", 5, 11)]


def test_unknown_role_and_expression_errors_point_inside_the_line(tmp_path: Path) -> None:
    flow = MIXED_FLOW.replace("roles agent when", "roles agnet when").replace(
        'if priority == "P1"', "if priorty == 1"
    )
    located = _located(tmp_path, flow)
    assert ("unknown-reference", 5, 31) in located  # agnet
    assert any(code.startswith("expr-") and (line, col) == (7, 34) for code, line, col in located)


def test_model_errors_point_at_the_clause(tmp_path: Path) -> None:
    flow = MIXED_FLOW.replace("final done", "final done category finished")
    located = _located(tmp_path, flow)
    assert [(line, col) for _, line, col in located] == [(4, 23)]


# -- (e) the corpus of bad DSL fragments ---------------------------------------------------------


def test_bad_corpus_is_large_enough() -> None:
    assert len(BAD_CASES) >= 25


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_fragment_diagnostics(case: str, snapshot: Any) -> None:
    path = BAD / f"{case}.flow"
    text = path.read_text(encoding="utf-8")
    doc, diagnostics = load_flow_text(text, path.name)
    assert doc is None and diagnostics
    assert render_text(diagnostics, {path.name: text}) == snapshot


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_fragment_is_described_and_located_in_words(case: str) -> None:
    path = BAD / f"{case}.flow"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "the first line says what is wrong"
    _, diagnostics = load_flow_text(text, path.name)
    lines = text.splitlines()
    for d in diagnostics:
        assert d.code.startswith("dsl-")
        assert d.span is not None and d.span.file == path.name
        assert 1 < d.span.line <= len(lines) and d.span.column >= 1
        assert d.hint
        # No terminal names of the grammar leak into what people read.
        assert not re.search(r"\b[A-Z_]{4,}\b|__ANON|\$END", d.message + (d.hint or ""))


# -- (f) limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "pack " + "[" * 10_000 + "]" * 10_000 + "\n",
        "x " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n",
        "rule r on created if " + "(" * 10_000 + "a" + ")" * 10_000 + " do notify x\n",
    ],
    ids=["lists", "mappings", "expression"],
)
def test_deep_nesting_fails_fast(text: str) -> None:
    started = time.perf_counter()
    doc, diagnostics = load_flow_text(text, "deep.flow")
    assert time.perf_counter() - started < 1
    assert doc is None and [d.code for d in diagnostics] == ["dsl-too-deep"]
    assert diagnostics[0].span is not None and diagnostics[0].span.line == 1


def test_long_operator_chains_do_not_recurse() -> None:
    text = "rule r on created if " + "not " * 10_000 + "a do notify x\n"
    started = time.perf_counter()
    doc, diagnostics = load_flow_text(text, "chain.flow")
    assert time.perf_counter() - started < 2
    assert doc is not None and not diagnostics


def test_oversize_text_fails_fast() -> None:
    text = "# " + "x" * (6 * 1024 * 1024) + "\n"
    started = time.perf_counter()
    doc, diagnostics = load_flow_text(text, "big.flow")
    assert time.perf_counter() - started < 1
    assert doc is None and [d.code for d in diagnostics] == ["file-too-large"]


def test_oversize_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.flow"
    path.write_text("pack demo\n" * 100, encoding="utf-8")
    doc, diagnostics = load_flow_file(path, LoadLimits(max_bytes=500))
    assert doc is None and [d.code for d in diagnostics] == ["file-too-large"]


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "bad.flow"
    path.write_bytes(b'pack demo\ntitle "caf\xe9"\n')
    _, diagnostics = load_flow_file(path)
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics if d.span] == [
        ("dsl-encoding", 2, 11)
    ]


# -- the writer for any data the parser can produce -------------------------------------------

_names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
_keys = st.one_of(
    _names,
    st.text(max_size=6),
    st.sampled_from(["title", "state", "do", "true", "on", "mon-fri", "field", "when", "*"]),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    _names,
    st.sampled_from(["30m", "80%", "2026-01-04", "breach + 2h", "true", "a\\b", "x'y", "l\nb"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=8,
)
_transition = st.fixed_dictionaries(
    {"from": st.one_of(_names, st.lists(_names, min_size=1, max_size=2)), "to": _names},
    optional={
        "roles": st.lists(_names, max_size=2),
        "when": st.sampled_from(["a > 1", "(a or\n b)", " padded", "two words"]),
        "do": st.lists(
            st.one_of(
                _values,
                st.fixed_dictionaries({"notify": st.fixed_dictionaries({"to": _names})}),
                st.fixed_dictionaries({"assign": st.fixed_dictionaries({"to": _keys})}),
            ),
            max_size=2,
        ),
        "extra": _values,
    },
)
_pack_data = st.fixed_dictionaries(
    {},
    optional={
        "pack": _values,
        "roles": st.one_of(st.lists(_names, max_size=3), _values),
        "workflows": st.dictionaries(
            _names,
            st.fixed_dictionaries(
                {},
                optional={
                    "states": st.dictionaries(_names, st.dictionaries(_keys, _values), max_size=3),
                    "transitions": st.dictionaries(_names, _transition, max_size=2),
                    "other": _values,
                },
            ),
            max_size=2,
        ),
        "rules": st.dictionaries(
            _names,
            st.fixed_dictionaries(
                {},
                optional={
                    "on": st.one_of(_values, st.sampled_from(["sla.warning", "updated"])),
                    "if": st.sampled_from(["a == 1", "x y"]),
                    "do": st.lists(_values, max_size=2),
                },
            ),
            max_size=2,
        ),
        "sla": st.dictionaries(_names, st.dictionaries(_keys, _values, max_size=3), max_size=2),
        "unknown": _values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_pack_data)
def test_written_text_parses_back_to_the_same_data(data: dict[str, Any]) -> None:
    text = write_flow(data)
    doc, diagnostics = load_flow_text(text, "w.flow")
    assert doc is not None, render_text(diagnostics, {"w.flow": text})
    assert doc.data == data
    assert format_flow(text) == text


# -- the pieces the engine relies on --------------------------------------------------------------


def test_source_map_spans_point_into_the_dsl_text() -> None:
    parsed = parse_flow(MIXED_FLOW, "flow.flow")
    assert parsed.document is not None
    source = parsed.document.source

    def at(path: tuple[str | int, ...], key: bool = False) -> tuple[int, int]:
        span = source.key(path) if key else source.value(path)
        assert span is not None, path
        return span.line, span.column

    lines = MIXED_FLOW.splitlines()

    def column(line: int, text: str) -> tuple[int, int]:
        return line, lines[line - 1].index(text) + 1

    tpath = ("workflows", "basic", "transitions", "finish")
    assert at(tpath, key=True) == column(5, "finish")
    assert at((*tpath, "from")) == column(5, "open")
    assert at((*tpath, "to")) == column(5, "done")
    assert at((*tpath, "roles", 0)) == column(5, "agent")
    assert at((*tpath, "when")) == column(5, "priority")
    assert at(("workflows", "basic", "states", "done", "final")) == column(4, "final")
    assert at(("rules", "p1", "templates", 0)) == column(7, "repair")
    assert at(("rules", "p1", "do", 0, "notify", "to")) == column(7, '"role:agent"')


def test_validate_document_accepts_dsl_data_unchanged() -> None:
    doc, _ = load_flow_text(SKETCH, "s.flow")
    assert doc is not None
    merged = MergedDocument(doc.data, doc.source, {"s.flow": SKETCH})
    _, diagnostics = validate_document(merged)
    # The sketch is not a whole pack: what is missing is reported, located in the file.
    assert diagnostics and all(d.span is not None for d in diagnostics)
