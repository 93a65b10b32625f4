"""Static checking of expressions against the template they run on.

Unknown names and functions (with "did you mean"), wrong arity, type mismatches and
comparisons with choice options that do not exist are found when the pack is validated,
not when a ticket first hits the condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dsl.diagnostics import did_you_mean, known_list
from dsl.expressions import (
    Binary,
    Call,
    Expr,
    ExpressionError,
    ListExpr,
    Literal,
    Name,
    Position,
    Unary,
)
from engine.expr_types import (
    ANY,
    BOOLEAN,
    DATE,
    DATETIME,
    DURATION,
    NULL,
    NUMBER,
    ROOTS,
    TEXT,
    Scope,
    Type,
    list_of,
)


class TypeCheckError(ExpressionError):
    """A located type or name error."""


@dataclass(frozen=True, slots=True)
class Signature:
    """A function: how many arguments, their check, and the result type."""

    arity: tuple[int, int]
    check: Callable[[list[Type]], Type | str]
    summary: str


def _text_or_list(args: list[Type]) -> Type | str:
    return NUMBER if args[0].kind in ("text", "list", "any", "null") else "a text or a list"


def _text_to_text(args: list[Type]) -> Type | str:
    return TEXT if args[0].kind in ("text", "any", "null") else "a text"


def _text_pair(args: list[Type]) -> Type | str:
    if all(a.kind in ("text", "any", "null") for a in args):
        return BOOLEAN
    return "two texts"


def _contains(args: list[Type]) -> Type | str:
    container, item = args
    if container.kind == "text" and item.kind in ("text", "any", "null"):
        return BOOLEAN
    if container.kind == "list" and (container.item is None or _comparable(container.item, item)):
        return BOOLEAN
    if container.kind in ("any", "null"):
        return BOOLEAN
    return "a text and a text, or a list and an item of it"


def _bool_list(args: list[Type]) -> Type | str:
    arg = args[0]
    if arg.kind == "list" and (arg.item is None or arg.item.kind in ("boolean", "any")):
        return BOOLEAN
    return "a list of true/false values"


def _since(args: list[Type]) -> Type | str:
    return NUMBER if args[0].kind in ("date", "datetime", "any", "null") else "a date or datetime"


def _any_value(args: list[Type]) -> Type | str:
    return BOOLEAN


def _number_like(args: list[Type]) -> Type | str:
    kinds = {a.kind for a in args} - {"any", "null"}
    if kinds <= {"number"}:
        return NUMBER
    if kinds <= {"duration"}:
        return DURATION
    return "numbers, or durations"


def _number_only(args: list[Type]) -> Type | str:
    return NUMBER if args[0].kind in ("number", "any", "null") else "a number"


FUNCTIONS: dict[str, Signature] = {
    "len": Signature((1, 1), _text_or_list, "len(text or list) → number"),
    "lower": Signature((1, 1), _text_to_text, "lower(text) → text"),
    "upper": Signature((1, 1), _text_to_text, "upper(text) → text"),
    "trim": Signature((1, 1), _text_to_text, "trim(text) → text"),
    "contains": Signature((2, 2), _contains, "contains(text or list, value) → boolean"),
    "startswith": Signature((2, 2), _text_pair, "startswith(text, prefix) → boolean"),
    "endswith": Signature((2, 2), _text_pair, "endswith(text, suffix) → boolean"),
    "matches": Signature((2, 2), _text_pair, 'matches(text, "regex") → boolean'),
    "any": Signature((1, 1), _bool_list, "any(list of booleans) → boolean"),
    "all": Signature((1, 1), _bool_list, "all(list of booleans) → boolean"),
    "days_since": Signature((1, 1), _since, "days_since(date or datetime) → number"),
    "hours_since": Signature((1, 1), _since, "hours_since(date or datetime) → number"),
    "is_set": Signature((1, 1), _any_value, "is_set(value) → boolean"),
    "abs": Signature((1, 1), _number_like, "abs(number or duration)"),
    "round": Signature((1, 1), _number_only, "round(number) → number"),
    "min": Signature((2, 2), _number_like, "min(a, b) of numbers or durations"),
    "max": Signature((2, 2), _number_like, "max(a, b) of numbers or durations"),
}

# Nested quantifiers such as (a+)+ backtrack exponentially; `matches` refuses them.
_NESTED_QUANTIFIER = re.compile(r"\([^)]*[+*][^)]*\)\s*[+*{]")


def _comparable(a: Type, b: Type) -> bool:
    if "any" in (a.kind, b.kind) or "null" in (a.kind, b.kind):
        return True
    if {a.kind, b.kind} <= {"date", "datetime"}:
        return True
    if a.kind == "list" and b.kind == "list":
        return a.item is None or b.item is None or _comparable(a.item, b.item)
    return a.kind == b.kind


_ARITH: dict[tuple[str, str, str], str] = {
    ("+", "number", "number"): "number",
    ("-", "number", "number"): "number",
    ("*", "number", "number"): "number",
    ("/", "number", "number"): "number",
    ("+", "text", "text"): "text",
    ("+", "duration", "duration"): "duration",
    ("-", "duration", "duration"): "duration",
    ("*", "duration", "number"): "duration",
    ("*", "number", "duration"): "duration",
    ("/", "duration", "number"): "duration",
    ("/", "duration", "duration"): "number",
    ("+", "datetime", "duration"): "datetime",
    ("+", "duration", "datetime"): "datetime",
    ("-", "datetime", "duration"): "datetime",
    ("-", "datetime", "datetime"): "duration",
    ("+", "date", "duration"): "date",
    ("-", "date", "duration"): "date",
    ("-", "date", "date"): "duration",
}


class Checker:
    """Infers the type of every node of an expression in a scope, or raises TypeCheckError."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def infer(self, node: Expr) -> Type:
        """The type of `node`."""
        if isinstance(node, Literal):
            return self._literal(node)
        if isinstance(node, Name):
            return self._name(node)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, ListExpr):
            return self._list(node)
        if isinstance(node, Unary):
            return self._unary(node)
        return self._binary(node)

    def _literal(self, node: Literal) -> Type:
        return {
            "string": TEXT,
            "number": NUMBER,
            "percent": NUMBER,
            "duration": DURATION,
            "boolean": BOOLEAN,
            "null": NULL,
        }[node.kind]

    def _name(self, node: Name) -> Type:
        head, *rest = node.parts
        top = self.scope.top_level()
        if not rest:
            if head in top:
                return top[head]
            if head in ROOTS:
                example = next(iter(self.scope.members(head)))
                raise TypeCheckError(
                    f"'{head}' needs an attribute, e.g. {head}.{example}",
                    node.pos,
                    code="expr-unknown-name",
                )
            hint = did_you_mean(head, [*top, *ROOTS]) or known_list(list(top))
            where = f" in template '{self.scope.template}'" if self.scope.template else ""
            raise TypeCheckError(
                f"unknown name '{head}'{where}", node.pos, hint, code="expr-unknown-name"
            )
        if head not in ROOTS:
            if head in top:
                raise TypeCheckError(
                    f"'{head}' has no attributes; '{node.dotted}' cannot be read",
                    node.pos,
                    code="expr-unknown-name",
                )
            raise TypeCheckError(
                f"unknown name '{head}'",
                node.pos,
                did_you_mean(head, [*top, *ROOTS]) or "prefixes are ticket., actor. and sla.",
                code="expr-unknown-name",
            )
        members = self.scope.members(head)
        if len(rest) > 1 or rest[0] not in members:
            dotted = [f"{head}.{m}" for m in members]
            raise TypeCheckError(
                f"unknown name '{node.dotted}'",
                node.pos,
                did_you_mean(node.dotted, dotted) or known_list(dotted),
                code="expr-unknown-name",
            )
        return members[rest[0]]

    def _call(self, node: Call) -> Type:
        sig = FUNCTIONS.get(node.name)
        if sig is None and node.name.startswith("_"):
            raise TypeCheckError(
                f"'{node.name}': names may not start with '_'",
                node.pos,
                known_list(list(FUNCTIONS)),
                code="expr-forbidden",
            )
        if sig is None:
            raise TypeCheckError(
                f"unknown function '{node.name}'",
                node.pos,
                did_you_mean(node.name, FUNCTIONS) or known_list(list(FUNCTIONS)),
                code="expr-unknown-function",
            )
        low, high = sig.arity
        if not low <= len(node.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            plural = "" if wanted == "1" else "s"
            raise TypeCheckError(
                f"{node.name}() takes {wanted} argument{plural}, not {len(node.args)}",
                node.pos,
                sig.summary,
                code="expr-arity",
            )
        args = [self.infer(a) for a in node.args]
        result = sig.check(args)
        if isinstance(result, str):
            shown = ", ".join(str(a) for a in args)
            raise TypeCheckError(
                f"{node.name}() expects {result}, not ({shown})",
                node.pos,
                sig.summary,
                code="expr-type",
            )
        if node.name == "matches":
            self._check_pattern(node.args[1])
        if node.name == "contains" and args[0].kind == "list" and args[0].item is not None:
            self._check_option(args[0].item, node.args[1])
        return result

    def _check_pattern(self, arg: Expr) -> None:
        if not isinstance(arg, Literal) or arg.kind != "string":
            raise TypeCheckError(
                "the pattern of matches() must be a literal string",
                arg.pos,
                'e.g. matches(store_no, "^S\\\\d{4}$")',
                code="expr-type",
            )
        try:
            re.compile(str(arg.value))
        except re.error as exc:
            raise TypeCheckError(
                f"invalid regular expression: {exc.msg}", arg.pos, code="expr-regex"
            ) from None
        if _NESTED_QUANTIFIER.search(str(arg.value)):
            raise TypeCheckError(
                "nested repetition such as (a+)+ can take exponential time",
                arg.pos,
                "remove the inner or the outer repetition",
                code="expr-regex",
            )

    def _list(self, node: ListExpr) -> Type:
        types = [self.infer(i) for i in node.items]
        concrete = [t for t in types if t.kind not in ("null", "any")]
        if not concrete:
            return list_of(ANY)
        first = concrete[0]
        for item, t in zip(node.items, types, strict=True):
            if t.kind not in ("null", "any") and not _comparable(first, t):
                raise TypeCheckError(
                    f"a list mixes {first} and {t}",
                    item.pos,
                    "all items of a list have the same type",
                    code="expr-type",
                )
        return list_of(first.plain())

    def _unary(self, node: Unary) -> Type:
        t = self.infer(node.operand)
        if node.op == "not":
            self._expect_boolean(t, node.operand.pos, "'not'")
            return BOOLEAN
        if t.kind in ("number", "duration", "any", "null"):
            return t.plain()
        raise TypeCheckError(
            f"'-' needs a number or a duration, not {t}", node.pos, code="expr-type"
        )

    def _expect_boolean(self, t: Type, pos: Position, what: str) -> None:
        if t.kind not in ("boolean", "any", "null"):
            raise TypeCheckError(
                f"{what} needs true/false, not {t}",
                pos,
                'compare it, e.g. x == "value", or use is_set(x)',
                code="expr-type",
            )

    def _binary(self, node: Binary) -> Type:
        left, right = self.infer(node.left), self.infer(node.right)
        op = node.op
        if op in ("and", "or"):
            self._expect_boolean(left, node.left.pos, f"'{op}'")
            self._expect_boolean(right, node.right.pos, f"'{op}'")
            return BOOLEAN
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return self._compare(node, left, right)
        if op in ("in", "not in"):
            return self._membership(node, left, right)
        return self._arith(node, left, right)

    def _compare(self, node: Binary, left: Type, right: Type) -> Type:
        if not _comparable(left, right):
            raise TypeCheckError(
                f"cannot compare {left} with {right}",
                node.op_pos,
                _compare_hint(left, right),
                code="expr-type",
            )
        if node.op not in ("==", "!=") and left.kind in ("boolean", "list", "location"):
            raise TypeCheckError(
                f"'{node.op}' does not order {left} values", node.op_pos, code="expr-type"
            )
        self._check_option(left, node.right)
        self._check_option(right, node.left)
        for container, other in ((left, node.right), (right, node.left)):
            if container.kind == "list" and container.item and isinstance(other, ListExpr):
                for element in other.items:  # multi_choice == ["a", "b"]
                    self._check_option(container.item, element)
        return BOOLEAN

    def _membership(self, node: Binary, left: Type, right: Type) -> Type:
        if right.kind == "text":
            if left.kind not in ("text", "any", "null"):
                raise TypeCheckError(
                    f"'{node.op}' on a text looks for a text, not {left}",
                    node.left.pos,
                    code="expr-type",
                )
            return BOOLEAN
        if right.kind not in ("list", "any", "null"):
            raise TypeCheckError(
                f"'{node.op}' needs a list or a text on its right, not {right}",
                node.right.pos,
                code="expr-type",
            )
        item = right.item or ANY
        if not _comparable(left, item):
            raise TypeCheckError(
                f"a {left} is never {node.op} a {right}",
                node.left.pos,
                code="expr-type",
            )
        if isinstance(node.right, ListExpr):
            for element in node.right.items:
                self._check_option(left, element)
        self._check_option(item, node.left)
        return BOOLEAN

    def _arith(self, node: Binary, left: Type, right: Type) -> Type:
        if "null" in (left.kind, right.kind) or "any" in (left.kind, right.kind):
            known = left if left.kind not in ("null", "any") else right
            return known.plain() if known.kind not in ("null", "any") else ANY
        result = _ARITH.get((node.op, left.kind, right.kind))
        if result is None:
            hint = None
            if node.op == "*" and "text" in (left.kind, right.kind):
                hint = "texts cannot be repeated with '*'"
            raise TypeCheckError(
                f"cannot {_VERBS[node.op]} {left} and {right}", node.op_pos, hint, code="expr-type"
            )
        return Type(result)

    def _check_option(self, t: Type, other: Expr) -> None:
        if t.options is None or not isinstance(other, Literal) or other.kind != "string":
            return
        value = str(other.value)
        if value not in t.options:
            options = sorted(t.options)
            raise TypeCheckError(
                f"'{value}' is not one of the options ({', '.join(options)})",
                other.pos,
                did_you_mean(value, options),
                code="expr-unknown-option",
            )


_VERBS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}


def _compare_hint(left: Type, right: Type) -> str | None:
    kinds = {left.kind, right.kind}
    if kinds == {"number", "text"}:
        return 'quote both or neither: 5 is a number, "5" is a text'
    if kinds == {"duration", "number"}:
        return "write the number with a unit, e.g. 30m or 4h"
    if kinds == {"boolean", "text"}:
        return "true and false are written without quotes"
    return None


def check_expression(node: Expr, scope: Scope, expect: Type | None = BOOLEAN) -> Type:
    """Type-check `node` in `scope`; when `expect` is given the result must have that type."""
    result = Checker(scope).infer(node)
    if expect is not None and result.kind not in (expect.kind, "any", "null"):
        if expect.kind == "boolean":
            raise TypeCheckError(
                f"a condition must be true or false, but this is {result}",
                node.pos,
                'compare it, e.g. x == "value", or use is_set(x)',
                code="expr-not-boolean",
            )
        raise TypeCheckError(
            f"this expression gives {result}, but {expect} is expected",
            node.pos,
            code="expr-type",
        )
    return result


__all__ = [
    "DATE",
    "DATETIME",
    "DURATION",
    "FUNCTIONS",
    "Checker",
    "TypeCheckError",
    "check_expression",
]
