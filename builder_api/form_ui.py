"""The UI schema of a form for react-jsonschema-form (rjsf): widget, labels and options of
each field, in one locale.

Widgets by field type. Standard rjsf widgets where one fits; the rest are custom names a
UI registers (`widgets={...}` / `fields={...}` in rjsf):

| type | uiSchema | ui:options |
| --- | --- | --- |
| text | `ui:widget: text` | |
| long_text | `ui:widget: textarea` | `rows` |
| integer, number, money | `ui:widget: updown` | `unit`, `decimals`, `currency` |
| boolean | `ui:widget: checkbox` | |
| choice | `ui:widget: radio` (up to 5 options), else `select`; `ui:enumNames` | |
| multi_choice | `ui:widget: checkboxes`; `ui:enumNames` | |
| date, datetime | `ui:widget: date` / `datetime` | |
| duration | `ui:widget: text` (placeholder `1h30m` unless the field has one) | |
| email, url | `ui:widget: email` / `uri` | |
| phone | `ui:widget: text` | `inputType: tel`, `region` |
| team | `ui:widget: select` when the pack lists teams, else `text` | |
| user | `ui:widget: user` (custom: a people picker) | `roles`, `team` |
| asset | `ui:widget: asset` (custom: pick, or scan a QR code) | `scan`, `asset_types` |
| rating | `ui:widget: rating` (custom: stars 1..scale) | `scale` |
| attachments | `ui:widget: attachments` (custom: upload) | `accept`, `max_items`, `max_size` |
| location | `ui:field: location` (custom: map or device position) | `capture` |
| signature | `ui:field: signature` (custom: drawn on screen) | |
| table | `items`: `ui:order` and each column's uiSchema | `addable`, `removable`, ... |
| computed | the widget of its `result` type, `ui:readonly: true` | |

Custom values: attachments `[{id, name, content_type?, size?, url?}]`, location `{lat,
lon, address?}`, signature `{image, signed_by?, signed_at?}`. Table `ui:options` are
`addable`, `removable` (false when read-only), `orderable: false`, `min_rows`, `max_rows`.

Location and signature values are objects, which rjsf renders through a *field* (not a
widget), hence `ui:field`. Every field also gets `ui:title` (its label, else its name) and,
when written, `ui:help` and `ui:placeholder`; fields the reader may not change get
`ui:readonly: true`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.form_schema import localized, table_columns

UiSchema = dict[str, Any]

RADIO_MAX = 5  # choices with more options get a drop-down
TEXTAREA_ROWS = 5
NULL_LABEL = "—"  # how the "no value" option of an optional choice is labelled

_WIDGETS: Mapping[str, str] = {
    "text": "text",
    "long_text": "textarea",
    "integer": "updown",
    "number": "updown",
    "money": "updown",
    "boolean": "checkbox",
    "multi_choice": "checkboxes",
    "date": "date",
    "datetime": "datetime",
    "duration": "text",
    "email": "email",
    "phone": "text",
    "url": "uri",
    "user": "user",
    "asset": "asset",
    "rating": "rating",
    "attachments": "attachments",
}
# Object-valued types: rjsf renders objects through a custom field, not a widget.
_FIELDS: Mapping[str, str] = {"location": "location", "signature": "signature"}
# What a computed field's value looks like, by its `result`.
_COMPUTED: Mapping[str, str] = {
    "text": "text",
    "integer": "updown",
    "number": "updown",
    "money": "updown",
    "boolean": "checkbox",
    "duration": "text",
    "date": "date",
}


def field_ui(
    spec: Any,
    schema: Mapping[str, Any],
    locale: str | None,
    locales: Sequence[str],
    *,
    name: str,
    read_only: bool,
) -> UiSchema:
    """The uiSchema of one field (or table column) whose JSON Schema is `schema`."""
    ui: UiSchema = {}
    kind = spec.type
    if kind in _FIELDS:
        ui["ui:field"] = _FIELDS[kind]
    elif kind == "computed":
        ui["ui:widget"] = _COMPUTED.get(spec.result, "text")
    elif kind == "choice":
        ui["ui:widget"] = "radio" if len(spec.options) <= RADIO_MAX else "select"
    elif kind == "team":
        ui["ui:widget"] = "select" if "enum" in schema else "text"
    elif kind in _WIDGETS:
        ui["ui:widget"] = _WIDGETS[kind]
    ui["ui:title"] = localized(spec.label, locale, locales) or name
    for key, attr in (("ui:help", "help"), ("ui:placeholder", "placeholder")):
        text = localized(getattr(spec, attr, None), locale, locales)
        if text:
            ui[key] = text
    if kind == "duration" and "ui:placeholder" not in ui:
        ui["ui:placeholder"] = "1h30m"
    if kind in ("choice", "multi_choice"):
        ui["ui:enumNames"] = _enum_names(spec, schema, locale, locales)
    if read_only or kind == "computed":
        ui["ui:readonly"] = True
    options = _options(spec)
    if kind == "table":
        ui.update(_table(spec, schema, locale, locales, read_only))
        options.update(ui.pop("ui:options"))
    if options:
        ui["ui:options"] = options
    return ui


def _options(spec: Any) -> dict[str, Any]:
    kind = spec.type
    found: dict[str, Any] = {}
    if kind == "long_text":
        found["rows"] = TEXTAREA_ROWS
    elif kind == "phone":
        found["inputType"] = "tel"
    for key in _OPTION_KEYS.get(kind, ()):
        value = getattr(spec, key, None)
        if value not in (None, [], ""):
            found[key] = value
    return found


_OPTION_KEYS: Mapping[str, tuple[str, ...]] = {
    "integer": ("unit",),
    "number": ("unit", "decimals"),
    "money": ("currency",),
    "phone": ("region",),
    "user": ("roles", "team"),
    "asset": ("scan", "asset_types"),
    "rating": ("scale",),
    "attachments": ("accept", "max_items", "max_size"),
    "location": ("capture",),
    "table": ("min_rows", "max_rows"),
}


def _enum_names(
    spec: Any, schema: Mapping[str, Any], locale: str | None, locales: Sequence[str]
) -> list[str]:
    """Option labels in the order of the schema's `enum` (null, if allowed, last)."""
    labels: dict[str, str] = {}
    for option in spec.options:
        if isinstance(option, str):
            labels[option] = option
        else:
            labels[option.value] = localized(option.label, locale, locales) or option.value
    enum = schema.get("enum") or schema.get("items", {}).get("enum") or list(labels)
    return [NULL_LABEL if v is None else labels.get(v, str(v)) for v in enum]


def _table(
    spec: Any, schema: Mapping[str, Any], locale: str | None, locales: Sequence[str], ro: bool
) -> UiSchema:
    row = schema.get("items", {}).get("properties", {})
    columns = table_columns(spec)
    items: UiSchema = {"ui:order": list(columns)}
    for cname, column in columns.items():
        items[cname] = field_ui(
            column, row.get(cname, {}), locale, locales, name=cname, read_only=ro
        )
    return {
        "items": items,
        "ui:options": {"addable": not ro, "removable": not ro, "orderable": False},
    }
