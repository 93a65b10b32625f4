"""Turn pydantic validation errors into located diagnostics an admin can act on."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from dsl.diagnostics import Diagnostic, did_you_mean, known_list
from dsl.source_map import JsonPath, SourceMap, json_pointer

_BOUNDS = {
    "greater_than_equal": "at least",
    "less_than_equal": "at most",
    "greater_than": "more than",
    "less_than": "less than",
}

_VALUE_WORDS = {
    "_check_percent": "a percentage such as 80%",
    "_check_duration": "a duration such as 30m or 4h",
    "_check_timezone": "a time zone name such as Asia/Shanghai",
    "_check_hours": "opening hours such as 09:00-18:00",
    "_check_regex": "a regular expression (text)",
}

_TYPE_WORDS = {
    "str": "text",
    "string": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "date": "a date (YYYY-MM-DD)",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "literal": "one of the listed words",
}


@dataclass(slots=True)
class _Located:
    """A pydantic error with the data path it applies to and the union branches it went."""

    error: ErrorDetails
    path: JsonPath
    branches: tuple[tuple[JsonPath, str], ...]
    key_error: bool


def _is_tag(node: Any, element: Any, following: Any) -> bool:
    """A union tag that is also a key of the data, e.g. `entered` in `{entered: x, after: 3}`
    (loc: on, entered, after) or `notify` in `{notify: {...}}` (loc: notify, notify, to)."""
    if not isinstance(node, dict) or following is None or following not in node:
        return False
    child = node.get(element)
    return not (isinstance(child, dict) and following in child)


def _walk(loc: tuple[int | str, ...], data: Any, missing: bool = False) -> _Located | None:
    # The last element of a 'missing' error names the absent key: not a union branch.
    if missing:
        loc = loc[:-1]
    path: list[str | int] = []
    branches: list[tuple[JsonPath, str]] = []
    node = data
    key_error = False
    for index, element in enumerate(loc):
        if element == "[key]":
            key_error = True
            break
        following = loc[index + 1] if index + 1 < len(loc) else None
        if _is_tag(node, element, following):
            branches.append((tuple(path), str(element)))
            continue
        if isinstance(node, dict) and element in node:  # noqa: SIM114 (mypy narrows per branch)
            node = node[element]
            path.append(element)
        elif isinstance(node, list) and isinstance(element, int) and element < len(node):
            node = node[element]
            path.append(element)
        else:
            branches.append((tuple(path), str(element)))
    return _Located({}, tuple(path), tuple(branches), key_error)  # type: ignore[typeddict-item]


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value}"
    text = str(value)
    return f"'{text[:60]}…'" if len(text) > 60 else f"'{text}'"


# -- finding the model class behind a location, for names and descriptions -----------------


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(tp))
    return [tp]


def _tag_of(member: Any) -> str | None:
    if typing.get_origin(member) is typing.Annotated:
        for meta in typing.get_args(member)[1:]:
            tag = getattr(meta, "tag", None)
            if isinstance(tag, str):
                return tag
    return None


def _matches(member: Any, element: str) -> bool:
    tag = _tag_of(member)
    if tag is not None:
        return tag == element
    inner = _unwrap(member)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        type_field = inner.model_fields.get("type")
        if type_field is not None and typing.get_args(type_field.annotation) == (element,):
            return True
        return inner.__name__ == element
    origin = typing.get_origin(inner)
    name = getattr(origin or inner, "__name__", str(inner)).lower()
    return element.lower().startswith(name)


def _step(tp: Any, element: str | int) -> Any | None:
    tp = _unwrap(tp)
    members = _union_members(tp)
    if len(members) > 1:
        for member in members:
            if isinstance(element, str) and _matches(member, element):
                return _unwrap(member)
        return tp  # not a branch name: stay on the union, try the next element
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if element in (name, info.alias):
                return info.annotation
        return tp
    origin = typing.get_origin(tp)
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin is list:
        return typing.get_args(tp)[0]
    return None


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class a pydantic error location ends in, if any."""
    tp: Any = root
    for element in loc:
        tp = _step(tp, element)
        if tp is None:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    return None


