"""Evaluating checked expressions: the operator semantics, a compiled fast path (closures)
and the sandboxed reference evaluator (simpleeval).

Both evaluators share the same operator and function implementations below, so they agree
by construction on what `<` or `len` mean; what the differential tests compare is how each
walks the tree. Safety comes from the grammar (no attributes, subscripts, powers, lambdas
can even be written) and from bounds here: numbers stay below 1e15 and texts below 100,000
characters, so no expression can exhaust time or memory.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from simpleeval import EvalWithCompoundTypes  # type: ignore[import-untyped]

from dsl.expressions import Binary, Call, Expr, ListExpr, Literal, Name, Unary

MAX_NUMBER = 1e15
MAX_TEXT = 100_000

Env = Mapping[str, Any]
Compiled = Callable[[Env], Any]


class EvalError(Exception):
    """An expression could not be evaluated on these values (e.g. a number too large)."""


# -- operator semantics ---------------------------------------------------------------------


def _norm(a: Any, b: Any) -> tuple[Any, Any]:
    # A date and a datetime compare by calendar date.
    if isinstance(a, datetime) and type(b) is date:
        return a.date(), b
    if isinstance(b, datetime) and type(a) is date:
        return a, b.date()
    return a, b


def _number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise EvalError(f"number out of range (limit {MAX_NUMBER:.0e})")
    elif isinstance(value, str) and len(value) > MAX_TEXT:
        raise EvalError(f"text longer than {MAX_TEXT} characters")
    return value


def op_eq(a: Any, b: Any) -> bool:
    """`==`: null equals only null."""
    a, b = _norm(a, b)
    return bool(a == b)


def op_ne(a: Any, b: Any) -> bool:
    """`!=`."""
    return not op_eq(a, b)


def _order(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def ordered(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False  # an unset value is neither smaller nor larger than anything
        a, b = _norm(a, b)
        try:
            return compare(a, b)
        except TypeError:
            raise EvalError(f"cannot order {type(a).__name__} and {type(b).__name__}") from None

    return ordered


op_lt = _order(lambda a, b: bool(a < b))
op_le = _order(lambda a, b: bool(a <= b))
op_gt = _order(lambda a, b: bool(a > b))
op_ge = _order(lambda a, b: bool(a >= b))


def op_in(a: Any, b: Any) -> bool:
    """`in`: membership in a list, or a substring of a text; nothing is in null."""
    if b is None:
        return False
    if isinstance(b, str):
        return isinstance(a, str) and a in b
    return a in b


def op_not_in(a: Any, b: Any) -> bool:
    """`not in`."""
    return not op_in(a, b)


def _arith(compute: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def arith(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        try:
            return _number(compute(a, b))
        except (TypeError, OverflowError) as exc:
            raise EvalError(str(exc)) from None

    return arith


def _divide(a: Any, b: Any) -> Any:
    if b == 0 or b == timedelta(0):
        return None  # like SQL: division by zero gives null, not a failed guard
    return a / b


op_add = _arith(lambda a, b: a + b)
op_sub = _arith(lambda a, b: a - b)
op_mul = _arith(lambda a, b: a * b)
op_div = _arith(_divide)


def op_neg(a: Any) -> Any:
    """Unary minus; null stays null."""
    return None if a is None else -a


def op_not(a: Any) -> bool:
    """`not`; null counts as false."""
    return not a


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": op_eq,
    "!=": op_ne,
    "<": op_lt,
    "<=": op_le,
    ">": op_gt,
    ">=": op_ge,
    "in": op_in,
    "not in": op_not_in,
    "+": op_add,
    "-": op_sub,
    "*": op_mul,
    "/": op_div,
}


# -- functions ------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _now(env: Env) -> datetime:
    now = env.get("now")
    if not isinstance(now, datetime):
        raise EvalError("'now' is not set")
    return now


def _since(env: Env, value: Any, unit: float) -> float | None:
    if value is None:
        return None
    now = _now(env)
    if type(value) is date:
        return float((now.date() - value).days) * 86400 / unit
    elapsed: timedelta = now - value
    return elapsed.total_seconds() / unit


def _null_safe(func: Callable[..., Any]) -> Callable[..., Any]:
    def safe(*args: Any) -> Any:
        if any(a is None for a in args):
            return None
        return func(*args)

    return safe


def functions(env: Env) -> dict[str, Callable[..., Any]]:
    """The fixed functions, bound to the evaluation's `now`."""
    return {
        "len": lambda v: 0 if v is None else len(v),
        "lower": _null_safe(str.lower),
        "upper": _null_safe(str.upper),
        "trim": _null_safe(str.strip),
        "contains": lambda c, v: op_in(v, c),
        "startswith": lambda s, p: s is not None and p is not None and s.startswith(p),
        "endswith": lambda s, p: s is not None and p is not None and s.endswith(p),
        "matches": lambda s, p: s is not None and _regex(p).search(s) is not None,
        "any": lambda v: v is not None and any(v),
        "all": lambda v: v is not None and all(v),
        "days_since": lambda v: _since(env, v, 86400),
        "hours_since": lambda v: _since(env, v, 3600),
        "is_set": lambda v: v is not None and v != "" and v != [],
        "abs": _null_safe(abs),
        "round": _null_safe(round),
        "min": _null_safe(min),
        "max": _null_safe(max),
    }


