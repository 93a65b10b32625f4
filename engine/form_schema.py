"""Ticket field values: the JSON Schema of each field's stored value, one compiled validator
per template, and the conversion of stored values into what expressions read.

Stored JSON form of each field type (what `TicketRow.fields` holds and the API exchanges);
`null` always means "no value" (a cleared field) and is accepted for every field:

| type | stored JSON | expressions read |
| --- | --- | --- |
| text | string, one line; `pattern`, `min_length`, `max_length` (100,000 when unset) | str |
| long_text | string; `min_length`, `max_length` (100,000 when unset) | str |
| integer | JSON integer within `min`..`max` (±1e15 when unset) | int |
| number | JSON number within `min`..`max` (±1e15); `decimals` digits after the point | float |
| money | JSON number in the field's `currency`, within `min`..`max` (±1e15) | float |
| boolean | true / false | bool |
| choice | one option value (string) | str |
| multi_choice | array of distinct option values; `min_items`, `max_items` | list[str] |
| date | `YYYY-MM-DD` | datetime.date |
| datetime | RFC 3339, seconds and offset: `2026-11-25T09:30:00+08:00` or `...Z` | aware datetime |
| duration | text such as `30m`, `4h`, `1d`, `1w`, `1h30m` (`min`, `max`) | timedelta |
| email | `name@example.com` (one line, at most 254 characters) | str |
| phone | digits, spaces, `+`, `-`, parentheses; starts with `+`, `(` or a digit | str |
| url | `http://...` or `https://...` with a host | str |
| user | non-empty user id (string); `roles` / `team` are checked by the runtime | str |
| team | team name; one of the pack's teams when it declares any | str |
| asset | non-empty asset code (string); `asset_types` are checked by the runtime | str |
| location | `{lat: -90..90, lon: -180..180, address?: string}` | dict |
| attachments | array (≤ `max_items`) of `{id, name, content_type?, size?, url?}` | list[dict] |
| signature | `{image: data URL or file id, signed_by?: string, signed_at?: datetime}` | dict |
| rating | integer 1..`scale` | int |
| table | array of rows `{column: value}`, columns typed as above, no other keys | list[dict] |
| computed | the stored form of its `result` type (integer is read as any number); readOnly | |

`TemplateForm.build` compiles one jsonschema validator per template (each field a property,
no other key); it decides and explains every problem. Because jsonschema is slow on valid
values too (tens of µs a payload), closures compiled from the same schemas answer the common
valid case first: they accept only what the validator accepts, and hand it every doubt.

Rules that JSON Schema cannot say in standard keywords are custom keywords, checked by the
compiled validator like any other and ignored by other validators: `x-single-line`,
`x-decimals`, `x-duration-min`, `x-duration-max`, `x-accept`. `x-currency`, `x-unit` and
`x-options` are annotations for forms.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import lru_cache, partial
from types import MappingProxyType, SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import (  # type: ignore[import-untyped]
    Draft202012Validator,
    FormatChecker,
    validators,
)
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from pydantic import TypeAdapter
from pydantic import ValidationError as ModelError

from dsl.diagnostics import did_you_mean
from engine.expr_eval import MAX_NUMBER, MAX_TEXT
from engine.fields import ColumnSpec, LocalizedText, option_values
from engine.model import Pack
from engine.values import parse_duration

Schema = dict[str, Any]
JSON = dict[str, Any]
Converter = Callable[[Any], Any]
PathPart = str | int

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# Bounds so that no stored value is one the expression evaluator refuses to read, and no
# single value grows without limit.
MAX_INT = int(MAX_NUMBER)
MAX_ID = 200  # user ids, asset codes, attachment ids
MAX_FILE_NAME = 255
MAX_URL = 2048
MAX_EMAIL = 254
MAX_PHONE = 32
MAX_DURATION_TEXT = 64
MAX_ADDRESS = 500
MAX_SIGNATURE = 1_000_000  # a data URL of a signature image (about 750 KB of PNG)

# Patterns are linear-time (no nested or overlapping repeats) and valid in ECMA-262 too.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATETIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
# The same texts `engine.values.parse_duration` accepts: after optional spaces, at least one
# of the units in order w d h m s.
DURATION_PATTERN = r"^\s*(?=\S)(\d+w)?\s*(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+s)?\s*$"
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s.]{1,63}(\.[^@\s.]{1,63})+$"
PHONE_PATTERN = r"^\+?\(?[0-9][0-9 ()-]{2,30}$"
URL_PATTERN = r"^https?://[^\s/?#]+([/?#]\S*)?$"
SIGNATURE_IMAGE_PATTERN = r"^(data:image/[A-Za-z0-9.+-]+;base64,|[A-Za-z0-9_.:/-]{1,200}$)"

_SIZE_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one field value."""

    field: str  # field name; `parts[0].qty` inside a table, `site.lat` inside a location
    code: str  # required, type, pattern, format, minimum, option, unknown-field, read-only, ...
    message: str


# -- custom keywords ------------------------------------------------------------------------


def _single_line(validator: Any, enabled: bool, instance: Any, schema: Schema) -> Iterator[Any]:
    # Also closes the gap of Python's `$`, which matches before a trailing newline.
    if enabled and isinstance(instance, str) and ("\n" in instance or "\r" in instance):
        yield ValidationError("must be a single line")


def _decimals(validator: Any, digits: int, instance: Any, schema: Schema) -> Iterator[Any]:
    # `multipleOf: 0.1` is unreliable on floats (0.3 / 0.1 != 3); compare with a rounding
    # tolerance instead, so 0.1 + 0.2 sent by a JavaScript client still counts as 0.3.
    if not isinstance(instance, float) or not math.isfinite(instance):
        return
    if abs(round(instance, digits) - instance) > 1e-9 * max(1.0, abs(instance)):
        yield ValidationError(f"has more than {digits} decimals")


