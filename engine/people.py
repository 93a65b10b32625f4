"""The people directory format: agents, engineers, managers and customers a tenant loads
(YAML or CSV) so routing, claims and notifications know who exists, what they can do,
where they are and how to reach them.

Definitions name teams, skills, roles and calendars; a person may only reference names
the tenant's published packs declare (`check_people`), so a typo in a staff sheet is a
located error and not a person nobody can ever route to.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from dsl.diagnostics import Diagnostic, Span, did_you_mean, known_list
from dsl.source_map import JsonPath, SourceMap, json_pointer
from dsl.yaml_loader import LoadLimits, load_yaml_file, load_yaml_text
from engine.errors import translate
from engine.fields import Strict
from engine.model import Pack

PersonId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s:@,;]+$")]
Level = Annotated[int, Field(ge=1, le=5)]
ChatChannel = Literal["wecom", "dingtalk", "slack", "sms", "push", "webhook"]
NotifyChannel = Literal["email", "sms", "wecom", "dingtalk", "slack", "webhook", "push", "in_app"]


class Place(Strict):
    """Where a person was last seen (from their phone), or a fixed base."""

    lat: float = Field(ge=-90, le=90, description="Latitude in degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude in degrees.")
    at: datetime | None = Field(None, description="When the location was reported.")


def _in_app() -> list[NotifyChannel]:
    return ["in_app"]


class PersonSpec(Strict):
    """One person of a tenant's directory."""

    id: PersonId = Field(description="User id, as the apps and the API know the person.")
    name: str | None = Field(None, max_length=200, description="Display name.")
    roles: list[str] = Field(default_factory=list, description="Roles the person acts in.")
    teams: list[str] = Field(default_factory=list, description="Teams (departments).")
    skills: list[str] | dict[str, Level] = Field(
        default_factory=dict, description="Skills: names (level 1), or names with levels 1-5."
    )
    locale: str | None = Field(None, description="Language of messages, e.g. `zh`.")
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$", description="Email address.")
    phone: str | None = Field(None, pattern=r"^\+?[0-9 ()\-]{3,32}$", description="Phone number.")
    chat: dict[ChatChannel, str] = Field(
        default_factory=dict, description="Chat ids by channel: wecom, dingtalk, slack, ..."
    )
    notify_via: list[NotifyChannel] = Field(
        default_factory=_in_app, description="Channels for mentions and personal notices."
    )
    location: Place | None = Field(None, description="Last known location.")
    schedule: str | None = Field(None, description="Calendar (from a pack) of the person's shifts.")
    active: bool = Field(True, description="Inactive people are never routed to or notified.")
    max_open: int | None = Field(None, ge=1, description="Cap on the person's open tickets.")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Custom attributes (`actor_attributes` of the packs)."
    )

    def skill_levels(self) -> dict[str, int]:
        """Skills with levels; a skill listed without one is level 1."""
        return dict.fromkeys(self.skills, 1) if isinstance(self.skills, list) else dict(self.skills)


class PeopleFile(Strict):
    """A directory file: `people: [...]`."""

    people: list[PersonSpec] = Field(description="The people, each with a unique id.")


