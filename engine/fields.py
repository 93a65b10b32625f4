"""Custom field types of a ticket template: one class per type, chosen by `type`."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from engine.values import Duration, Expression, Locale, Name, Regex

LocalizedText = str | dict[Locale, str]


class Strict(BaseModel):
    """Base of every model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Option(Strict):
    """A choice option with a label per locale."""

    value: str = Field(description="Stored value of the option, e.g. `P1`.")
    label: LocalizedText | None = Field(None, description="Label shown to people, per locale.")
    color: str | None = Field(None, description="Display colour, e.g. `#d32f2f` or `red`.")


OptionList = list[str | Option]


class Common(Strict):
    """Keys every field and table column accepts."""

    label: LocalizedText | None = Field(None, description="Label shown to people, per locale.")
    help: LocalizedText | None = Field(None, description="Help text shown under the input.")
    required: bool = Field(False, description="A value must be given when the ticket is created.")
    pii: bool = Field(
        False, description="Personal data: masked in exports and logs, erased on request."
    )


class TicketField(Common):
    """Keys a template field accepts on top of the common ones."""

    required_in: list[Name] = Field(
        default_factory=list,
        description="States in which the field must have a value (checked on entering them).",
    )
    visible_if: Expression | None = Field(
        None, description="Condition; the field is shown only while it is true."
    )
    required_if: Expression | None = Field(
        None, description="Condition; the field is required while it is true."
    )
    readonly_if: Expression | None = Field(
        None, description="Condition; the field cannot be changed while it is true."
    )
    placeholder: LocalizedText | None = Field(None, description="Placeholder text in the input.")


# -- type-specific options, shared by template fields and table columns -------------------


class TextOptions(BaseModel):
    type: Literal["text"] = Field(description="Single-line text.")
    default: str | None = Field(None, description="Value used when none is given.")
    pattern: Regex | None = Field(None, description="Regular expression the value must match.")
    min_length: int | None = Field(None, ge=0, description="Fewest characters allowed.")
    max_length: int | None = Field(None, ge=1, description="Most characters allowed.")


class LongTextOptions(BaseModel):
    type: Literal["long_text"] = Field(description="Multi-line text.")
    default: str | None = Field(None, description="Value used when none is given.")
    min_length: int | None = Field(None, ge=0, description="Fewest characters allowed.")
    max_length: int | None = Field(None, ge=1, description="Most characters allowed.")


class IntegerOptions(BaseModel):
    type: Literal["integer"] = Field(description="Whole number.")
    default: int | None = Field(None, description="Value used when none is given.")
    min: int | None = Field(None, description="Smallest value allowed.")
    max: int | None = Field(None, description="Largest value allowed.")
    unit: str | None = Field(None, description="Unit shown next to the value, e.g. `pcs`.")


class NumberOptions(BaseModel):
    type: Literal["number"] = Field(description="Decimal number.")
    default: float | None = Field(None, description="Value used when none is given.")
    min: float | None = Field(None, description="Smallest value allowed.")
    max: float | None = Field(None, description="Largest value allowed.")
    decimals: int | None = Field(None, ge=0, le=12, description="Digits after the point.")
    unit: str | None = Field(None, description="Unit shown next to the value, e.g. `kg`.")


class MoneyOptions(BaseModel):
    type: Literal["money"] = Field(description="Amount of money in one currency.")
    currency: str = Field(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. `CNY`, `USD`."
    )
    default: float | None = Field(None, description="Value used when none is given.")
    min: float | None = Field(None, description="Smallest amount allowed.")
    max: float | None = Field(None, description="Largest amount allowed.")


class BooleanOptions(BaseModel):
    type: Literal["boolean"] = Field(description="Yes or no.")
    default: bool | None = Field(None, description="Value used when none is given.")


class ChoiceOptions(BaseModel):
    type: Literal["choice"] = Field(description="One value out of a list of options.")
    options: OptionList = Field(
        min_length=1, description="The allowed values: plain strings or {value, label}."
    )
    default: str | None = Field(None, description="Option used when none is given.")