@lru_cache(maxsize=256)
def _seconds(text: str) -> float | None:
    try:
        return parse_duration(text).total_seconds()
    except ValueError:
        return None


def _duration_bound(below: bool) -> Callable[[Any, str, Any, Schema], Iterator[Any]]:
    def check(validator: Any, bound: str, instance: Any, schema: Schema) -> Iterator[Any]:
        if not isinstance(instance, str):
            return
        value, limit = _seconds(instance), _seconds(bound)
        if value is None or limit is None:
            return  # the pattern reports a malformed duration
        if (value < limit) if below else (value > limit):
            yield ValidationError(f"must be {'at least' if below else 'at most'} {bound}")

    return check


@lru_cache(maxsize=256)
def _accept_rule(accept: tuple[str, ...]) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """Media-type patterns (`image/*`) as one regex, and file extensions (`.pdf`)."""
    types = [a.strip().lower() for a in accept if "/" in a]
    exts = tuple(a.strip().lower() for a in accept if a.strip().startswith("."))
    alternatives = [re.escape(t).replace(r"\*", "[^/]+") for t in types]
    regex = re.compile("^(?:" + "|".join(alternatives) + ")$") if alternatives else None
    return regex, exts


def accepts(accept: Sequence[str], name: str, content_type: str | None) -> bool:
    """Whether a file is accepted: its media type matches a pattern, or its name ends with a
    listed extension. A file without a media type passes when only media types are listed
    (there is nothing to check it against)."""
    regex, exts = _accept_rule(tuple(accept))
    if exts and name.lower().endswith(exts):
        return True
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        return regex is not None and regex.match(media) is not None
    return not exts


def _accept(validator: Any, accept: list[str], instance: Any, schema: Schema) -> Iterator[Any]:
    if isinstance(instance, dict) and isinstance(instance.get("name"), str):
        content_type = instance.get("content_type")
        if not accepts(
            accept, instance["name"], content_type if isinstance(content_type, str) else None
        ):
            yield ValidationError(f"file type not accepted: {', '.join(accept)}")


def _finite_number(checker: Any, instance: Any) -> bool:
    # NaN passes every `minimum` / `maximum` (comparisons are false), so refuse it as a type.
    if isinstance(instance, bool):
        return False
    if isinstance(instance, float):
        return math.isfinite(instance)
    return isinstance(instance, int)


def _is_date(instance: Any) -> bool:
    if isinstance(instance, str):
        date.fromisoformat(instance)
    return True


def _is_datetime(instance: Any) -> bool:
    if isinstance(instance, str):
        return datetime.fromisoformat(instance).tzinfo is not None
    return True


def _format_checker() -> Any:
    # Only our own checks: the defaults include formats that need optional packages and are
    # silently skipped when those are missing.
    checker = FormatChecker(formats=())
    checker.checks("date", raises=ValueError)(_is_date)
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    return checker


FORMAT_CHECKER = _format_checker()
CUSTOM_KEYWORDS: dict[str, Callable[[Any, Any, Any, Schema], Iterator[Any]]] = {
    "x-single-line": _single_line,
    "x-decimals": _decimals,
    "x-duration-min": _duration_bound(below=True),
    "x-duration-max": _duration_bound(below=False),
    "x-accept": _accept,
}
FormValidator = validators.extend(
    Draft202012Validator,
    validators=CUSTOM_KEYWORDS,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)


# -- the schema of one value ----------------------------------------------------------------

Builder = Callable[[Any, Sequence[str]], Schema]


def _bounded(schema: Schema, low: float, high: float) -> Schema:
    return {**schema, "minimum": low, "maximum": high}


def _text(spec: Any, teams: Sequence[str]) -> Schema:
    # maxLength and x-single-line come before pattern: `is_valid` stops at the first failing
    # keyword, so an oversized text is refused before the admin's regex ever scans it.
    schema: Schema = {"type": "string"}
    if spec.min_length:
        schema["minLength"] = spec.min_length
    schema["maxLength"] = spec.max_length or MAX_TEXT
    schema["x-single-line"] = True
    if spec.pattern:
        schema["pattern"] = spec.pattern
    return schema


def _long_text(spec: Any, teams: Sequence[str]) -> Schema:
    schema: Schema = {"type": "string"}
    if getattr(spec, "min_length", None):
        schema["minLength"] = spec.min_length
    schema["maxLength"] = getattr(spec, "max_length", None) or MAX_TEXT
    return schema


def _integer(spec: Any, teams: Sequence[str]) -> Schema:
    low = spec.min if spec.min is not None else -MAX_INT
    high = spec.max if spec.max is not None else MAX_INT
    schema = _bounded({"type": "integer"}, low, high)
    if spec.unit:
        schema["x-unit"] = spec.unit
    return schema


def _number(spec: Any, teams: Sequence[str]) -> Schema:
    low = spec.min if spec.min is not None else -MAX_NUMBER
    high = spec.max if spec.max is not None else MAX_NUMBER
    schema = _bounded({"type": "number"}, low, high)
    if getattr(spec, "decimals", None) is not None:
        schema["x-decimals"] = spec.decimals
    if getattr(spec, "unit", None):
        schema["x-unit"] = spec.unit
    return schema


def _money(spec: Any, teams: Sequence[str]) -> Schema:
    schema = _number(spec, teams)
    if getattr(spec, "currency", None):
        schema["x-currency"] = spec.currency
    return schema


def _boolean(spec: Any, teams: Sequence[str]) -> Schema:
    return {"type": "boolean"}