def _as_hint(description: str) -> str:
    """A model description reused as a hint: plain quotes, no closing period."""
    return description.replace("`", "'").rstrip(".")


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless it starts an acronym (`IANA`, `ISO`)."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def _validator_of(root: type[BaseModel], loc: Sequence[str | int]) -> str | None:
    """Name of the AfterValidator function behind the field at `loc`, if any."""
    model = model_at(root, list(loc[:-1]))
    named = [e for e in loc if isinstance(e, str) and not e[:1].isupper() and "[" not in e]
    if model is None or not named:
        return None
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    fields.update({name: info for name, info in model.model_fields.items()})
    # The last name is the field; when the loc ends in a union branch, the one before it.
    info = fields.get(named[-1]) or (fields.get(named[-2]) if len(named) > 1 else None)
    if info is None:
        return None
    for meta in _all_metadata(info.annotation) + list(info.metadata):
        func = getattr(meta, "func", None)
        if func is not None:
            return str(getattr(func, "__name__", ""))
    return None


def _all_metadata(tp: Any) -> list[Any]:
    out: list[Any] = []
    for member in _union_members(tp):
        if typing.get_origin(member) is typing.Annotated:
            out.extend(typing.get_args(member)[1:])
            out.extend(_all_metadata(typing.get_args(member)[0]))
    return out


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _description(model: type[BaseModel] | None, key: str) -> str | None:
    if model is None:
        return None
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.description
    return None


# -- choosing among union branches ---------------------------------------------------------

_TYPE_ERROR = re.compile(r"_(type|parsing)$|^model_attributes_type$|^dict_type$|^list_type$")


def _is_type_error(err: ErrorDetails) -> bool:
    if err["type"] == "literal_error":
        # A literal given a number or a mapping is a wrong type, not a misspelt word.
        return not isinstance(err.get("input"), str)
    return bool(_TYPE_ERROR.search(err["type"])) or err["type"] in ("union_tag_not_found",)


def _reduce(items: list[_Located], level: int = 0) -> list[_Located] | list[list[_Located]]:
    """Keep the errors of the union branch that got furthest; ties become one group."""
    plain = [i for i in items if len(i.branches) <= level]
    nested = [i for i in items if len(i.branches) > level]
    result: list[Any] = list(plain)
    by_point: dict[JsonPath, dict[str, list[_Located]]] = {}
    for item in nested:
        point, branch = item.branches[level]
        by_point.setdefault(point, {}).setdefault(branch, []).append(item)
    for branches in by_point.values():
        if len(branches) == 1:
            (only,) = branches.values()
            result.extend(_reduce(only, level + 1))
            continue
        depth = {b: max(len(i.path) for i in errs) for b, errs in branches.items()}
        deepest = max(depth.values())
        best = {b: errs for b, errs in branches.items() if depth[b] == deepest}
        specific = {
            b: errs for b, errs in best.items() if not all(_is_type_error(e.error) for e in errs)
        }
        chosen = specific or best
        if len(chosen) == 1:
            (only,) = chosen.values()
            result.extend(_reduce(only, level + 1))
        else:
            result.append([e for errs in chosen.values() for e in errs])
    return result


# -- the translation -----------------------------------------------------------------------

_CODES = {
    "missing": "missing-key",
    "extra_forbidden": "unknown-key",
    "union_tag_invalid": "unknown-kind",
    "union_tag_not_found": "missing-kind",
    "literal_error": "invalid-value",
    "too_short": "too-few-items",
    "too_long": "too-many-items",
    "string_pattern_mismatch": "invalid-format",
    "greater_than_equal": "out-of-range",
    "less_than_equal": "out-of-range",
    "greater_than": "out-of-range",
    "less_than": "out-of-range",
}


