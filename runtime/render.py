"""Message templates (Jinja2), rendered in a sandbox with bounded time and output.

The stock sandbox blocks attribute escapes but not CPU or memory: `9**9**9`, `"x" * 10**9`
and nested loops over `range` are stopped here. `**` and `*` are intercepted (intercepted
operators are not constant-folded, so they cannot run while a template is compiled), `range`
is bounded, and rendering stops once the output or the time budget is exceeded.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT = 20_000  # characters of rendered text
MAX_TEMPLATE = 20_000  # characters of template source
MAX_SECONDS = 0.25
MAX_RANGE = 1_000
MAX_NUMBER = 1e15

_deadline: ContextVar[float] = ContextVar("render_deadline", default=0.0)


class RenderError(Exception):
    """A template could not be rendered; the message says why, in plain words."""


def _check_time() -> None:
    if time.monotonic() > _deadline.get():
        raise SecurityError(f"the template ran longer than {MAX_SECONDS}s")


def _range(*args: int) -> Iterator[int]:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items in templates")
    for value in values:
        _check_time()
        yield value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "**":
            if not isinstance(left, int | float) or not isinstance(right, int | float):
                raise SecurityError("** takes numbers only")
            if abs(right) > 64 or abs(left) > 1e6:
                raise SecurityError("** is limited to exponents up to 64 and bases up to 1e6")
        if operator == "*":
            sized = max(_size(left), _size(right))
            times = right if _size(left) else left
            if sized and isinstance(times, int) and sized * times > MAX_OUTPUT:
                raise SecurityError(f"* would build more than {MAX_OUTPUT} characters")
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int | float) and abs(result) > MAX_NUMBER:
            raise SecurityError("number too large")
        return result


def _finalize(value: Any) -> Any:
    return "" if value is None else value


# optimized=False: the optimizer folds constant expressions while a template compiles,
# filters included (`'x'|center(10**10)` would build 10 GB before rendering starts).
_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, finalize=_finalize, optimized=False)
_ENV.globals = {"range": _range}


def _bounded_filter(name: str, limit: int, *positions: int) -> None:
    """Wrap a stock filter whose numeric arguments size its output (`'x'|center(10**10)`
    would build 10 GB in one call, before any output check could run)."""
    original = _ENV.filters[name]
    # A filter marked to receive the environment or context gets it as its first argument.
    shift = 1 if hasattr(original, "jinja_pass_arg") else 0

    @functools.wraps(original)  # keeps that mark, so Jinja still passes it
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for i in (p + shift for p in positions):
            value = args[i] if i < len(args) else None
            if isinstance(value, int | float) and abs(value) > limit:
                raise SecurityError(f"{name}() is limited to {limit:,} in templates")
        for value in kwargs.values():
            if isinstance(value, int | float) and abs(value) > limit:
                raise SecurityError(f"{name}() is limited to {limit:,} in templates")
        return original(*args, **kwargs)

    _ENV.filters[name] = bounded


@pass_eval_context
def _replace(ctx: Any, value: Any, old: Any, new: Any, count: int | None = None) -> Any:
    times = str(value).count(str(old)) if old else len(str(value)) + 1
    if times * len(str(new)) > MAX_OUTPUT:
        raise SecurityError(f"replace() would build more than {MAX_OUTPUT:,} characters")
    return _STOCK_REPLACE(ctx, value, old, new, count)


def _refused(name: str, hint: str) -> Any:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise SecurityError(f"the {name} filter is not available in messages; {hint}")

    return refuse


_STOCK_REPLACE = _ENV.filters["replace"]
_bounded_filter("center", MAX_OUTPUT, 1)
_bounded_filter("wordwrap", MAX_OUTPUT, 1)
_bounded_filter("indent", 100, 1)
_bounded_filter("slice", MAX_RANGE, 1)
_bounded_filter("batch", MAX_RANGE, 1)
_bounded_filter("truncate", MAX_OUTPUT, 1)
_ENV.filters["replace"] = _replace
# `'%99999999s'|format(x)` sizes its output by a number inside a string.
_ENV.filters["format"] = _refused("format", "join values with ~ instead")


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    if len(source) > MAX_TEMPLATE:
        raise RenderError(f"template longer than {MAX_TEMPLATE} characters")
    try:
        return _ENV.from_string(source)
    except TemplateError as exc:
        raise RenderError(f"template does not compile: {exc}") from None


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render `source` with `context`; RenderError on any failure or limit."""
    if "{" not in source:
        return source
    template = _compiled(source)
    token = _deadline.set(time.monotonic() + MAX_SECONDS)
    try:
        out: list[str] = []
        total = 0
        for chunk in template.generate(**context):
            total += len(chunk)
            if total > MAX_OUTPUT:
                raise RenderError(f"the message is longer than {MAX_OUTPUT} characters")
            out.append(chunk)
            _check_time()
        return "".join(out)
    except SecurityError as exc:
        raise RenderError(f"template stopped: {exc}") from None
    except TemplateError as exc:
        raise RenderError(f"template failed: {exc}") from None
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise RenderError(f"template failed: {exc}") from None
    finally:
        _deadline.reset(token)


def render_value(source: Any, context: Mapping[str, Any]) -> Any:
    """A field value given as a template: one bare `{{ ticket.x }}` copies the value itself
    (a table stays a table); anything else renders to text."""
    if not isinstance(source, str) or "{" not in source:
        return source
    stripped = source.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        name = stripped[2:-2].strip()
        root, _, attr = name.partition(".")
        if root == "ticket" and attr.isidentifier() and attr in context.get("ticket", {}):
            return context["ticket"][attr]
    return render(source, context)