def _choice(spec: Any, teams: Sequence[str]) -> Schema:
    return {"enum": option_values(spec.options)}


def _multi_choice(spec: Any, teams: Sequence[str]) -> Schema:
    schema: Schema = {"type": "array", "items": _choice(spec, teams), "uniqueItems": True}
    if spec.min_items:
        schema["minItems"] = spec.min_items
    if spec.max_items is not None:
        schema["maxItems"] = spec.max_items
    return schema


def _date(spec: Any, teams: Sequence[str]) -> Schema:
    return {"type": "string", "pattern": DATE_PATTERN, "format": "date"}


def _datetime(spec: Any, teams: Sequence[str]) -> Schema:
    return {"type": "string", "pattern": DATETIME_PATTERN, "format": "date-time"}


def _duration(spec: Any, teams: Sequence[str]) -> Schema:
    schema: Schema = {"type": "string", "maxLength": MAX_DURATION_TEXT}
    schema["pattern"] = DURATION_PATTERN
    if getattr(spec, "min", None):
        schema["x-duration-min"] = spec.min
    if getattr(spec, "max", None):
        schema["x-duration-max"] = spec.max
    return schema


def _line(max_length: int, pattern: str | None = None, min_length: int = 1) -> Schema:
    schema: Schema = {"type": "string", "minLength": min_length, "maxLength": max_length}
    schema["x-single-line"] = True
    if pattern:
        schema["pattern"] = pattern
    return schema


def _email(spec: Any, teams: Sequence[str]) -> Schema:
    return {**_line(MAX_EMAIL, EMAIL_PATTERN), "format": "email"}


def _phone(spec: Any, teams: Sequence[str]) -> Schema:
    return _line(MAX_PHONE, PHONE_PATTERN)


def _url(spec: Any, teams: Sequence[str]) -> Schema:
    return {**_line(MAX_URL, URL_PATTERN), "format": "uri"}


def _identifier(spec: Any, teams: Sequence[str]) -> Schema:
    return _line(MAX_ID)


def _team(spec: Any, teams: Sequence[str]) -> Schema:
    return {"enum": list(teams)} if teams else _line(MAX_ID)


def _location(spec: Any, teams: Sequence[str]) -> Schema:
    return {
        "type": "object",
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "address": {"type": "string", "maxLength": MAX_ADDRESS},
        },
        "required": ["lat", "lon"],
        "additionalProperties": False,
    }


def size_limit(text: str | None) -> int | None:
    """`20MB` → bytes (1 MB = 1024 KB), None when unset."""
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*(KB|MB|GB)", text.strip())
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)] if m else None


def _attachments(spec: Any, teams: Sequence[str]) -> Schema:
    size: Schema = {"type": "integer", "minimum": 0}
    limit = size_limit(spec.max_size)
    if limit is not None:
        size["maximum"] = limit
    item: Schema = {
        "type": "object",
        "properties": {
            "id": _line(MAX_ID),
            "name": _line(MAX_FILE_NAME),
            "content_type": _line(MAX_FILE_NAME),
            "size": size,
            "url": {"type": "string", "maxLength": MAX_URL},
        },
        "required": ["id", "name"],
        "additionalProperties": False,
    }
    if spec.accept:
        item["x-accept"] = list(spec.accept)
    return {"type": "array", "maxItems": spec.max_items, "items": item}


def _signature(spec: Any, teams: Sequence[str]) -> Schema:
    image: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_SIGNATURE}
    image["pattern"] = SIGNATURE_IMAGE_PATTERN
    return {
        "type": "object",
        "properties": {
            "image": image,
            "signed_by": _line(MAX_ID),
            "signed_at": _datetime(spec, teams),
        },
        "required": ["image"],
        "additionalProperties": False,
    }


def _rating(spec: Any, teams: Sequence[str]) -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": spec.scale}


def _table(spec: Any, teams: Sequence[str]) -> Schema:
    columns = table_columns(spec)
    row: Schema = {
        "type": "object",
        "properties": {
            name: value_schema(col, teams=teams, nullable=not col.required)
            for name, col in columns.items()
        },
        "additionalProperties": False,
    }
    required = [name for name, col in columns.items() if col.required]
    if required:
        row["required"] = required
    schema: Schema = {"type": "array", "items": row}
    if spec.min_rows:
        schema["minItems"] = spec.min_rows
    if spec.max_rows is not None:
        schema["maxItems"] = spec.max_rows
    return schema


# What a computed field's `result` is stored as. An integer result is read as any number:
# the runtime stores what the expression gave (`qty / 2` is 1.5), and refusing it here
# would block every later change to the ticket. A text result may span lines.
_COMPUTED_AS = {"integer": "number", "money": "number", "text": "long_text"}


def _computed(spec: Any, teams: Sequence[str]) -> Schema:
    kind = _COMPUTED_AS.get(spec.result, spec.result)
    result = SimpleNamespace(type=kind, min=None, max=None, decimals=None, unit=None)
    return {**_BUILDERS[kind](result, teams), "readOnly": True}


_BUILDERS: dict[str, Builder] = {
    "text": _text,
    "long_text": _long_text,
    "integer": _integer,
    "number": _number,
    "money": _money,
    "boolean": _boolean,
    "choice": _choice,
    "multi_choice": _multi_choice,
    "date": _date,
    "datetime": _datetime,
    "duration": _duration,
    "email": _email,
    "phone": _phone,
    "url": _url,
    "user": _identifier,
    "team": _team,
    "asset": _identifier,
    "location": _location,
    "attachments": _attachments,
    "signature": _signature,
    "rating": _rating,
    "table": _table,
    "computed": _computed,
}
SCHEMA_TYPES: frozenset[str] = frozenset(_BUILDERS)


