"""The builder's palette: every field type, node kind, trigger, condition function, action,
routing strategy and channel the engine knows, each with the JSON Schema of its properties.

Everything is read off the engine's own types (the `FieldSpec`, `Trigger` and `Action` unions,
the keyed collections of the `Pack` model, the `Literal`s of strategies and channels, the
expression checker's `FUNCTIONS`), so a new field type or action shows up here untouched.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Literal, TypedDict, Union

from pydantic import BaseModel, TypeAdapter

from engine.expr_check import FUNCTIONS, Signature
from engine.expr_types import (
    ANY,
    BOOLEAN,
    DATE,
    DATETIME,
    DURATION,
    LOCATION,
    NUMBER,
    TEXT,
    list_of,
)
from engine.expr_types import Type as ExprType
from engine.fields import ColumnTypeName, FieldSpec
from engine.model import Action, Channel, IntakeChannel, Pack, RoutingStrategy, Trigger
from engine.schema import clean
from runtime.routing import TERMINAL

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The engine writes its descriptions in English only; this is the locale of every text here.
TEXT_LOCALE = "en"

Schema = dict[str, Any]


class PaletteEntry(TypedDict):
    """One thing a builder can place, with the schema of its property panel."""

    name: str
    title: str
    description: str
    schema: Schema


class FieldTypeEntry(PaletteEntry):
    """A field type; `column` says whether a table column may have it too."""

    column: bool


class NodeKindEntry(PaletteEntry):
    """A named thing of a pack; `placement` is the JSON pointer pattern where it lives,
    e.g. `/workflows/{workflow}/states/{state}`, and `parent` the kind it sits in."""

    section: str
    placement: str
    parent: str | None


class FunctionParameter(TypedDict):
    """A condition function's parameter: the expression types it accepts (`any`: all)."""

    position: int
    types: list[str]
    optional: bool


class FunctionEntry(TypedDict):
    """A function conditions may call."""

    name: str
    signature: str
    description: str
    parameters: list[FunctionParameter]
    result: list[str]


class ChoiceEntry(TypedDict):
    """One value of a closed list (a channel)."""

    name: str
    title: str


class StrategyEntry(ChoiceEntry):
    """A routing strategy; a `terminal` one picks the answer and must end a chain."""

    terminal: bool


class Palette(TypedDict):
    """Everything a builder UI may place; texts are in `locale`."""

    locale: str
    requested_locale: str | None
    field_types: list[FieldTypeEntry]
    node_kinds: list[NodeKindEntry]
    triggers: list[PaletteEntry]
    conditions: list[FunctionEntry]
    actions: list[PaletteEntry]
    routing_strategies: list[StrategyEntry]
    intake_channels: list[ChoiceEntry]
    notification_channels: list[ChoiceEntry]


def palette(locale: str | None = None) -> Palette:
    """The palette, with texts in `locale` where the engine has them (English otherwise)."""
    built = copy.deepcopy(_palette())  # callers may mutate what they get
    built["requested_locale"] = locale
    return built


@lru_cache(maxsize=1)
def _palette() -> Palette:
    return Palette(
        locale=TEXT_LOCALE,
        requested_locale=None,
        field_types=field_type_entries(),
        node_kinds=node_kind_entries(),
        triggers=trigger_entries(),
        conditions=function_entries(),
        actions=action_entries(),
        routing_strategies=[
            StrategyEntry(name=s, title=humanize(s), terminal=s in TERMINAL)
            for s in literal_values(RoutingStrategy)
        ],
        intake_channels=_choices(IntakeChannel),
        notification_channels=_choices(Channel),
    )


# -- reading the engine's types --------------------------------------------------------------


def literal_values(annotation: Any) -> list[str]:
    """The values of a `Literal[...]` (through `Annotated`)."""
    annotation = _unannotate(annotation)
    if typing.get_origin(annotation) is not Literal:
        raise TypeError(f"not a Literal: {annotation!r}")
    return [str(v) for v in typing.get_args(annotation)]


def union_members(annotation: Any) -> list[Any]:
    """The members of a (possibly `Annotated`) union, each without its `Annotated`."""
    union = _unannotate(annotation)
    if typing.get_origin(union) not in (Union, types.UnionType):
        return [union]
    return [_unannotate(m) for m in typing.get_args(union)]


def tagged_members(annotation: Any) -> list[tuple[str, Any]]:
    """(tag, member) of a union discriminated by `Tag`s, such as `Action` and `Trigger`."""
    out: list[tuple[str, Any]] = []
    for member in typing.get_args(_unannotate(annotation)):
        tag = next((m.tag for m in getattr(member, "__metadata__", ()) if hasattr(m, "tag")), None)
        if tag is None:
            raise TypeError(f"union member without a Tag: {member!r}")
        out.append((str(tag), _unannotate(member)))
    return out