def _code(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind in _CODES:
        return _CODES[kind]
    if _is_type_error(err):
        return "wrong-type"
    if "-" in kind:
        return kind  # our own PydanticCustomError codes are kebab-case already
    return "invalid-value"


def _quoted(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


class _Translator:
    def __init__(self, root: type[BaseModel], data: Any, source: SourceMap) -> None:
        self.root = root
        self.data = data
        self.source = source

    def _key_name(self, path: JsonPath) -> str:
        for element in reversed(path):
            if isinstance(element, str):
                return element
        return "value"

    def one(self, item: _Located) -> Diagnostic:
        err = item.error
        loc, path, kind = err["loc"], item.path, err["type"]
        code = _code(err)
        hint: str | None = None
        span = self.source.locate(path)
        key = self._key_name(path)
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if item.key_error:
            span = self.source.locate(path, prefer_key=True)
            message = err["msg"]
            key = str(path[-1]) if path else key
        elif kind == "missing":
            missing = str(loc[-1])
            model = model_at(self.root, loc[:-1])
            message = f"missing required key '{missing}'"
            desc = _description(model, missing)
            hint = f"add '{missing}:' ({_lower_first(desc).rstrip('.')})" if desc else None
            span = self.source.locate(path, prefer_key=True)
        elif kind == "extra_forbidden":
            unknown = str(loc[-1])
            model = model_at(self.root, loc[:-1])
            keys = _keys_of(model) if model else []
            where = f" in '{self._key_name(path[:-1])}'" if len(path) > 1 else ""
            message = f"unknown key '{unknown}'{where}"
            hint = did_you_mean(unknown, keys) or (known_list(keys) if keys else None)
            span = self.source.key(path) or span
        elif kind == "union_tag_invalid":
            tag, expected = str(ctx.get("tag")), _quoted(str(ctx.get("expected_tags", "")))
            message = f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} '{tag}'"
            hint = did_you_mean(tag, expected) or known_list(expected)
            span = self.source.value((*path, "type")) or span
        elif kind == "union_tag_not_found":
            from engine.fields import FIELD_TYPES

            tag = str(ctx.get("discriminator", "type")).strip("'")
            message = f"'{key}' has no '{tag}:'"
            hint = f"add '{tag}:' — one of " + ", ".join(FIELD_TYPES)
            code = "missing-key"
        elif kind in ("unknown-action", "unknown-trigger"):
            message, hint = self._kind_error(kind, value, err["msg"])
        elif kind == "literal_error":
            expected = _quoted(str(ctx.get("expected", "")))
            message = f"invalid value {_describe(value)} for '{key}'"
            hint = did_you_mean(str(value), expected) or ("expected " + ", ".join(expected))
        elif kind in ("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"):
            reason = ctx.get("error", "not a date")
            message = f"invalid date {_describe(value)} for '{key}': {reason}"
            hint = "write dates as YYYY-MM-DD, e.g. 2026-10-01"
            code = "invalid-value"
        elif _is_type_error(err) and kind != "literal_error":
            wanted = _TYPE_WORDS.get(kind.split("_")[0], kind.split("_")[0])
            if kind == "string_type":
                wanted = _VALUE_WORDS.get(_validator_of(self.root, loc) or "", wanted)
            message = f"'{key}' must be {wanted}, not {_describe(value)}"
            hint = self._type_hint(kind, value, loc)
        elif kind in ("too_short", "too_long"):
            limit = ctx.get("min_length" if kind == "too_short" else "max_length")
            if kind == "too_short" and limit == 1:
                message = f"'{key}' must not be empty"
            elif kind == "too_short":
                message = f"'{key}' needs at least {limit} items"
            else:
                message = f"'{key}' may have at most {limit} items"
            desc = _description(model_at(self.root, loc[:-1]), str(loc[-1]))
            hint = _as_hint(desc) if desc else None
        elif kind in _BOUNDS:
            bound = next(iter(ctx.values()), "?")
            message = f"'{key}' must be {_BOUNDS[kind]} {bound}, not {_describe(value)}"
        elif kind == "string_pattern_mismatch":
            message, hint = self._pattern_error(key, value, loc)
        else:
            message = f"'{key}': {err['msg']}" if "-" not in kind else err["msg"]
            if "-" in kind and ctx.get("hint"):
                hint = str(ctx["hint"])
        return Diagnostic(code, message, span, hint=hint, pointer=json_pointer(path))

    def _type_hint(self, kind: str, value: Any, loc: Sequence[str | int]) -> str | None:
        if value is None:
            return "nothing is written here; inside {...} a comma ends the text, so quote text "
            "with commas: {en: 'Jam, noise'}"
        if kind != "string_type" or not isinstance(value, int | float | bool):
            return None
        check = _validator_of(self.root, loc)
        if check == "_check_percent":
            return f"write a percentage, e.g. {value}%"
        if check == "_check_duration":
            return f"add a unit, e.g. {value}m, {value}h or {value}d"
        shown = str(value).lower() if isinstance(value, bool) else value
        return f"put the value in quotes: '{shown}'"

    def _pattern_error(self, key: str, value: Any, loc: Sequence[str | int]) -> tuple[str, str]:
        desc = _description(model_at(self.root, loc[:-1]), str(loc[-1])) or ""
        if key == "schedule" and isinstance(value, str):
            return (
                f"a schedule has 5 fields (minute hour day month weekday); "
                f"'{value}' has {len(value.split())}",
                "e.g. '0 8 * * MON' for every Monday at 08:00",
            )
        return f"invalid value {_describe(value)} for '{key}'", _as_hint(desc)

    def _kind_error(self, kind: str, value: Any, default: str) -> tuple[str, str | None]:
        from engine.model import ACTION_KINDS, TRIGGER_KINDS

        kinds = ACTION_KINDS if kind == "unknown-action" else TRIGGER_KINDS
        noun = "action" if kind == "unknown-action" else "trigger"
        if isinstance(value, dict):
            known = [k for k in value if k in kinds]
            if len(known) > 1:
                return (
                    f"one {noun} per list item; found {' and '.join(known)}",
                    f"write each {noun} as its own '- ' item",
                )
            if not known and value:
                name = next(iter(value))
                return (
                    f"unknown {noun} '{name}'",
                    did_you_mean(str(name), kinds) or known_list(kinds),
                )
        if kind == "unknown-trigger" and not isinstance(value, dict | str):
            return (f"a trigger must be an event name or a mapping, not {_describe(value)}", None)
        return default, known_list(kinds)

    def combined(self, group: list[_Located]) -> Diagnostic:
        first = group[0]
        point = first.branches[0][0] if first.branches else first.path
        for item in group:
            for p, _ in item.branches:
                if len(p) > len(point):
                    point = p
        words: list[str] = []
        for item in group:
            word = self._expected_word(item)
            if word not in words:
                words.append(word)
        value = _value_at(self.data, point)
        key = self._key_name(point)
        message = f"'{key}' must be {' or '.join(words)}, not {_describe(value)}"
        return Diagnostic(
            "wrong-type", message, self.source.locate(point), pointer=json_pointer(point)
        )

    def _expected_word(self, item: _Located) -> str:
        err = item.error
        if err["type"] == "literal_error":
            expected = _quoted(str((err.get("ctx") or {}).get("expected", "")))
            return "one of " + ", ".join(expected)
        if err["type"] == "model_type" or err["type"] == "model_attributes_type":
            return "a mapping"
        branch = item.branches[-1][1] if item.branches else err["type"]
        head = branch.split("[")[0].lower()
        if head.startswith("function"):
            inner = branch[branch.find("[") + 1 :].split(",")[-1].strip(" ]")
            head = inner.split("[")[0].lower()
        return _TYPE_WORDS.get(head, "a mapping" if head[:1].isupper() else head)


def _value_at(data: Any, path: JsonPath) -> Any:
    node = data
    for element in path:
        try:
            node = node[element]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _drop_misspelt_missing(items: list[_Located]) -> list[_Located]:
    """`titel:` gives 'unknown key titel (did you mean title?)' — the 'missing title' that
    pydantic also reports is the same mistake, so it is dropped."""
    unknown: dict[tuple[Any, ...], list[str]] = {}
    for item in items:
        if item.error["type"] == "extra_forbidden":
            unknown.setdefault(tuple(item.error["loc"][:-1]), []).append(str(item.error["loc"][-1]))
    kept = []
    for item in items:
        loc = item.error["loc"]
        misspelt = unknown.get(tuple(loc[:-1]), [])
        if item.error["type"] == "missing" and any(
            did_you_mean(u, [str(loc[-1])]) for u in misspelt
        ):
            continue
        kept.append(item)
    return kept


def translate(
    exc: ValidationError, root: type[BaseModel], data: Any, source: SourceMap
) -> list[Diagnostic]:
    """Diagnostics for every error pydantic found, one per real problem."""
    items: list[_Located] = []
    for err in exc.errors(include_url=False):
        located = _walk(err["loc"], data, missing=err["type"] == "missing")
        if located is None:
            continue
        located.error = err
        items.append(located)
    items = _drop_misspelt_missing(items)
    translator = _Translator(root, data, source)
    out: list[Diagnostic] = []
    for entry in _reduce(items):
        if isinstance(entry, list):
            out.append(translator.combined(entry))
        else:
            out.append(translator.one(entry))
    return out