def value_schema(spec: Any, *, teams: Sequence[str] = (), nullable: bool = True) -> Schema:
    """The JSON Schema (draft 2020-12) of one field's or column's stored value.

    `teams` are the pack's team names (a team field must name one of them when given);
    `nullable` adds null, the cleared value; `nullable=False` also refuses "" and [].
    """
    schema = _BUILDERS[spec.type](spec, teams)
    return with_null(schema) if nullable else non_empty(schema)


def with_null(schema: Schema) -> Schema:
    """The schema also accepting null."""
    out = dict(schema)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    elif isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def non_empty(schema: Schema) -> Schema:
    """The schema refusing null, "" and []: what a required value must satisfy."""
    out = dict(schema)
    if "enum" in out:
        out["enum"] = [v for v in out["enum"] if v is not None]
    elif isinstance(out.get("type"), list):
        kinds = [t for t in out["type"] if t != "null"]
        out["type"] = kinds[0] if len(kinds) == 1 else kinds
    if out.get("type") == "string" and not out.get("minLength"):
        out["minLength"] = 1
    if out.get("type") == "array" and not out.get("minItems"):
        out["minItems"] = 1
    return out


_COLUMNS: TypeAdapter[Any] = TypeAdapter(ColumnSpec)


def table_columns(spec: Any) -> dict[str, Any]:
    """A table's columns as column specs; a bare type name (`qty: integer`) gets defaults."""
    return {name: _column(col) for name, col in spec.columns.items()}


@lru_cache(maxsize=64)
def _bare_column(kind: str) -> Any:
    try:
        return _COLUMNS.validate_python({"type": kind})
    except ModelError:
        # Only `money` needs more (a currency); the pack checks report it, read it as money.
        return SimpleNamespace(
            type=kind,
            required=False,
            label=None,
            help=None,
            default=None,
            min=None,
            max=None,
            currency=None,
            decimals=None,
            unit=None,
        )


def _column(col: Any) -> Any:
    return _bare_column(col) if isinstance(col, str) else col


# -- a fast accept check compiled from a value schema ----------------------------------------

Check = Callable[[Any], bool]

# Keywords that only annotate: nothing to check.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "readOnly", "x-currency", "x-unit", "x-options"}
)


def compile_check(schema: Schema) -> Check:
    """A check that accepts a value only if `FormValidator(schema)` accepts it.

    jsonschema descends into every property and item through a fresh validator object
    (about 3 µs a scalar field, 8 µs a nested object, 60 µs a table row); these closures
    do the same work in a fraction. The check is one-sided on purpose: where it is not sure
    (a float in an integer field, an enum of non-strings, a keyword it does not know) it
    says no, and the caller asks the validator, which decides and explains. So a gap here
    costs time, never a wrong answer.
    """
    if any(k not in _KEYWORD_CHECKS and k not in _ANNOTATIONS for k in schema):
        is_valid: Check = FormValidator(schema, format_checker=FORMAT_CHECKER).is_valid
        return is_valid
    checks = [
        check
        for key, value in schema.items()
        if key in _KEYWORD_CHECKS and (check := _KEYWORD_CHECKS[key](value, schema)) is not None
    ]
    if len(checks) == 1:
        return checks[0]
    return partial(_all_pass, tuple(checks))


def _all_pass(checks: tuple[Check, ...], value: Any) -> bool:
    for check in checks:  # noqa: SIM110  (a plain loop: all() over a generator is slower)
        if not check(value):
            return False
    return True


def _never(value: Any) -> bool:
    return False


def _is_number(value: Any) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


# Stricter than jsonschema's types where that is simpler (an integer must be an int, not
# 3.0; subclasses of int or str are left to the validator): a no only costs time.
_TYPE_TESTS: dict[str, Check] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": _is_number,
    "boolean": lambda v: v is True or v is False,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
    "null": lambda v: v is None,
}


def _type_check(kinds: str | list[str], schema: Schema) -> Check:
    tests = [_TYPE_TESTS[k] for k in ([kinds] if isinstance(kinds, str) else kinds)]
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(test(v) for test in tests)


def _enum_check(options: list[Any], schema: Schema) -> Check:
    if not all(o is None or type(o) is str for o in options):
        return _never
    texts = frozenset(o for o in options if o is not None)
    nullable = None in options
    return lambda v: (type(v) is str and v in texts) or (nullable and v is None)


def _string_check(test: Callable[[str], bool]) -> Check:
    return lambda v: type(v) is not str or test(v)


def _min_length(n: int, schema: Schema) -> Check:
    return _string_check(lambda v: len(v) >= n)


def _max_length(n: int, schema: Schema) -> Check:
    return _string_check(lambda v: len(v) <= n)


def _pattern(pattern: str, schema: Schema) -> Check:
    search = re.compile(pattern).search
    return _string_check(lambda v: search(v) is not None)


def _format(name: str, schema: Schema) -> Check:
    conforms = FORMAT_CHECKER.conforms
    return _string_check(lambda v: bool(conforms(v, name)))


def _number_check(test: Callable[[Any], bool]) -> Check:
    # Anything but a finite int or float is the `type` keyword's business: say no.
    return lambda v: (_is_number(v) and test(v)) or not isinstance(v, int | float)


def _minimum(low: float, schema: Schema) -> Check:
    return _number_check(lambda v: v >= low)


def _maximum(high: float, schema: Schema) -> Check:
    return _number_check(lambda v: v <= high)


def _list_check(test: Callable[[list[Any]], bool]) -> Check:
    return lambda v: type(v) is not list or test(v)


def _items(item_schema: Schema, schema: Schema) -> Check:
    item = compile_check(item_schema)
    return _list_check(lambda v: all(item(x) for x in v))