class MultiChoiceOptions(BaseModel):
    type: Literal["multi_choice"] = Field(description="Any number of values from a list.")
    options: OptionList = Field(
        min_length=1, description="The allowed values: plain strings or {value, label}."
    )
    default: list[str] | None = Field(None, description="Options selected when none are given.")
    min_items: int | None = Field(None, ge=0, description="Fewest options to select.")
    max_items: int | None = Field(None, ge=1, description="Most options to select.")


class DateOptions(BaseModel):
    type: Literal["date"] = Field(description="Calendar date (YYYY-MM-DD).")
    default: Literal["today"] | None = Field(None, description="`today` to prefill the date.")


class DateTimeOptions(BaseModel):
    type: Literal["datetime"] = Field(description="Instant with date and time.")
    default: Literal["now"] | None = Field(None, description="`now` to prefill the instant.")


class DurationOptions(BaseModel):
    type: Literal["duration"] = Field(description="Length of time, e.g. `2h30m`.")
    default: Duration | None = Field(None, description="Value used when none is given.")
    min: Duration | None = Field(None, description="Shortest duration allowed.")
    max: Duration | None = Field(None, description="Longest duration allowed.")


class EmailOptions(BaseModel):
    type: Literal["email"] = Field(description="E-mail address.")
    default: str | None = Field(None, description="Value used when none is given.")


class PhoneOptions(BaseModel):
    type: Literal["phone"] = Field(description="Telephone number.")
    default: str | None = Field(None, description="Value used when none is given.")
    region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Default country for numbers without +code."
    )


class UrlOptions(BaseModel):
    type: Literal["url"] = Field(description="Web address (http or https).")
    default: str | None = Field(None, description="Value used when none is given.")


class UserOptions(BaseModel):
    type: Literal["user"] = Field(description="A person from the directory.")
    roles: list[Name] = Field(
        default_factory=list, description="Only people with one of these roles may be picked."
    )
    team: Name | None = Field(None, description="Only members of this team may be picked.")


class TeamOptions(BaseModel):
    type: Literal["team"] = Field(description="A team (department) from the directory.")
    default: Name | None = Field(None, description="Team used when none is given.")


class AssetOptions(BaseModel):
    type: Literal["asset"] = Field(
        description="An asset (device, machine, room) picked or scanned from its QR code."
    )
    asset_types: list[str] = Field(
        default_factory=list, description="Only assets of these types may be picked."
    )
    scan: bool = Field(True, description="Offer scanning the asset's QR code or barcode.")


class LocationOptions(BaseModel):
    type: Literal["location"] = Field(description="A place: latitude and longitude, address.")
    capture: Literal["manual", "device", "check_in"] = Field(
        "manual",
        description="`device` fills it from the phone's position; `check_in` records arrival.",
    )


class SignatureOptions(BaseModel):
    type: Literal["signature"] = Field(description="A handwritten signature captured on screen.")


class RatingOptions(BaseModel):
    type: Literal["rating"] = Field(description="A score from 1 to `scale`, e.g. stars.")
    scale: int = Field(5, ge=2, le=10, description="Highest score.")


_SCALAR_OPTIONS: tuple[type[BaseModel], ...] = (
    TextOptions,
    LongTextOptions,
    IntegerOptions,
    NumberOptions,
    MoneyOptions,
    BooleanOptions,
    ChoiceOptions,
    MultiChoiceOptions,
    DateOptions,
    DateTimeOptions,
    DurationOptions,
    EmailOptions,
    PhoneOptions,
    UrlOptions,
    UserOptions,
    TeamOptions,
    AssetOptions,
    LocationOptions,
    SignatureOptions,
    RatingOptions,
)


def _column_class(options: type[BaseModel]) -> type[BaseModel]:
    name = options.__name__.removesuffix("Options") + "Column"
    model = create_model(name, __base__=(Common, options))
    model.__doc__ = f"Table column of type `{options.model_fields['type'].annotation}`."
    return model


_COLUMN_CLASSES = tuple(_column_class(o) for o in _SCALAR_OPTIONS if o is not SignatureOptions)
if TYPE_CHECKING:
    ColumnSpec = BaseModel
else:
    ColumnSpec = Annotated[Union[_COLUMN_CLASSES], Field(discriminator="type")]  # noqa: UP007
