"""What changed between two versions of a pack document: a list of changes with the values
before and after, and a summary per template and workflow for people.

The changes read in document order: the keys of the old document in its order (each removed
or compared), then the keys only the new one has. Lists are compared item by item along
their longest common run (`difflib`); an item's pointer indexes the old list when it is
removed and the new list when it is added, so the list is for reading, not for replaying as
an RFC 6902 patch.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from builder_api.merge_patch import same_json
from dsl.sections import PACK_SECTIONS
from dsl.source_map import JsonPath, json_pointer

Op = Literal["add", "remove", "replace"]


@dataclass(frozen=True, slots=True)
class Change:
    """One change: `path` is the JSON pointer of the value, `before` / `after` its values
    (`before` is None for an addition, `after` for a removal)."""

    op: Op
    path: str
    before: Any = None
    after: Any = None


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every change that turns `old` into `new`, in document order."""
    changes: list[Change] = []
    _diff(old, new, (), changes)
    return changes


def _diff(old: Any, new: Any, path: JsonPath, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key, before in old.items():
            if key in new:
                _diff(before, new[key], (*path, key), out)
            else:
                out.append(Change("remove", json_pointer((*path, key)), before=before))
        for key, after in new.items():
            if key not in old:
                out.append(Change("add", json_pointer((*path, key)), after=after))
    elif isinstance(old, list) and isinstance(new, list):
        _diff_list(old, new, path, out)
    elif not same_json(old, new):
        out.append(Change("replace", json_pointer(path), before=old, after=new))


def _diff_list(old: list[Any], new: list[Any], path: JsonPath, out: list[Change]) -> None:
    if same_json(old, new):
        return
    matcher = difflib.SequenceMatcher(None, _keys(old), _keys(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            # Items edited in place: show what changed inside each.
            for offset in range(i2 - i1):
                _diff(old[i1 + offset], new[j1 + offset], (*path, j1 + offset), out)
            continue
        for i in range(i1, i2):
            out.append(Change("remove", json_pointer((*path, i)), before=old[i]))
        for j in range(j1, j2):
            out.append(Change("add", json_pointer((*path, j)), after=new[j]))


def _keys(items: list[Any]) -> list[str]:
    """Hashable stand-ins that compare like `same_json`."""
    return [json.dumps(_typed(item), sort_keys=True) for item in items]


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return [type(value).__name__, value]


# -- the summary -----------------------------------------------------------------------------


Status = Literal["added", "removed", "changed"]
_STATUS: dict[Op, Status] = {"add": "added", "remove": "removed", "replace": "changed"}


class NameChanges(TypedDict):
    """Names added, removed, and changed (present in both, with a different value)."""

    added: list[str]
    removed: list[str]
    changed: list[str]


class WorkflowSummary(TypedDict):
    """A workflow's status and its states and transitions that changed."""

    status: Status
    states: NameChanges
    transitions: NameChanges


class TemplateSummary(TypedDict):
    """A template's status and its fields that changed."""

    status: Status
    fields: NameChanges


class Summary(TypedDict):
    """What changed, for people: per workflow and template, rules, the other sections by
    entry name, and the pack's settings (top-level keys that are not sections)."""

    changes: int
    workflows: dict[str, WorkflowSummary]
    templates: dict[str, TemplateSummary]
    rules: NameChanges
    sections: dict[str, NameChanges]
    settings: list[str]


# The named collections inside an entry that the summary breaks down.
_PARTS: dict[str, tuple[str, ...]] = {
    "workflows": ("states", "transitions"),
    "templates": ("fields",),
}


def summarize(changes: Iterable[Change]) -> Summary:
    """Count what `changes` add, remove and change, by name."""
    summary = Summary(
        changes=0, workflows={}, templates={}, rules=_names(), sections={}, settings=[]
    )
    for change in changes:
        summary["changes"] += 1
        parts = parse_pointer(change.path)
        if not parts:
            continue
        section = parts[0]
        if section not in PACK_SECTIONS:
            if section not in summary["settings"]:
                summary["settings"].append(section)
        elif len(parts) == 1:
            _section_changed(summary, section, change.before, change.after)
        elif parts[1].isdigit():
            # An item of a list section (`roles: [a, b]`) is named by its value.
            before = [change.before] if change.op != "add" else []
            after = [change.after] if change.op != "remove" else []
            _section_changed(summary, section, before, after)
        elif len(parts) == 2:
            _record(summary, section, parts[1], _STATUS[change.op], change.before, change.after)
        else:
            _inside_entry(summary, section, parts[1], parts[2:], change)
    return summary


def _section_changed(summary: Summary, section: str, before: Any, after: Any) -> None:
    """A whole section appeared, went or changed shape: compare it entry by entry."""
    old, new = _entries(before), _entries(after)
    for name in old:
        if name not in new:
            _record(summary, section, name, "removed", old[name], None)
        elif not same_json(old[name], new[name]):
            _record(summary, section, name, "changed", old[name], new[name])
    for name in new:
        if name not in old:
            _record(summary, section, name, "added", None, new[name])


def _record(
    summary: Summary, section: str, name: str, status: Status, before: Any, after: Any
) -> None:
    """An entry of a section was added, removed or replaced as a whole."""
    parts = _parts(summary, section, name, status)
    if parts is None:
        _merge(_section(summary, section), _one(name, status))
        return
    for part, names in parts.items():
        inner = _compare(
            before.get(part) if isinstance(before, dict) else None,
            after.get(part) if isinstance(after, dict) else None,
        )
        _merge(names, inner)


def _inside_entry(
    summary: Summary, section: str, name: str, rest: tuple[str, ...], change: Change
) -> None:
    """A change inside an entry: the entry changed, and maybe one of its named parts."""
    parts = _parts(summary, section, name, "changed")
    if parts is None:
        _merge(_section(summary, section), _one(name, "changed"))
        return
    names = parts.get(rest[0])
    if names is None:
        return
    if len(rest) == 1:
        _merge(names, _compare(change.before, change.after))
    elif len(rest) == 2:
        _merge(names, _one(rest[1], _STATUS[change.op]))
    else:
        _merge(names, _one(rest[1], "changed"))


def _parts(
    summary: Summary, section: str, name: str, status: Status
) -> dict[str, NameChanges] | None:
    """The named parts of a workflow's or template's summary (created with `status`), or
    None for the entries of other sections."""
    if section == "workflows":
        node: Any = summary["workflows"].setdefault(
            name, WorkflowSummary(status=status, states=_names(), transitions=_names())
        )
    elif section == "templates":
        node = summary["templates"].setdefault(
            name, TemplateSummary(status=status, fields=_names())
        )
    else:
        return None
    return {part: node[part] for part in _PARTS[section]}


def _section(summary: Summary, section: str) -> NameChanges:
    if section == "rules":
        return summary["rules"]
    return summary["sections"].setdefault(section, _names())


def _names(
    added: list[str] | None = None,
    removed: list[str] | None = None,
    changed: list[str] | None = None,
) -> NameChanges:
    return NameChanges(added=added or [], removed=removed or [], changed=changed or [])


def _one(name: str, status: Status) -> NameChanges:
    out = _names()
    out[status].append(name)
    return out


def _compare(before: Any, after: Any) -> NameChanges:
    old, new = _entries(before), _entries(after)
    return _names(
        added=[n for n in new if n not in old],
        removed=[n for n in old if n not in new],
        changed=[n for n in new if n in old and not same_json(old[n], new[n])],
    )


def _entries(value: Any) -> dict[str, Any]:
    """A named collection by name: a mapping as it is, a list of names by its names."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {item: item for item in value if isinstance(item, str)}
    return {}


_OPPOSITES: tuple[tuple[Status, Status], ...] = (("added", "removed"), ("removed", "added"))


def _merge(into: NameChanges, more: NameChanges) -> None:
    """Add names, keeping each name in one list: added or removed wins over changed, and a
    name both removed and added (an item moved in a list) is changed."""
    moved: list[str] = []
    for status, opposite in _OPPOSITES:
        for name in more[status]:
            if name in into[opposite]:
                into[opposite].remove(name)
                moved.append(name)
            elif name not in into[status]:
                into[status].append(name)
    settled = {*into["added"], *into["removed"]}
    into["changed"][:] = [n for n in into["changed"] if n not in settled]
    for name in [*more["changed"], *moved]:
        if name not in settled and name not in into["changed"]:
            into["changed"].append(name)


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 pointer (`/a~1b/0` → (`a/b`, `0`))."""
    if not pointer:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))
