"""Assets a tenant's QR codes name (machines, rooms, common areas, store equipment): the
file format (YAML `assets: [...]` or CSV), and the checks against the tenant's packs that
make every asset's QR form one that can be submitted."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError

from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.source_map import JsonPath, SourceMap, json_pointer
from dsl.yaml_loader import LoadLimits, load_yaml_file, load_yaml_text
from engine.blueprint import Blueprint, TemplateBp
from engine.errors import translate
from engine.fields import Strict
from engine.values import Name
from runtime import commands
from runtime.records import AssetRow, InvalidCommand, TicketflowError

AssetCode = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s/?#]+$")]
CSV_COLUMNS = ("code", "type", "name", "template")
CSV_FIELD_PREFIX = "fields."  # `fields.room_no`: a value to prefill
NUMERIC = {"integer": int, "number": float}


class AssetSpec(Strict):
    """One asset: what its QR code opens and what it prefills."""

    code: AssetCode = Field(description="The code printed in the QR code, e.g. `PR-01`.")
    type: Name = Field(description="Asset type, matched against asset fields' `asset_types`.")
    name: str | None = Field(None, max_length=200, description="Display name.")
    template: str = Field(
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*/)?[A-Za-z_][A-Za-z0-9_]*$",
        description="Template the QR form opens, as `template` or `pack/template`.",
    )
    fields: dict[Name, Any] = Field(
        default_factory=dict, description="Values prefilled into fields of the same name."
    )


class AssetsFile(Strict):
    """An asset file: `assets: [...]`."""

    assets: list[AssetSpec] = Field(description="The assets, each with a unique code.")


@dataclass(frozen=True, slots=True)
class Asset:
    """A stored asset."""

    code: str
    type: str
    template: str
    name: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: AssetRow) -> Asset:
        data = row.data
        return cls(
            row.code,
            str(data.get("type", "")),
            str(data.get("template", "")),
            data.get("name"),
            dict(data.get("fields") or {}),
            row.updated_at,
        )


class AssetError(InvalidCommand):
    """Assets refused; `diagnostics` says where and why. Nothing was stored."""

    code = "invalid-assets"

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        items = list(diagnostics)
        super().__init__(f"{len(items)} problem(s) in the assets: " + items[0].message)
        self.diagnostics = items


# -- reading --------------------------------------------------------------------------------------


def read_assets_file(path: str | Path) -> tuple[list[AssetSpec], SourceMap, str]:
    """Parse a YAML or CSV file; AssetError with located diagnostics when it is bad."""
    file = Path(path)
    if file.suffix.lower() == ".csv":
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise AssetError(
                [Diagnostic("file-unreadable", str(exc), Span(str(file), 1, 1))]
            ) from None
        return _read_csv(text, str(file)), SourceMap(), str(file)
    doc, problems = load_yaml_file(file, LoadLimits(max_bytes=20 * 1024 * 1024))
    if doc is None:
        raise AssetError(problems)
    return _validated(doc.data, doc.source), doc.source, str(file)


def read_assets_text(text: str, name: str = "<assets>") -> tuple[list[AssetSpec], SourceMap]:
    """As `read_assets_file`, for YAML text."""
    doc, problems = load_yaml_text(text, name)
    if doc is None:
        raise AssetError(problems)
    return _validated(doc.data, doc.source), doc.source


def _validated(data: Any, source: SourceMap) -> list[AssetSpec]:
    try:
        return AssetsFile.model_validate(data).assets
    except ValidationError as exc:
        raise AssetError(translate(exc, AssetsFile, data, source)) from None


def _read_csv(text: str, name: str) -> list[AssetSpec]:
    """One asset per row; `fields.<name>` columns hold values to prefill (as text: the
    check against the template turns numbers and booleans into their type)."""
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or ())
    unknown = [c for c in header if c not in CSV_COLUMNS and not c.startswith(CSV_FIELD_PREFIX)]
    missing = [c for c in ("code", "type", "template") if c not in header]
    if unknown or missing:
        message = f"unknown column '{unknown[0]}'" if unknown else f"no '{missing[0]}' column"
        hint = (did_you_mean(unknown[0], CSV_COLUMNS) if unknown else None) or (
            f"columns: {', '.join(CSV_COLUMNS)}, and {CSV_FIELD_PREFIX}<field> for prefills"
        )
        raise AssetError([Diagnostic("csv-header", message, Span(name, 1, 1), hint=hint)])
    out: list[AssetSpec] = []
    problems: list[Diagnostic] = []
    for line, record in enumerate(reader, start=2):
        data: dict[str, Any] = {
            k: (record.get(k) or "").strip() for k in ("code", "type", "template")
        }
        if record.get("name"):
            data["name"] = str(record["name"]).strip()
        data["fields"] = {
            k[len(CSV_FIELD_PREFIX) :]: v.strip()
            for k, v in record.items()
            if k and k.startswith(CSV_FIELD_PREFIX) and v and v.strip()
        }
        try:
            out.append(AssetSpec.model_validate(data))
        except ValidationError as exc:
            problems += [
                Diagnostic(
                    "invalid-value",
                    f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}",
                    Span(name, line, 1),
                )
                for err in exc.errors()
            ]
    if problems:
        raise AssetError(problems)
    return out


# -- checking against the packs -------------------------------------------------------------------


def check_assets(
    assets: Sequence[AssetSpec], blueprints: Iterable[Blueprint], source: SourceMap, file: str
) -> tuple[list[AssetSpec], list[Diagnostic]]:
    """The assets with CSV text turned into field types, and the problems: codes must be
    unique, templates must exist and take QR submissions, prefilled fields must exist and
    hold valid values, and the asset's type must fit an asset field of the template (when
    it has any)."""
    bps = list(blueprints)
    out: list[AssetSpec] = []
    problems: list[Diagnostic] = []
    seen: set[str] = set()

    def problem(code: str, message: str, path: JsonPath, hint: str | None = None) -> None:
        span = source.locate(path, prefer_key=code == "unknown-field") or Span(file, 1, 1)
        where = ".".join(str(p) for p in path)
        problems.append(
            Diagnostic(code, f"{where}: {message}", span, hint=hint, pointer=json_pointer(path))
        )

    for i, asset in enumerate(assets):
        base: JsonPath = ("assets", i)
        if asset.code in seen:
            problem("duplicate-code", f"asset '{asset.code}' is listed twice", (*base, "code"))
        seen.add(asset.code)
        try:
            _, tpl = commands.resolve_template(bps, asset.template)
        except TicketflowError as exc:
            problem("unknown-template", exc.message, (*base, "template"))
            out.append(asset)
            continue
        if tpl.model.channels and "qr" not in tpl.model.channels:
            problem(
                "channel-not-accepted",
                f"{tpl.name} tickets cannot come in over 'qr'",
                (*base, "template"),
                hint=f"its channels: {', '.join(tpl.model.channels)}",
            )
        fields = {k: _typed(tpl, k, v) for k, v in asset.fields.items()}
        for name in fields:
            if name not in tpl.field_names:
                hint = did_you_mean(name, sorted(tpl.field_names))
                problem(
                    "unknown-field",
                    f"'{tpl.name}' has no field '{name}'",
                    (*base, "fields", name),
                    hint,
                )
        known = {k: v for k, v in fields.items() if k in tpl.field_names}
        for p in tpl.form.validate(known):
            problem("invalid-value", p.message, (*base, "fields", p.field))
        slots = asset_slots(tpl)
        if slots and not fits(tpl, asset.type):
            types = sorted({t for f in slots for t in getattr(tpl.fields[f], "asset_types", [])})
            problem(
                "asset-type",
                f"type '{asset.type}' fits no asset field of {tpl.name}",
                (*base, "type"),
                hint=f"asset types it takes: {', '.join(types)}",
            )
        out.append(asset.model_copy(update={"fields": fields}))
    return out, problems


def asset_slots(tpl: TemplateBp) -> list[str]:
    """The template's asset fields."""
    return [name for name, spec in tpl.fields.items() if spec.type == "asset"]


def fits(tpl: TemplateBp, asset_type: str) -> bool:
    return bool(slots_for(tpl, asset_type))


def slots_for(tpl: TemplateBp, asset_type: str) -> list[str]:
    """Asset fields that take an asset of this type (no `asset_types`: any type)."""
    out = []
    for name in asset_slots(tpl):
        types = getattr(tpl.fields[name], "asset_types", None) or []
        if not types or asset_type in types:
            out.append(name)
    return out


def _typed(tpl: TemplateBp, name: str, value: Any) -> Any:
    """A CSV cell (text) as the field's type, when it reads as one."""
    spec = tpl.fields.get(name)
    if spec is None or not isinstance(value, str):
        return value
    if spec.type in NUMERIC:
        try:
            return NUMERIC[spec.type](value)
        except ValueError:
            return value
    if spec.type == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def asset_row(tenant: str, spec: AssetSpec, now: datetime) -> AssetRow:
    data = spec.model_dump(mode="json", exclude_none=True, exclude={"code"})
    return AssetRow(tenant, spec.code, data, now)