def _unique(unique: bool, schema: Schema) -> Check | None:
    if not unique:
        return None
    return _list_check(lambda v: all(type(x) is str for x in v) and len(set(v)) == len(v))


def _min_items(n: int, schema: Schema) -> Check:
    return _list_check(lambda v: len(v) >= n)


def _max_items(n: int, schema: Schema) -> Check:
    return _list_check(lambda v: len(v) <= n)


def _dict_check(test: Callable[[dict[str, Any]], bool]) -> Check:
    return lambda v: type(v) is not dict or test(v)


def _properties(properties: Schema, schema: Schema) -> Check:
    checks = {name: compile_check(sub) for name, sub in properties.items()}
    return _dict_check(lambda v: all(checks[k](x) for k, x in v.items() if k in checks))


def _required(names: list[str], schema: Schema) -> Check:
    return _dict_check(lambda v: all(n in v for n in names))


def _additional(allowed: Any, schema: Schema) -> Check:
    if allowed is not False:
        return _never
    known = frozenset(schema.get("properties", ()))
    return _dict_check(lambda v: v.keys() <= known)


def _custom(keyword: str) -> Callable[[Any, Schema], Check]:
    def make(value: Any, schema: Schema) -> Check:
        rule = CUSTOM_KEYWORDS[keyword]
        return lambda v: next(iter(rule(None, value, v, schema)), None) is None

    return make


_KEYWORD_CHECKS: dict[str, Callable[[Any, Schema], Check | None]] = {
    "type": _type_check,
    "enum": _enum_check,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "format": _format,
    "minimum": _minimum,
    "maximum": _maximum,
    "items": _items,
    "uniqueItems": _unique,
    "minItems": _min_items,
    "maxItems": _max_items,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional,
    **{keyword: _custom(keyword) for keyword in CUSTOM_KEYWORDS},
}


# -- explaining validation errors -----------------------------------------------------------

# "must be ..." for each type, when a value of that field has the wrong type or form.
_EXPECTED: dict[str, str] = {
    "text": "text",
    "long_text": "text",
    "integer": "a whole number",
    "number": "a number",
    "money": "an amount (a number)",
    "boolean": "true or false",
    "multi_choice": "a list of options",
    "date": "a date written YYYY-MM-DD, e.g. 2026-11-25",
    "datetime": "a date and time with seconds and UTC offset, e.g. 2026-11-25T09:30:00+08:00",
    "duration": "a duration such as 30m, 4h, 2d, 1w or 1h30m",
    "email": "an e-mail address such as name@example.com",
    "phone": "a phone number of digits, spaces, +, - and parentheses, e.g. +86 21 5555 0100",
    "url": "a web address starting with http:// or https://",
    "user": "a user id",
    "team": "a team name",
    "asset": "an asset code",
    "location": "a location {lat, lon, address?}",
    "attachments": "a list of files {id, name, content_type?, size?, url?}",
    "signature": "a signature {image, signed_by?, signed_at?}",
    "table": "a list of rows",
}
_JSON_TYPES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_FORMAT_TYPES = frozenset({"date", "datetime", "duration", "email", "phone", "url"})
# Our own patterns say what a value must look like; a mismatch is a `format` problem.
_PATTERN_MEANS = {
    DATE_PATTERN: _EXPECTED["date"],
    DATETIME_PATTERN: _EXPECTED["datetime"],
    DURATION_PATTERN: _EXPECTED["duration"],
    EMAIL_PATTERN: _EXPECTED["email"],
    PHONE_PATTERN: _EXPECTED["phone"],
    URL_PATTERN: _EXPECTED["url"],
    SIGNATURE_IMAGE_PATTERN: "an image data URL (data:image/png;base64,...) or an attachment id",
}
_COUNTED = {"table": "rows", "attachments": "files", "multi_choice": "options"}


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun if count != 1 else noun.rstrip('s')}"


