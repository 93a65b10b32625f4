"""JSON Merge Patch (RFC 7396) on plain data: checking a patch's shape, applying it, and
computing the patch that turns one document into another."""

from __future__ import annotations

import math
from typing import Any

from dsl.diagnostics import Diagnostic
from dsl.source_map import JsonPath, json_pointer

# A patch or document nested deeper than this is refused before anything walks it (the YAML
# loader refuses the same depth in files).
MAX_DEPTH = 64


def json_problems(value: Any, what: str, max_depth: int = MAX_DEPTH) -> list[Diagnostic]:
    """Why `value` is not plain JSON data (objects with text keys, arrays, text, finite
    numbers, booleans, null), each located by its JSON pointer; empty when it is."""
    problems: list[Diagnostic] = []
    stack: list[tuple[Any, JsonPath]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            problems.append(_bad("draft-too-deep", f"{what} nests deeper than {max_depth}", path))
            continue
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    problems.append(_bad("draft-bad-key", f"key {key!r} is not text", path))
                    continue
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            problems.append(_bad("draft-bad-value", f"{node} is not a JSON number", path))
        elif node is not None and not isinstance(node, str | int | float | bool):
            kind = type(node).__name__
            problems.append(_bad("draft-bad-value", f"a {kind} is not JSON data", path))
    return sorted(problems, key=lambda d: d.pointer or "")


def _bad(code: str, message: str, path: JsonPath) -> Diagnostic:
    return Diagnostic(
        code,
        message,
        None,
        hint="send JSON: objects with text keys, arrays, text, numbers, true/false, null",
        pointer=json_pointer(path),
    )


def same_json(a: Any, b: Any) -> bool:
    """Equality that tells `1`, `1.0` and `true` apart (Python's `==` does not)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def without_nulls(value: Any) -> Any:
    """`value` with every null member of its objects left out (a merge patch's new object)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def apply_to_data(target: Any, patch: Any) -> Any:
    """RFC 7396: the result of applying `patch` to `target` (neither is changed)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_to_data(out.get(key), value)
    return out


def patch_between(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch that turns `old` into `new`. Null members of `new` mean
    absent (a merge patch cannot set a null); arrays that differ are sent whole."""
    patch: dict[str, Any] = {}
    for key in old:
        if new.get(key) is None:
            patch[key] = None
    for key, after in new.items():
        if after is None:
            continue
        before = old.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            inner = patch_between(before, after)
            if inner:
                patch[key] = inner
        elif key not in old or not same_json(before, after):
            patch[key] = without_nulls(after)
    return patch