def _unannotate(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Model classes a value of this annotation may be (through unions and lists)."""
    annotation = _unannotate(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    if typing.get_origin(annotation) in (Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _keyed_model(annotation: Any) -> tuple[type[BaseModel], Any] | None:
    """The model of a `dict[Name, Model]` (possibly among other shapes in a union) and the
    dict's value annotation (`Permission | list[Permission]`); None when the values are not
    one kind of model (a choice of kinds, such as fields, is a group of its own)."""
    for shape in union_members(annotation):
        if typing.get_origin(shape) is dict:
            value = typing.get_args(shape)[1]
            models = _models_in(value)
            if len(models) == 1:
                return models[0], value
    return None


# -- texts -----------------------------------------------------------------------------------

_ACRONYMS = {"sla": "SLA", "qr": "QR", "url": "URL", "api": "API", "sms": "SMS", "id": "ID"}


def humanize(name: str) -> str:
    """`long_text` → `Long text`, `sla_policy` → `SLA policy`, `sla.warning` → `SLA warning`."""
    words = [_ACRONYMS.get(w, w) for w in re.split(r"[_.\s]+", name) if w]
    if not words:
        return name
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def snake_case(name: str) -> str:
    """`SlaPolicy` → `sla_policy`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def doc_of(model: type[BaseModel]) -> str:
    """A model's docstring as one paragraph."""
    return " ".join((model.__doc__ or "").split())


def _choices(annotation: Any) -> list[ChoiceEntry]:
    return [ChoiceEntry(name=v, title=humanize(v)) for v in literal_values(annotation)]


# -- schemas ---------------------------------------------------------------------------------


def model_schema(annotation: Any) -> Schema:
    """A self-contained JSON Schema (2020-12) of a model or type, cleaned for a property panel.

    Like `engine.schema`: pydantic's generated titles and discriminators go, an optional
    value is its non-null type (a panel leaves it empty rather than writing `null`), and a
    mapping of locale texts refuses other keys. Each schema carries the `$defs` it uses.
    """
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        raw = annotation.model_json_schema(by_alias=True)
    else:
        raw = TypeAdapter(annotation).json_schema(by_alias=True)
    defs = raw.pop("$defs", {})
    schema: Schema = {"$schema": JSON_SCHEMA_DIALECT, **clean(raw, draft07=False)}
    if defs:
        schema["$defs"] = {name: clean(d, draft07=False) for name, d in sorted(defs.items())}
    return schema


# -- the groups ------------------------------------------------------------------------------


def field_type_entries() -> list[FieldTypeEntry]:
    """One entry per member of the `FieldSpec` union, in declaration order."""
    columns = set(literal_values(ColumnTypeName))
    entries: list[FieldTypeEntry] = []
    for member in union_members(FieldSpec):
        type_field = member.model_fields["type"]
        name = literal_values(type_field.annotation)[0]
        entries.append(
            FieldTypeEntry(
                name=name,
                title=humanize(name),
                description=type_field.description or doc_of(member),
                schema=model_schema(member),
                column=name in columns,
            )
        )
    return entries


def node_kind_entries() -> list[NodeKindEntry]:
    """Every named thing of a pack: the models under `dict[Name, Model]` collections, from
    the pack's sections down (workflow → states, transitions), depth first."""
    return list(_nodes(Pack, "", None, set()))


def _nodes(
    model: type[BaseModel], base: str, parent: str | None, seen: set[type[BaseModel]]
) -> Iterator[NodeKindEntry]:
    for field_name, info in model.model_fields.items():
        keyed = _keyed_model(info.annotation)
        if keyed is None or keyed[0] in seen:
            continue
        child, value = keyed
        seen.add(child)
        kind = snake_case(child.__name__)
        section = info.alias or field_name
        placement = f"{base}/{section}/{{{kind}}}"
        yield NodeKindEntry(
            name=kind,
            title=humanize(kind),
            description=doc_of(child),
            schema=model_schema(value),  # what the placement holds
            section=section,
            placement=placement,
            parent=parent,
        )
        yield from _nodes(child, placement, kind, seen)


def trigger_entries() -> list[PaletteEntry]:
    """One entry per member of the `Trigger` union; the bare event names are one entry."""
    entries: list[PaletteEntry] = []
    for tag, member in tagged_members(Trigger):
        title = humanize(tag)
        if isinstance(member, type) and issubclass(member, BaseModel):
            description = doc_of(member)
        else:  # the bare event names: `on: created`
            title = "Ticket event"
            description = "Fires on a ticket event: " + ", ".join(literal_values(member)) + "."
        entries.append(
            PaletteEntry(
                name=tag, title=title, description=description, schema=model_schema(member)
            )
        )
    return entries


def action_entries() -> list[PaletteEntry]:
    """One entry per member of the `Action` union; described by its spec model if it has one."""
    entries: list[PaletteEntry] = []
    for tag, member in tagged_members(Action):
        specs = _models_in(member.model_fields[tag].annotation)
        described = specs[-1] if specs else member
        entries.append(
            PaletteEntry(
                name=tag,
                title=humanize(tag),
                description=doc_of(described) or doc_of(member),
                schema=model_schema(member),
            )
        )
    return entries


# -- condition functions ---------------------------------------------------------------------

# What a parameter is probed with: every kind of value an expression can have.
_PROBES: tuple[ExprType, ...] = (
    TEXT,
    NUMBER,
    BOOLEAN,
    DATE,
    DATETIME,
    DURATION,
    LOCATION,
    list_of(ANY),
)


def function_entries() -> list[FunctionEntry]:
    """Every function of the expression checker, its parameter and result types read off
    the checker itself (each parameter probed with every kind, the others left open)."""
    return [_function(name, sig) for name, sig in FUNCTIONS.items()]


def _function(name: str, sig: Signature) -> FunctionEntry:
    low, high = sig.arity
    params: list[FunctionParameter] = []
    results: list[str] = []
    for position in range(high):
        accepted: list[str] = []
        for probe in _PROBES:
            args = [ANY] * high
            args[position] = probe
            outcome = sig.check(args)
            if isinstance(outcome, ExprType):
                accepted.append(probe.kind)
                if str(outcome) not in results:
                    results.append(str(outcome))
        every = len(accepted) == len(_PROBES)
        params.append(
            FunctionParameter(
                position=position, types=["any"] if every else accepted, optional=position >= low
            )
        )
    if not high:
        outcome = sig.check([])
        results.append(str(outcome) if isinstance(outcome, ExprType) else "any")
    return FunctionEntry(
        name=name,
        signature=sig.summary,
        description=sig.summary,
        parameters=params,
        result=results or ["any"],
    )