def path_text(path: Sequence[PathPart]) -> str:
    """`('parts', 2, 'qty')` → `parts[2].qty`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, slots=True)
class _Located:
    path: tuple[PathPart, ...]
    code: str
    message: str


class _Explainer:
    """Turns jsonschema errors into located problems with stable codes and plain messages."""

    def __init__(self, template: str, specs: Mapping[str, Any]):
        self.template = template
        self.specs = specs

    def spec_at(self, path: tuple[PathPart, ...]) -> Any:
        """The field or column spec whose own value sits at `path`, else None."""
        if not path or not isinstance(path[0], str):
            return None
        spec = self.specs.get(path[0])
        if spec is None or len(path) == 1:
            return spec
        if spec.type == "table" and len(path) == 3 and isinstance(path[2], str):
            return table_columns(spec).get(path[2])
        return None

    def explain(self, error: Any) -> Iterator[_Located]:
        path = tuple(error.absolute_path)
        spec = self.spec_at(path)
        keyword = error.validator
        if keyword == "additionalProperties":
            yield from self._unknown(path, error)
        elif keyword == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    yield _Located((*path, name), "required", "must have a value")
        elif len(path) == 3 and _is_missing_column(spec, error.instance, keyword):
            yield _Located(path, "required", "must have a value")
        else:
            code, message = self._describe(keyword, error, spec, path)
            yield _Located(path, code, message)

    def _unknown(self, path: tuple[PathPart, ...], error: Any) -> Iterator[_Located]:
        known = list(error.schema.get("properties", {}))
        for name in error.instance:
            if name in known:
                continue
            hint = did_you_mean(str(name), known)
            if not path:
                message = f"'{self.template}' has no field '{name}'"
            else:
                table = self.specs[str(path[0])].type == "table" and len(path) == 2
                what = "column" if table else "key"
                message = f"{path_text(path)} has no {what} '{name}' ({', '.join(known)})"
            yield _Located(
                (*path, str(name)), "unknown-field", message + (f"; {hint}" if hint else "")
            )

    def _describe(
        self, keyword: str, error: Any, spec: Any, path: tuple[PathPart, ...]
    ) -> tuple[str, str]:
        value = error.validator_value
        kind = spec.type if spec is not None else None
        if kind in _EXPECTED and (
            keyword == "type" or (keyword in ("pattern", "format") and kind in _FORMAT_TYPES)
        ):
            return ("type" if keyword == "type" else "format"), f"must be {_EXPECTED[kind]}"
        if keyword == "pattern" and value in _PATTERN_MEANS:
            return "format", f"must be {_PATTERN_MEANS[value]}"
        if keyword == "type":
            kinds = [value] if isinstance(value, str) else value
            nouns = [_JSON_TYPES.get(k, k) for k in kinds if k != "null"]
            return "type", f"must be {' or '.join(nouns)}"
        if keyword == "pattern":
            hint = _english(spec.help) if spec is not None else None
            return "pattern", f"must match the pattern {value}" + (f" ({hint})" if hint else "")
        if keyword == "format":
            return "format", f"must be {_EXPECTED['date' if value == 'date' else 'datetime']}"
        if keyword == "enum":
            options = ", ".join(str(v) for v in value if v is not None)
            return "option", f"must be one of {options}"
        return self._limit(keyword, value, kind)

    def _limit(self, keyword: str, value: Any, kind: str | None) -> tuple[str, str]:
        counted = _COUNTED.get(kind or "", "items")
        match keyword:
            case "minimum" | "maximum":
                side = "least" if keyword == "minimum" else "most"
                return keyword, f"must be at {side} {_number_text(value)}"
            case "x-duration-min" | "x-duration-max":
                side = "least" if keyword.endswith("min") else "most"
                return ("minimum" if side == "least" else "maximum"), f"must be at {side} {value}"
            case "minLength" | "maxLength":
                side = "least" if keyword == "minLength" else "most"
                code = "min-length" if side == "least" else "max-length"
                return code, f"must have at {side} {_plural(value, 'characters')}"
            case "minItems" | "maxItems":
                side = "least" if keyword == "minItems" else "most"
                code = "min-items" if side == "least" else "max-items"
                return code, f"must have at {side} {_plural(value, counted)}"
            case "uniqueItems":
                return "duplicate", "must not list the same value twice"
            case "x-single-line":
                return "single-line", "must be a single line (no line breaks)"
            case "x-decimals":
                return "decimals", f"must have at most {_plural(value, 'decimals')}"
            case "x-accept":
                return "accept", f"must be a file of type {', '.join(value)}"
        return keyword, "is not valid"


def _is_missing_column(spec: Any, instance: Any, keyword: str) -> bool:
    """A required table column given as null, "" or [] is missing rather than mistyped."""
    return (
        keyword in ("type", "enum", "minLength", "minItems")
        and getattr(spec, "required", False)
        and is_empty(instance)
    )


def is_empty(value: Any) -> bool:
    """Whether a value counts as not given: null, "" or [] (as `is_set` in expressions)."""
    return value is None or value == "" or value == []


def _sort_key(order: Mapping[str, int], item: _Located) -> tuple[Any, ...]:
    head = item.path[0] if item.path else ""
    rest = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in item.path[1:])
    return (order.get(str(head), len(order)), str(head), rest, item.code)


# -- conversion to expression values --------------------------------------------------------


def _to_float(value: Any) -> float:
    return float(value)


_SCALAR_CONVERTERS: dict[str, Converter] = {
    "date": date.fromisoformat,
    "datetime": datetime.fromisoformat,
    "duration": parse_duration,
    "number": _to_float,
    "money": _to_float,
}


def _converter(spec: Any) -> Converter | None:
    """How to turn the stored value into what expressions read; None when it is the same."""
    if spec.type == "computed":
        return _SCALAR_CONVERTERS.get(_COMPUTED_AS.get(spec.result, spec.result))
    if spec.type == "table":
        cells = tuple(
            (name, conv)
            for name, col in table_columns(spec).items()
            if (conv := _converter(col)) is not None
        )
        return partial(_convert_rows, cells) if cells else None
    return _SCALAR_CONVERTERS.get(spec.type)


def _convert_rows(cells: tuple[tuple[str, Converter], ...], rows: list[Any]) -> list[Any]:
    out = []
    for row in rows:
        new = dict(row)
        for name, convert in cells:
            value = new.get(name)
            if value is not None:
                new[name] = convert(value)
        out.append(new)
    return out


# -- canonicalisation -----------------------------------------------------------------------

Normalizer = Callable[[Any], Any]


def _normalizer(spec: Any) -> Normalizer:
    if spec.type == "table":
        columns = {name: _normalizer(col) for name, col in table_columns(spec).items()}
        return partial(_normalize_rows, columns)
    if spec.type in ("integer", "rating"):
        return _normalize_integer
    return _empty_to_null


def _empty_to_null(value: Any) -> Any:
    return None if value == "" else value


def _normalize_integer(value: Any) -> Any:
    # JavaScript clients send 3 as 3.0 at times; the value is unambiguous.
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_NUMBER:
        return int(value)
    return _empty_to_null(value)


def _normalize_rows(columns: Mapping[str, Normalizer], rows: Any) -> Any:
    if not isinstance(rows, list):
        return rows
    out: list[Any] = []
    for row in rows:
        if isinstance(row, dict):
            row = {k: columns[k](v) if k in columns else v for k, v in row.items()}
        out.append(row)
    return out


# -- the form of a template -----------------------------------------------------------------


def localized(text: LocalizedText | None, locale: str | None, locales: Sequence[str]) -> str | None:
    """The text in `locale`, else its language, else the pack's locales in order, else any."""
    if text is None or isinstance(text, str):
        return text
    wanted = [locale, locale.split("-")[0]] if locale else []
    for candidate in [*wanted, *locales]:
        if candidate and candidate in text:
            return text[candidate]
    return next(iter(text.values()), None)


