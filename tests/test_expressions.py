"""The expression language: located errors, type checking, two evaluators that agree, and a
sandbox that refuses every known escape or denial-of-service payload quickly."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MINIMAL
from dsl.expressions import ExpressionError, parse_expression, render
from engine.expr_check import check_expression
from engine.expr_eval import EvalError, ReferenceProgram, compile_expression
from engine.expr_types import (
    BOOLEAN,
    DATETIME,
    DURATION,
    NUMBER,
    TEXT,
    Scope,
    Type,
    actor_attributes,
    choice,
    list_of,
)
from engine.load import load_pack_path

FIELDS: dict[str, Type] = {
    "priority": choice(["P1", "P2", "P3"]),
    "category": choice(["hvac", "pos", "lighting"]),
    "store_no": TEXT,
    "notes": TEXT,
    "qty": NUMBER,
    "cost": NUMBER,
    "approved": BOOLEAN,
    "urgent": BOOLEAN,
    "downtime": DURATION,
    "reported_at": DATETIME,
    "tags_field": list_of(choice(["a", "b", "c"])),
}
SCOPE = Scope(
    FIELDS,
    frozenset({"new", "assigned", "resolved", "closed"}),
    actor_attributes(["agent", "engineer"], ["facilities"], {"stores": list_of(TEXT)}),
    "repair",
)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def problem(text: str) -> dict[str, Any]:
    try:
        check_expression(parse_expression(text), SCOPE)
    except ExpressionError as exc:
        return {
            "code": exc.code,
            "column": exc.pos.column,
            "message": exc.message,
            "hint": exc.hint,
        }
    raise AssertionError(f"{text!r} was accepted")


BAD_EXPRESSIONS = [
    # syntax
    'priority = "P1"',
    "approved && urgent",
    "approved || urgent",
    "!approved",
    "qty ** 2",
    "qty ^ 2",
    "qty < 5 < 7",
    "(qty > 5",
    "qty > 5)",
    "qty >",
    '"unterminated',
    "qty @ 2",
    "approved urgent",
    "len(notes,)",
    "[1, 2",
    "qty > 5 and",
    "",
    "ticket.",
    "qty.5",
    "5qty",
    "round(downtime) > 1",
    "downtime < 99999999999999999999w",
    "approved == not urgent",
    "qty == and",
    "true = false",
    # names and functions
    'priorty == "P1"',
    "qty_total > 5",
    "ticket.refx == 'x'",
    "actor.rolse",
    "sla.remainig < 30m",
    "ticket",
    "qty.value > 1",
    "lenght(notes) > 0",
    "len() > 0",
    "len(notes, notes) > 0",
    "eval('1')",
    "__import__('os')",
    "store_no.__class__",
    # types
    'qty == "5"',
    "qty",
    "notes",
    "not qty",
    "approved and qty",
    "notes * 3",
    '"a" * 1000000000',
    "downtime < 30",
    "reported_at > 5",
    "approved < urgent",
    "qty + notes == 1",
    "lower(qty) == 'x'",
    "len(qty) > 1",
    "[1, 'a'] == [1]",
    "qty in notes",
    "5 in qty",
    "days_since(notes) > 1",
    "matches(store_no, store_no)",
    'matches(store_no, "[unclosed")',
    'matches(store_no, "(a+)+$")',
    # options
    'priority == "P4"',
    '"P5" == priority',
    'priority in ["P1", "P9"]',
    'state == "resolvd"',
    'state != "open"',
    'contains(tags_field, "d")',
    '"z" in tags_field',
    'category == "HVAC"',
    'tags_field == ["a", "z"]',
]


@pytest.mark.parametrize("text", BAD_EXPRESSIONS)
def test_bad_expression_is_located(text: str, snapshot: Any) -> None:
    assert problem(text) == snapshot


def test_bad_expression_corpus_is_large_enough() -> None:
    assert len(BAD_EXPRESSIONS) >= 40


GOOD = [
    ('priority == "P1" and qty > 5 and not approved', BOOLEAN),
    ("len(notes) == 0 or approved", BOOLEAN),
    ('state in ["resolved", "closed"]', BOOLEAN),
    ("store_no in actor.stores", BOOLEAN),
    ('"engineer" in actor.roles', BOOLEAN),
    ('sla.remaining < 30m and sla.state != "breached"', BOOLEAN),
    ("ticket.created_at + 2d < now", BOOLEAN),
    ("reported_at - 1h30m", DATETIME),
    ("downtime / 2 + 15m", DURATION),
    ("cost * qty - 3", NUMBER),
    ("sla.progress >= 80%", BOOLEAN),
    ("hours_since(reported_at) > 4", BOOLEAN),
    ('is_set(notes) and not matches(store_no, "^S\\\\d{4}$")', BOOLEAN),
    ("any([approved, urgent, qty > 3])", BOOLEAN),
    ('upper(category) + "-" + store_no', TEXT),
    ('ticket.priority == "P2"', BOOLEAN),
    ("min(qty, 10) + max(cost, 0)", NUMBER),
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_good_expressions_check_and_infer(text: str, expected: Type) -> None:
    assert check_expression(parse_expression(text), SCOPE, None).kind == expected.kind


def test_unknown_escapes_keep_their_backslash() -> None:
    tree = parse_expression('matches(store_no, "^S\\d{4}$")')
    check_expression(tree, SCOPE)
    assert compile_expression(tree)({"store_no": "S1234"}) is True
    assert compile_expression(tree)({"store_no": "Sdddd"}) is False


def test_render_round_trips() -> None:
    for text, _ in GOOD:
        tree = parse_expression(text)
        assert render(parse_expression(render(tree))) == render(tree)


# -- located inside the YAML file ---------------------------------------------------------


def test_expression_error_points_at_the_character_in_the_file(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "roles: [agent]}",
        "roles: [agent], when: 'priority == \"P4\" or x'}",
    )
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    (diag,) = load_pack_path(path).diagnostics
    line = text.splitlines()[diag.span.line - 1] if diag.span else ""
    assert diag.code == "expr-unknown-option"
    assert diag.span is not None and line[diag.span.column - 1 :].startswith('"P4"')


def test_block_scalar_expression_is_located(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "      finish: {from: open, to: done, roles: [agent]}\n",
        "      finish:\n        from: open\n        to: done\n        when: >-\n"
        '          priority == "P1"\n          and qtyy > 3\n',
    )
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    (diag,) = load_pack_path(path).diagnostics
    assert diag.code == "expr-unknown-name"
    assert diag.span is not None
    line = text.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1 :].startswith("qtyy")


# -- the sandbox ---------------------------------------------------------------------------

PAYLOADS = [
    "9**9**9",
    '"a" * 10**9',
    "(" * 100_000 + "1" + ")" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    "not " * 50_000 + "approved",
    " + ".join(["qty"] * 5000) + " > 1",
    "qty.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()",
    "__builtins__",
    "__import__('os').system('ls')",
    "[x for x in [1]]",
    "lambda: 1",
    "notes.format(x=1)",
    "{}.update(a=1)",
    "notes[0]",
    "getattr(notes, 'upper')",
    "open('/etc/passwd')",
    "exec('1')",
    "type(1)",
    "qty if approved else 1",
    "{1, 2}",
    "approved; qty",
    "f'{qty}'",
    "9" * 10_000,
    "a" * 3000,
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p[:30])
def test_sandbox_refuses_escapes_and_bombs_quickly(payload: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        check_expression(parse_expression(payload), SCOPE)
    assert time.perf_counter() - started < 1.0
    assert info.value.message  # a clear message, located
    assert info.value.pos.line >= 1 and info.value.pos.column >= 1


def test_numbers_are_bounded_at_run_time() -> None:
    text = " * ".join(["999999999999999"] * 50)
    tree = parse_expression(text)
    check_expression(tree, SCOPE, NUMBER)
    started = time.perf_counter()
    with pytest.raises(EvalError):
        compile_expression(tree)({})
    with pytest.raises(EvalError):
        ReferenceProgram(tree).evaluate({})
    assert time.perf_counter() - started < 1.0


def test_text_concatenation_is_bounded() -> None:
    tree = parse_expression(" + ".join(["notes"] * 20))
    check_expression(tree, SCOPE, TEXT)
    with pytest.raises(EvalError):
        compile_expression(tree)({"notes": "x" * 10_000})


def test_division_by_zero_is_null() -> None:
    tree = parse_expression("qty / 0")
    assert compile_expression(tree)({"qty": 5}) is None
    assert ReferenceProgram(tree).evaluate({"qty": 5}) is None


def test_unset_values_compare_false() -> None:
    tree = parse_expression("qty > 5 or qty <= 5")
    assert not compile_expression(tree)({})
    assert not ReferenceProgram(tree).evaluate({})


def test_evaluation_cannot_change_its_input() -> None:
    env = {"tags_field": ["a"], "now": NOW}
    tree = parse_expression('contains(tags_field, "a") and len(tags_field) == 1')
    assert compile_expression(tree)(env) is True
    assert ReferenceProgram(tree).evaluate(env) is True
    assert env == {"tags_field": ["a"], "now": NOW}


# -- property tests: well-typed expressions evaluate to their type, both ways alike --------

_TEXT_FIELDS = ["store_no", "notes"]  # choice fields only meet their own options
_NUM_FIELDS = ["qty", "cost"]
_BOOL_FIELDS = ["approved", "urgent"]

texts = st.text(alphabet="abcP12 -_é中", max_size=6).map(lambda s: '"' + s + '"')


# Cached: the strategy is a tree built from itself many times over; built afresh on every
# draw, newer hypothesis releases spent minutes validating the copies.
@functools.cache
def _expr(kind: str, depth: int) -> st.SearchStrategy[str]:
    leaves = {
        "number": st.one_of(
            st.integers(0, 10_000).map(str),
            st.sampled_from(_NUM_FIELDS),
            st.integers(0, 100).map(lambda n: f"{n}%"),
        ),
        "text": st.one_of(texts, st.sampled_from(_TEXT_FIELDS)),
        "boolean": st.one_of(st.sampled_from(["true", "false", *_BOOL_FIELDS])),
        "duration": st.one_of(
            st.sampled_from(["downtime", "30m", "4h", "1d", "1h30m", "2w"]),
        ),
        "datetime": st.sampled_from(["now", "reported_at", "ticket.created_at"]),
    }
    if depth <= 0:
        return leaves[kind]
    sub = depth - 1

    def bin_(op: str, a: str, b: str) -> st.SearchStrategy[str]:
        return st.tuples(_expr(a, sub), _expr(b, sub)).map(lambda p: f"({p[0]} {op} {p[1]})")

    options: list[st.SearchStrategy[str]] = [leaves[kind]]
    if kind == "number":
        options += [bin_(op, "number", "number") for op in "+-*/"]
        options += [
            _expr("text", sub).map(lambda t: f"len({t})"),
            _expr("duration", sub).map(lambda a: f"({a} / 1h)"),
            st.tuples(_expr("number", sub), _expr("number", sub)).map(
                lambda p: f"min({p[0]}, {p[1]})"
            ),
            _expr("datetime", sub).map(lambda d: f"hours_since({d})"),
            _expr("number", sub).map(lambda n: f"-{n}"),
        ]
    elif kind == "text":
        options += [
            bin_("+", "text", "text"),
            _expr("text", sub).map(lambda t: f"lower({t})"),
            _expr("text", sub).map(lambda t: f"trim({t})"),
        ]
    elif kind == "boolean":
        options += [bin_(op, "number", "number") for op in ["<", "<=", ">", ">=", "==", "!="]]
        options += [bin_(op, "boolean", "boolean") for op in ["and", "or", "==", "!="]]
        options += [bin_(op, "duration", "duration") for op in ["<", ">=", "=="]] + [
            bin_("<", "datetime", "datetime"),
            bin_("in", "text", "text"),
        ]
        options += [
            _expr("boolean", sub).map(lambda b: f"(not {b})"),
            st.sampled_from(["P1", "P2", "P3"]).map(lambda o: f'(priority == "{o}")'),
            st.sampled_from(["hvac", "pos"]).map(lambda o: f'(category != "{o}")'),
            _expr("text", sub).map(lambda t: f"is_set({t})"),
            st.tuples(_expr("text", sub), _expr("text", sub)).map(
                lambda p: f"startswith({p[0]}, {p[1]})"
            ),
            st.lists(_expr("boolean", sub), min_size=1, max_size=3).map(
                lambda xs: f"any([{', '.join(xs)}])"
            ),
            st.lists(_expr("text", sub), min_size=1, max_size=3).map(
                lambda xs: f"({xs[0]} in [{', '.join(xs)}])"
            ),
        ]
    elif kind == "duration":
        options += [
            bin_("+", "duration", "duration"),
            bin_("-", "duration", "duration"),
            bin_("*", "duration", "number"),
            bin_("-", "datetime", "datetime"),
        ]
    elif kind == "datetime":
        options += [bin_("+", "datetime", "duration"), bin_("-", "datetime", "duration")]
    return st.one_of(options)


def _env() -> st.SearchStrategy[dict[str, Any]]:
    maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
    return st.fixed_dictionaries(
        {
            "store_no": maybe(st.text(alphabet="S0123", max_size=5)),
            "notes": maybe(st.text(max_size=8)),
            "priority": maybe(st.sampled_from(["P1", "P2", "P3"])),
            "category": maybe(st.sampled_from(["hvac", "pos", "lighting"])),
            "qty": maybe(st.integers(-1000, 1000)),
            "cost": maybe(st.floats(-1e6, 1e6, allow_nan=False)),
            "approved": maybe(st.booleans()),
            "urgent": maybe(st.booleans()),
            "downtime": maybe(st.integers(0, 10**6).map(lambda s: timedelta(seconds=s))),
            "reported_at": maybe(st.integers(0, 10**7).map(lambda s: NOW - timedelta(seconds=s))),
            "ticket.created_at": st.integers(0, 10**7).map(lambda s: NOW - timedelta(seconds=s)),
            "now": st.just(NOW),
        }
    )


PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "text": (str,),
    "boolean": (bool,),
    "duration": (timedelta,),
    "datetime": (datetime,),
}


def _outcome(func: Any, env: dict[str, Any]) -> Any:
    try:
        return ("value", func(env))
    except EvalError as exc:
        return ("error", str(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["number", "text", "boolean", "duration", "datetime"]),
    data=st.data(),
    env=_env(),
)
def test_well_typed_expressions_evaluate_to_their_type_and_agree(
    kind: str, data: st.DataObject, env: dict[str, Any]
) -> None:
    text = data.draw(_expr(kind, 3))
    tree = parse_expression(text)
    inferred = check_expression(tree, SCOPE, None)
    assert inferred.kind == kind, text
    fast = _outcome(compile_expression(tree, frozenset(FIELDS)), env)
    reference = _outcome(ReferenceProgram(tree, frozenset(FIELDS)).evaluate, env)
    assert fast == reference, text
    status, value = fast
    if status == "value" and value is not None:
        assert isinstance(value, PYTHON_TYPES[kind]), (text, value)
        if kind == "number":
            assert not isinstance(value, bool), (text, value)