class DirectoryError(Exception):
    """A directory file or batch was refused; `diagnostics` says where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__(f"{len(diagnostics)} problem(s) in the directory data")
        self.diagnostics = list(diagnostics)


# -- reading --------------------------------------------------------------------------------


def read_people_file(
    path: str, limits: LoadLimits | None = None
) -> tuple[list[PersonSpec], SourceMap]:
    """Parse a YAML or CSV file; DirectoryError with located diagnostics when it is bad."""
    from pathlib import Path

    file = Path(path)
    if file.suffix.lower() == ".csv":
        return _read_csv(file), SourceMap()
    doc, problems = load_yaml_file(file, limits)
    if doc is None:
        raise DirectoryError(problems)
    return _validated(doc.data, doc.source), doc.source


def read_people_text(text: str, name: str = "<people>") -> tuple[list[PersonSpec], SourceMap]:
    """As `read_people_file`, for YAML text."""
    doc, problems = load_yaml_text(text, name)
    if doc is None:
        raise DirectoryError(problems)
    return _validated(doc.data, doc.source), doc.source


def _validated(data: Any, source: SourceMap) -> list[PersonSpec]:
    try:
        return PeopleFile.model_validate(data).people
    except ValidationError as exc:
        raise DirectoryError(translate(exc, PeopleFile, data, source)) from None


CSV_COLUMNS = (
    "id", "name", "roles", "teams", "skills", "locale", "email", "phone",
    "lat", "lon", "schedule", "active", "max_open", "notify_via",
)  # fmt: skip


def _read_csv(path: Any) -> list[PersonSpec]:
    """One person per row. Lists are `;`-separated; skills are `hvac:4;pos` (level 1)."""
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    unknown = [c for c in reader.fieldnames or () if c not in CSV_COLUMNS]
    name = str(path)
    if unknown or "id" not in (reader.fieldnames or ()):
        raise DirectoryError([_csv_header_problem(name, unknown)])
    people: list[PersonSpec] = []
    problems: list[Diagnostic] = []
    for line, record in enumerate(reader, start=2):
        try:
            people.append(PersonSpec.model_validate(_csv_person(record)))
        except (ValidationError, ValueError) as exc:
            problems.extend(_csv_problems(name, line, exc))
    if problems:
        raise DirectoryError(problems)
    return people


def _csv_header_problem(name: str, unknown: list[str]) -> Diagnostic:
    if unknown:
        hint = did_you_mean(unknown[0], CSV_COLUMNS) or "columns: " + ", ".join(CSV_COLUMNS)
        return Diagnostic(
            "unknown-column", f"unknown column '{unknown[0]}'", Span(name, 1, 1), hint=hint
        )
    return Diagnostic("missing-column", "the header has no 'id' column", Span(name, 1, 1))


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def _csv_person(record: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": (record.get("id") or "").strip()}
    for key in ("name", "locale", "email", "phone", "schedule"):
        if record.get(key):
            out[key] = str(record[key]).strip()
    for key in ("roles", "teams", "notify_via"):
        if record.get(key):
            out[key] = _split(record[key])
    if record.get("skills"):
        skills: dict[str, Any] = {}
        for item in _split(record["skills"]):
            skill, _, level = item.partition(":")
            skills[skill.strip()] = int(level) if level.strip() else 1
        out["skills"] = skills
    if record.get("lat") or record.get("lon"):
        out["location"] = {
            "lat": float(record.get("lat") or "nan"),
            "lon": float(record.get("lon") or "nan"),
        }
    if record.get("active"):
        out["active"] = str(record["active"]).strip().lower() in ("1", "true", "yes", "y")
    if record.get("max_open"):
        out["max_open"] = int(str(record["max_open"]))
    return out


def _csv_problems(name: str, line: int, exc: Exception) -> list[Diagnostic]:
    if isinstance(exc, ValidationError):
        return [
            Diagnostic(
                "invalid-value",
                f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}",
                Span(name, line, 1),
            )
            for err in exc.errors()
        ]
    return [Diagnostic("invalid-value", f"row {line}: {exc}", Span(name, line, 1))]


# -- checking against the packs -------------------------------------------------------------


def check_people(
    people: Sequence[PersonSpec], packs: Iterable[Pack], source: SourceMap, file: str
) -> list[Diagnostic]:
    """Every team, skill, role and calendar a person names must be declared by one of the
    tenant's packs; ids must be unique. Located through `source` when it has the spot."""
    packs = list(packs)
    known = {
        "team": sorted({t for p in packs for t in p.teams}),
        "skill": sorted({s for p in packs for s in p.skill_names()}),
        "role": sorted({r for p in packs for r in p.role_names()}),
        "calendar": sorted({c for p in packs for c in p.calendars}),
    }
    out: list[Diagnostic] = []
    seen: dict[str, int] = {}
    for i, person in enumerate(people):
        base: JsonPath = ("people", i)
        if person.id in seen:
            out.append(
                _problem(
                    "duplicate-id", f"person '{person.id}' is listed twice", base, source, file
                )
            )
        seen[person.id] = i
        refs: list[tuple[str, str, JsonPath]] = [
            *(("team", t, (*base, "teams", k)) for k, t in enumerate(person.teams)),
            *(("role", r, (*base, "roles", k)) for k, r in enumerate(person.roles)),
            *(("skill", s, (*base, "skills", s)) for s in person.skill_levels()),
        ]
        if person.schedule is not None:
            refs.append(("calendar", person.schedule, (*base, "schedule")))
        for kind, name, path in refs:
            if name not in known[kind]:
                hint = did_you_mean(name, known[kind]) or (
                    f"{kind}s: {known_list(known[kind])}"
                    if known[kind]
                    else f"no pack declares a {kind}"
                )
                out.append(
                    _problem(
                        "unknown-reference", f"unknown {kind} '{name}'", path, source, file, hint
                    )
                )
    return out


def _problem(
    code: str, message: str, path: JsonPath, source: SourceMap, file: str, hint: str | None = None
) -> Diagnostic:
    span = source.locate(path) or Span(file, 1, 1)
    where = ".".join(str(p) for p in path)
    return Diagnostic(code, f"{where}: {message}", span, hint=hint, pointer=json_pointer(path))