@dataclass(frozen=True, slots=True)
class _FormText:
    """What the UI schema needs beyond the value schemas: titles and the pack's locales."""

    title: LocalizedText
    description: LocalizedText | None
    locales: tuple[str, ...]


def _on_clock(spec: Any) -> bool:
    """Whether the field's default is read off the clock (`today`, `now`)."""
    return spec.type in ("date", "datetime") and getattr(spec, "default", None) is not None


@dataclass(frozen=True, eq=False, slots=True)
class TemplateForm:
    """The fields of one template, compiled once: validate, defaults, UI schema, env values.

    Built once per template of a published pack version (the blueprint holds it); no call
    compiles anything. Equality and hashing are by identity; `json_schema` results are
    cached per form.
    """

    template: str
    timezone: str
    specs: Mapping[str, Any]
    schemas: Mapping[str, Schema]  # per field, the value schema (with null)
    schema: Schema  # the whole template's validation schema
    validator: Any  # the compiled FormValidator of `schema`
    required_on_create: tuple[str, ...]
    computed: frozenset[str]
    _names: frozenset[str]
    _accepts: Mapping[str, Check]
    _order: Mapping[str, int]
    _converters: tuple[tuple[str, str, Converter], ...]
    _normalizers: Mapping[str, Normalizer]
    _defaults: tuple[tuple[str, Any], ...]
    _explainer: _Explainer
    _render: Callable[[str | None, frozenset[str] | None, frozenset[str], str | None], Schema]

    @classmethod
    def build(cls, pack: Pack, template_name: str) -> TemplateForm:
        """Compile the form of `template_name` (the pack must have passed its checks)."""
        tpl = pack.templates[template_name]
        teams = tuple(pack.teams)
        specs = MappingProxyType(dict(tpl.fields))
        schemas = MappingProxyType(
            {name: value_schema(spec, teams=teams) for name, spec in specs.items()}
        )
        schema: Schema = {
            "type": "object",
            "properties": dict(schemas),
            "additionalProperties": False,
        }
        FormValidator.check_schema(schema)
        text = _FormText(tpl.title, tpl.description, tuple(pack.locales))
        render = lru_cache(maxsize=128)(partial(_render_form, specs, schemas, text))
        return cls(
            template=template_name,
            timezone=pack.timezone,
            specs=specs,
            schemas=schemas,
            schema=schema,
            validator=FormValidator(schema, format_checker=FORMAT_CHECKER),
            required_on_create=tuple(n for n, s in specs.items() if s.required),
            computed=frozenset(n for n, s in specs.items() if s.type == "computed"),
            _names=frozenset(specs),
            _accepts=MappingProxyType({name: compile_check(s) for name, s in schemas.items()}),
            _order=MappingProxyType({name: i for i, name in enumerate(specs)}),
            _converters=tuple(
                (name, spec.type, conv)
                for name, spec in specs.items()
                if (conv := _converter(spec)) is not None
            ),
            _normalizers=MappingProxyType({n: _normalizer(s) for n, s in specs.items()}),
            _defaults=tuple(_static_defaults(specs)),
            _explainer=_Explainer(template_name, specs),
            _render=render,
        )

    # -- validation ---------------------------------------------------------------------

    def validate(
        self,
        values: Mapping[str, Any],
        *,
        required: Iterable[str] = (),
        known_only: bool = True,
        read_only: Iterable[str] = (),
    ) -> list[FieldProblem]:
        """Every problem with `values`, sorted by field (in declaration order), then code.

        `required`: fields that must have a value (null, "" and [] count as missing).
        `known_only`: unknown field names are problems; when False they are ignored.
        `read_only`: fields that must not appear in `values` (e.g. computed ones, or those
        the actor may not write), reported as `read-only`.
        """
        if not isinstance(values, Mapping):
            return [FieldProblem("", "type", "must be an object of field values")]
        instance = self._instance(values, known_only)
        found: list[_Located] = []
        if not self._valid(instance):
            for error in self.validator.iter_errors(instance):
                found.extend(self._explainer.explain(error))
        missing = {n for n in required if is_empty(values.get(n))}
        found = [f for f in found if not f.path or f.path[0] not in missing]
        found += [_Located((n,), "required", "must have a value") for n in missing]
        found += [
            _Located((n,), "read-only", "cannot be changed") for n in read_only if n in values
        ]
        return self._sorted(found)

    def _valid(self, instance: dict[str, Any]) -> bool:
        # A compiled check per field answers for the valid case, the common one; it says
        # yes only where the template's validator would (see `compile_check`). Any other
        # answer goes to the validator, which decides and explains.
        accepts = self._accepts
        for name, value in instance.items():
            accept = accepts.get(name)
            if accept is None or not accept(value):
                return False
        return True

    def _instance(self, values: Mapping[str, Any], known_only: bool) -> dict[str, Any]:
        # Null is valid for every field: left out, it costs no check at all.
        names = self._names
        if known_only:
            return {k: v for k, v in values.items() if v is not None or k not in names}
        return {k: v for k, v in values.items() if v is not None and k in names}

    def _sorted(self, found: list[_Located]) -> list[FieldProblem]:
        seen: set[tuple[str, str]] = set()
        problems: list[FieldProblem] = []
        for item in sorted(found, key=partial(_sort_key, self._order)):
            name = path_text(item.path)
            if (name, item.code) not in seen:
                seen.add((name, item.code))
                problems.append(FieldProblem(name, item.code, item.message))
        return problems

    def normalize(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Light, unambiguous canonicalisation before validation, on a copy.

        Only two rewrites, at the top level and in table cells: "" becomes null (both mean
        "no value"), and an integral float in an integer or rating field becomes an int
        (3.0 → 3). Nothing is trimmed or guessed: a datetime without offset stays an error.
        Unknown fields are kept for `validate` to report.
        """
        return {
            k: self._normalizers[k](v) if k in self._normalizers else v for k, v in values.items()
        }

    # -- values for expressions ---------------------------------------------------------

    def to_env(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Stored JSON values → what the expression evaluator reads (a new dict).

        date → `date`, datetime → aware `datetime`, duration → `timedelta`, number and money
        → float, table cells likewise; everything else as stored. Raises ValueError naming
        the field when a stored value cannot be read (it was never validated).
        """
        env = dict(values)
        for name, kind, convert in self._converters:
            value = env.get(name)
            if value is not None:
                try:
                    env[name] = convert(value)
                except (ValueError, TypeError, AttributeError) as exc:
                    raise ValueError(
                        f"stored value of {kind} field '{name}' is not readable: {value!r:.80}"
                    ) from exc
        return env

    # -- defaults -----------------------------------------------------------------------

    def defaults(self, now: datetime | None = None, tz: str | tzinfo | None = None) -> JSON:
        """Default values of a new ticket, as stored JSON, in declaration order.

        `today` and `now` defaults are read off `now` (aware) in `tz` (a zone name or tzinfo;
        the pack's time zone when omitted); a form with such defaults needs `now`.
        """
        out: JSON = {}
        for name, value in self._defaults:
            if isinstance(value, _Clock):
                out[name] = value.read(now, tz or self.timezone)
            else:
                out[name] = copy.copy(value)
        return out

    # -- UI schema ----------------------------------------------------------------------

    def json_schema(
        self,
        *,
        state: str | None = None,
        writable: Iterable[str] | None = None,
        required: Iterable[str] = (),
        locale: str | None = None,
    ) -> Schema:
        """The form's JSON Schema for a UI: titles and descriptions in `locale`, defaults,
        readOnly for computed fields and those not in `writable` (None: all writable),
        required for `required: true` fields, those required in `state`, and `required`.

        Cached per argument set: the returned dict is shared, do not change it.
        """
        allowed = None if writable is None else frozenset(writable)
        if allowed is not None and "*" in allowed:
            allowed = None
        return self._render(state, allowed, frozenset(required), locale)


@dataclass(frozen=True, slots=True)
class _Clock:
    """A default read off the clock: `today` for a date, `now` for a datetime."""

    kind: str

    def read(self, now: datetime | None, tz: str | tzinfo) -> str:
        if now is None or now.tzinfo is None:
            raise ValueError("defaults with 'today' or 'now' need an aware `now` datetime")
        local = now.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)
        if self.kind == "date":
            return local.date().isoformat()
        return local.isoformat(timespec="seconds")