STATIC_FUNCTIONS = functions({})


# -- names ----------------------------------------------------------------------------------


def env_key(node: Name, fields: frozenset[str]) -> str:
    """The key a name reads from the evaluation environment.

    Fields and the state are stored by their bare name whether written `priority` or
    `ticket.priority`; other attributes by their dotted path (`ticket.ref`, `actor.roles`).
    """
    parts = node.parts
    if len(parts) == 2 and parts[0] == "ticket" and (parts[1] in fields or parts[1] == "state"):
        return parts[1]
    return node.dotted


# -- the compiled fast path -----------------------------------------------------------------


def compile_expression(node: Expr, fields: frozenset[str] = frozenset()) -> Compiled:
    """A closure evaluating a checked expression against an environment mapping."""
    return _Compiler(fields).build(node)


class _Compiler:
    def __init__(self, fields: frozenset[str]) -> None:
        self.fields = fields

    def build(self, node: Expr) -> Compiled:
        if isinstance(node, Literal):
            value = _literal_value(node)
            return lambda env: value
        if isinstance(node, Name):
            key = env_key(node, self.fields)
            return lambda env: env.get(key)
        if isinstance(node, ListExpr):
            items = [self.build(i) for i in node.items]
            return lambda env: [item(env) for item in items]
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, Unary) and node.op == "not" and isinstance(node.operand, Name):
            key = env_key(node.operand, self.fields)
            return lambda env: not env.get(key)
        if isinstance(node, Unary):
            operand = self.build(node.operand)
            if node.op == "not":
                return lambda env: not operand(env)
            return lambda env: op_neg(operand(env))
        return self._binary(node)

    def _call(self, node: Call) -> Compiled:
        args = [self.build(a) for a in node.args]
        if node.name in ("days_since", "hours_since"):
            unit = 86400 if node.name == "days_since" else 3600
            (arg,) = args
            return lambda env: _since(env, arg(env), unit)
        func = STATIC_FUNCTIONS[node.name]
        if len(args) == 1 and isinstance(node.args[0], Name):
            key = env_key(node.args[0], self.fields)
            if node.name == "len":
                return lambda env: len(env.get(key) or ())  # unset counts as empty
            return lambda env: func(env.get(key))
        if len(args) == 1:
            (one,) = args
            return lambda env: func(one(env))
        first, second = args
        return lambda env: func(first(env), second(env))

    def _binary(self, node: Binary) -> Compiled:
        if node.op in ("and", "or"):
            return self._boolean(node)
        # Each subtree is compiled exactly once: compiling it again per shape tried would
        # cost 2**depth on a long chain such as a * b * c * ...
        left = self.build(node.left)
        special = self._specialised(node, left)
        if special is not None:
            return special
        right = self.build(node.right)
        op = OPERATORS[node.op]
        return lambda env: op(left(env), right(env))

    def _specialised(self, node: Binary, left: Compiled) -> Compiled | None:
        """Closures for the commonest guard shapes; each gives what the generic path gives."""
        if isinstance(node.right, Literal):
            const = _literal_value(node.right)
            if isinstance(const, date):
                return None  # date vs datetime needs the generic comparison
            if node.op == "==":
                if isinstance(node.left, Name):
                    key = env_key(node.left, self.fields)
                    return lambda env: env.get(key) == const
                return lambda env: left(env) == const
            if node.op == "!=":
                return lambda env: left(env) != const
            if node.op in _FAST_ORDER and isinstance(const, int | float | timedelta):
                return _FAST_ORDER[node.op](left, const)
            return None
        if node.op in ("in", "not in") and isinstance(node.right, ListExpr):
            items = node.right.items
            if all(isinstance(i, Literal) and i.kind != "duration" for i in items):
                consts = tuple(i.value for i in items if isinstance(i, Literal))
                if node.op == "in":
                    return lambda env: left(env) in consts
                return lambda env: left(env) not in consts
        if node.op == "in":
            right = self.build(node.right)

            def member(env: Env) -> bool:
                container = right(env)
                if container is None:
                    return False
                value = left(env)
                if isinstance(container, str):
                    return isinstance(value, str) and value in container
                return value in container

            return member
        return None

    def _boolean(self, node: Binary) -> Compiled:
        operands = [self.build(o) for o in _flatten(node, node.op)]
        if node.op == "and":
            if len(operands) == 2:
                a, b = operands
                return lambda env: a(env) and b(env)
            if len(operands) == 3:
                a, b, c = operands
                return lambda env: a(env) and b(env) and c(env)

            def all_of(env: Env) -> Any:
                result: Any = True
                for operand in operands:
                    result = operand(env)
                    if not result:
                        return result
                return result

            return all_of
        if len(operands) == 2:
            a, b = operands
            return lambda env: a(env) or b(env)

        def any_of(env: Env) -> Any:
            result: Any = False
            for operand in operands:
                result = operand(env)
                if result:
                    return result
            return result

        return any_of