ColumnTypeName = Literal[
    "text",
    "long_text",
    "integer",
    "number",
    "money",
    "boolean",
    "date",
    "datetime",
    "duration",
    "email",
    "phone",
    "url",
    "user",
    "team",
    "asset",
    "location",
    "rating",
]


class TextField(TicketField, TextOptions):
    """Single-line text."""


class LongTextField(TicketField, LongTextOptions):
    """Multi-line text."""


class IntegerField(TicketField, IntegerOptions):
    """Whole number."""


class NumberField(TicketField, NumberOptions):
    """Decimal number."""


class MoneyField(TicketField, MoneyOptions):
    """Amount of money."""


class BooleanField(TicketField, BooleanOptions):
    """Yes or no."""


class ChoiceField(TicketField, ChoiceOptions):
    """One option out of a list."""


class MultiChoiceField(TicketField, MultiChoiceOptions):
    """Several options out of a list."""


class DateField(TicketField, DateOptions):
    """Calendar date."""


class DateTimeField(TicketField, DateTimeOptions):
    """Date and time."""


class DurationField(TicketField, DurationOptions):
    """Length of time."""


class EmailField(TicketField, EmailOptions):
    """E-mail address."""


class PhoneField(TicketField, PhoneOptions):
    """Telephone number."""


class UrlField(TicketField, UrlOptions):
    """Web address."""


class UserField(TicketField, UserOptions):
    """A person."""


class TeamField(TicketField, TeamOptions):
    """A team."""


class AssetField(TicketField, AssetOptions):
    """An asset, often scanned from a QR code."""


class LocationField(TicketField, LocationOptions):
    """A place with latitude and longitude."""


class SignatureField(TicketField, SignatureOptions):
    """A signature."""


class RatingField(TicketField, RatingOptions):
    """A score."""


class AttachmentsField(TicketField):
    """Photos and files."""

    type: Literal["attachments"] = Field(description="Photos, videos and documents.")
    max_items: int = Field(10, ge=1, le=100, description="Most files allowed.")
    accept: list[str] = Field(
        default_factory=list,
        description="Allowed media types or extensions, e.g. `image/*`, `.pdf`.",
    )
    max_size: str | None = Field(
        None, pattern=r"^\d+\s*(KB|MB|GB)$", description="Largest file, e.g. `20MB`."
    )


class TableField(TicketField):
    """Rows with typed columns, such as the spare parts used on a job."""

    type: Literal["table"] = Field(description="Rows with typed columns.")
    columns: dict[Name, ColumnTypeName | ColumnSpec] = Field(
        min_length=1,
        description="Columns by name: a type name (`text`) or a column spec with options.",
    )
    min_rows: int | None = Field(None, ge=0, description="Fewest rows allowed.")
    max_rows: int | None = Field(None, ge=1, description="Most rows allowed.")


class ComputedField(TicketField):
    """A value computed from other fields; never typed in by a person."""

    type: Literal["computed"] = Field(description="A value computed from other fields.")
    expr: Expression = Field(description="Expression giving the value, e.g. `qty * unit_price`.")
    result: Literal["text", "integer", "number", "money", "boolean", "duration", "date"] = Field(
        "number", description="Type of the computed value."
    )


FieldSpec = Annotated[
    TextField
    | LongTextField
    | IntegerField
    | NumberField
    | MoneyField
    | BooleanField
    | ChoiceField
    | MultiChoiceField
    | DateField
    | DateTimeField
    | DurationField
    | EmailField
    | PhoneField
    | UrlField
    | UserField
    | TeamField
    | AssetField
    | LocationField
    | AttachmentsField
    | SignatureField
    | RatingField
    | TableField
    | ComputedField,
    Field(discriminator="type"),
]

# Every field type, in declaration order, read off the union so the list cannot drift.
FIELD_TYPES: tuple[str, ...] = tuple(
    typing.get_args(member.model_fields["type"].annotation)[0]
    for member in typing.get_args(typing.get_args(FieldSpec)[0])
)


def option_values(options: OptionList) -> list[str]:
    """The stored values of a choice's options."""
    return [o if isinstance(o, str) else o.value for o in options]


def field_options(spec: Any) -> list[str] | None:
    """Option values when the field is a choice or multi_choice, else None."""
    options = getattr(spec, "options", None)
    return option_values(options) if options is not None else None