def _static_defaults(specs: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, spec in specs.items():
        default = getattr(spec, "default", None)
        if default is None:
            continue
        if _on_clock(spec):
            yield name, _Clock(spec.type)
        elif spec.type in ("number", "money"):
            yield name, float(default)
        else:
            yield name, default


def _english(text: LocalizedText | None) -> str | None:
    """English help text for problem messages (which are in English), if there is one."""
    if isinstance(text, dict):
        return text.get("en")
    return text


def _render_form(
    specs: Mapping[str, Any],
    schemas: Mapping[str, Schema],
    text: _FormText,
    state: str | None,
    writable: frozenset[str] | None,
    required: frozenset[str],
    locale: str | None,
) -> Schema:
    must = [
        name
        for name, spec in specs.items()
        if spec.required or (state is not None and state in spec.required_in) or name in required
    ]
    properties: Schema = {}
    for name, spec in specs.items():
        prop = copy.deepcopy(schemas[name])
        if name in must:
            prop = non_empty(prop)
        read_only = spec.type == "computed" or (writable is not None and name not in writable)
        properties[name] = _annotate(prop, name, spec, locale, text.locales, read_only)
    schema: Schema = {"$schema": DRAFT, "title": localized(text.title, locale, text.locales)}
    description = localized(text.description, locale, text.locales)
    if description:
        schema["description"] = description
    schema.update(type="object", properties=properties, required=must)
    schema["additionalProperties"] = False
    return schema


def _annotate(
    schema: Schema, name: str, spec: Any, locale: str | None, locales: Sequence[str], ro: bool
) -> Schema:
    """The value schema with title, description, default, options and readOnly for a UI."""
    head: Schema = {"title": localized(spec.label, locale, locales) or name}
    description = localized(spec.help, locale, locales)
    if description:
        head["description"] = description
    default = getattr(spec, "default", None)
    if default is not None and not _on_clock(spec):
        head["default"] = default
    if getattr(spec, "options", None):
        head["x-options"] = [_option(o, locale, locales) for o in spec.options]
    out = {**head, **schema}
    if ro:
        out["readOnly"] = True
    if spec.type == "table":
        row = out["items"]["properties"]
        for cname, col in table_columns(spec).items():
            row[cname] = _annotate(row[cname], cname, col, locale, locales, ro)
    return out


def _option(option: Any, locale: str | None, locales: Sequence[str]) -> Schema:
    if isinstance(option, str):
        return {"value": option, "label": option}
    out: Schema = {
        "value": option.value,
        "label": localized(option.label, locale, locales) or option.value,
    }
    if option.color:
        out["color"] = option.color
    return out