def _fast_order(compare: Callable[[Any, Any], bool]) -> Callable[[Compiled, Any], Compiled]:
    """`x < constant` in one closure; same results as op_lt and friends."""

    def make(left: Compiled, const: Any) -> Compiled:
        def ordered(env: Env) -> bool:
            value = left(env)
            if value is None:
                return False
            try:
                return compare(value, const)
            except TypeError:
                raise EvalError(
                    f"cannot order {type(value).__name__} and {type(const).__name__}"
                ) from None

        return ordered

    return make


_FAST_ORDER = {
    "<": _fast_order(lambda a, b: bool(a < b)),
    "<=": _fast_order(lambda a, b: bool(a <= b)),
    ">": _fast_order(lambda a, b: bool(a > b)),
    ">=": _fast_order(lambda a, b: bool(a >= b)),
}


def _flatten(node: Expr, op: str) -> list[Expr]:
    if isinstance(node, Binary) and node.op == op:
        return [*_flatten(node.left, op), *_flatten(node.right, op)]
    return [node]


def _literal_value(node: Literal) -> Any:
    if node.kind == "duration":
        return timedelta(seconds=int(node.value))
    return node.value


# -- the reference evaluator ----------------------------------------------------------------

_AST_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Eq: op_eq,
    ast.NotEq: op_ne,
    ast.Lt: op_lt,
    ast.LtE: op_le,
    ast.Gt: op_gt,
    ast.GtE: op_ge,
    ast.In: op_in,
    ast.NotIn: op_not_in,
    ast.Add: op_add,
    ast.Sub: op_sub,
    ast.Mult: op_mul,
    ast.Div: op_div,
    ast.USub: op_neg,
    ast.Not: op_not,
}


class ReferenceProgram:
    """An expression rendered to Python syntax for simpleeval, with its names mangled."""

    def __init__(self, node: Expr, fields: frozenset[str] = frozenset()) -> None:
        self.fields = fields
        self.names: dict[str, str] = {}
        self.source = self._render(node)
        self._parsed = ast.parse(self.source.strip(), mode="eval").body

    def _var(self, key: str) -> str:
        # Every environment key gets a fresh identifier: no collisions, no dots, no dunders.
        if key not in self.names:
            self.names[key] = f"v{len(self.names)}"
        return self.names[key]

    def _render(self, node: Expr) -> str:
        if isinstance(node, Literal):
            if node.kind == "duration":
                return f"td({int(node.value)})"
            return repr(node.value)
        if isinstance(node, Name):
            return self._var(env_key(node, self.fields))
        if isinstance(node, ListExpr):
            return "[" + ", ".join(self._render(i) for i in node.items) + "]"
        if isinstance(node, Call):
            return f"{node.name}({', '.join(self._render(a) for a in node.args)})"
        if isinstance(node, Unary):
            return f"({'not ' if node.op == 'not' else '-'}{self._render(node.operand)})"
        return f"({self._render(node.left)} {node.op} {self._render(node.right)})"

    def evaluate(self, env: Env) -> Any:
        """Evaluate with a fresh simpleeval instance (instances are not thread-safe)."""
        names = {var: env.get(key) for key, var in self.names.items()}
        funcs = {**functions(env), "td": lambda s: timedelta(seconds=s)}
        evaluator = EvalWithCompoundTypes(
            operators=_AST_OPERATORS, functions=funcs, names=names, allowed_attrs={}
        )
        return evaluator.eval(self.source, previously_parsed=self._parsed)
