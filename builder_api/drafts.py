"""Drafts of a definition pack as a builder edits them: validation with locations in the text
and in the model, the merged JSON of the files, and JSON edits applied to the admin's YAML
with every comment kept.

A draft is a mapping of file name to text (`pack.yaml`, `workflows/repair.yaml`, ...), as
a pack directory holds them. Edits come as JSON Merge Patches (RFC 7396) or as a whole new
JSON document (applied as the patch between the old and the new); either way only what
changes is rewritten.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

from builder_api.merge_patch import (
    apply_to_data,
    json_problems,
    patch_between,
    same_json,
    without_nulls,
)
from dsl.diagnostics import Diagnostic, Span, sort_diagnostics
from dsl.flow_parser import parse_flow
from dsl.flow_writer import CommentMap, attach_comments, write_flow
from dsl.sections import PACK_SECTIONS
from dsl.source_map import JsonPath, SourceMap, json_pointer
from dsl.sources import merge_documents
from dsl.yaml_loader import LoadLimits
from dsl.yaml_roundtrip import RoundTripError, RoundTripYaml, YamlPathError
from dsl.yaml_writer import write_yaml
from engine.load import load_pack_texts, parse_pack_texts
from engine.schema import SCHEMA_ID

Files = Mapping[str, str]

# Where a pack's top-level settings go when no file holds `pack:` yet.
MAIN_FILE_NAMES = ("pack.yaml", "pack.yml", "pack.flow")


# -- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a file of the draft (1-based)."""

    file: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class DiagnosticView:
    """One diagnostic, located both in the text (file, line, column) and in the model
    (`pointer`, an RFC 6901 JSON pointer into the merged document)."""

    code: str
    severity: str
    message: str
    hint: str | None
    file: str | None
    line: int | None
    column: int | None
    end_line: int | None
    end_column: int | None
    pointer: str | None
    related: tuple[Location, ...] = ()


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The outcome of validating a draft: `ok` when nothing blocks publishing."""

    ok: bool
    errors: int
    warnings: int
    diagnostics: tuple[DiagnosticView, ...]


class DraftError(ValueError):
    """An edit that cannot be applied; the draft is unchanged. Each diagnostic points into
    the request (`pointer`) or at the file that stops the edit."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message if diagnostics else "the edit cannot be applied")
        self.diagnostics = tuple(diagnostics)

    def views(self) -> tuple[DiagnosticView, ...]:
        """The diagnostics in the shape `ValidationReport` uses."""
        return tuple(view(d) for d in self.diagnostics)


class _Pointers(Protocol):
    def pointer(self, span: Span) -> str | None: ...


def view(diagnostic: Diagnostic, pointers: _Pointers | None = None) -> DiagnosticView:
    """A diagnostic as the builder API shows it; the pointer is recovered from the source
    map (`pointers`) when the diagnostic has a span but no pointer."""
    span = diagnostic.span
    pointer = diagnostic.pointer
    if pointer is None and span is not None and pointers is not None:
        pointer = pointers.pointer(span)
    return DiagnosticView(
        code=diagnostic.code,
        severity=diagnostic.severity.value,
        message=diagnostic.message,
        hint=diagnostic.hint,
        file=span.file if span else None,
        line=span.line if span else None,
        column=span.column if span else None,
        end_line=span.end_line if span else None,
        end_column=span.end_column if span else None,
        pointer=pointer,
        related=tuple(Location(s.file, s.line, s.column) for s in diagnostic.related),
    )


class PointerIndex:
    """From a span back to the data path it came from, through a source map."""

    def __init__(self, source: SourceMap) -> None:
        self._exact: dict[Span, JsonPath] = {span: path for path, span in source.values.items()}
        self._exact.update({span: path for path, span in source.keys.items()})
        # A span without an end matches by its start: a key first (more specific than the
        # block mapping that starts at it), else the deepest value starting there.
        self._start: dict[tuple[str, int, int], JsonPath] = {}
        for path, span in sorted(source.values.items(), key=lambda item: len(item[0])):
            self._start[(span.file, span.line, span.column)] = path
        for path, span in source.keys.items():
            self._start[(span.file, span.line, span.column)] = path

    def pointer(self, span: Span) -> str | None:
        """The JSON pointer of the node at `span`, or None when no node is there."""
        path = self._exact.get(span)
        if path is None:
            path = self._start.get((span.file, span.line, span.column))
        return None if path is None else json_pointer(path)


class _DraftPointers:
    """Pointers from the merged source map, else from the map of the one file a span is in
    (a name defined twice across files is only in its own file's map)."""

    def __init__(self, merged: SourceMap | None, files: Files, limits: LoadLimits | None):
        self._merged = PointerIndex(merged) if merged is not None else None
        self._files = files
        self._limits = limits
        self._single: dict[str, PointerIndex | None] = {}

    def pointer(self, span: Span) -> str | None:
        found = self._merged.pointer(span) if self._merged is not None else None
        if found is None and span.file in self._files:
            index = self._file_index(span.file)
            found = index.pointer(span) if index is not None else None
        return found

    def _file_index(self, name: str) -> PointerIndex | None:
        if name not in self._single:
            parsed, problems = parse_pack_texts({name: self._files[name]}, self._limits)
            self._single[name] = PointerIndex(parsed[0].source) if not problems else None
        return self._single[name]


def validate_files(files: Files, limits: LoadLimits | None = None) -> ValidationReport:
    """Validate a draft with every check of `ticketflow validate`."""
    result = load_pack_texts(files, limits)
    pointers = _DraftPointers(result.source_map, files, limits)
    views = tuple(view(d, pointers) for d in result.diagnostics)
    errors = sum(1 for d in result.diagnostics if d.is_error)
    return ValidationReport(result.ok, errors, len(views) - errors, views)


# -- documents -------------------------------------------------------------------------------


def document_yaml(document: Mapping[str, Any]) -> str:
    """Canonical YAML of a JSON document (a published version, or a draft sent as JSON)."""
    _require_json(document, "the document")
    return write_yaml(document, schema_line=SCHEMA_ID)


def draft_document(files: Files, limits: LoadLimits | None = None) -> dict[str, Any] | None:
    """The merged JSON of a draft's files; None when a file does not parse or the files do
    not merge (a name defined twice): `validate_files` says why."""
    return _merged(files, limits)[0]


def _merged(
    files: Files, limits: LoadLimits | None
) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """The merged data of the files (a tree of its own), or why there is none."""
    documents, diagnostics = parse_pack_texts(files, limits)
    if diagnostics:
        return None, diagnostics
    merged, problems = merge_documents(documents, PACK_SECTIONS)
    if problems:
        return None, problems
    # Aliased YAML shares objects between places; the caller may change one of them.
    return copy.deepcopy(merged.data), []


# -- edits -----------------------------------------------------------------------------------


def apply_merge_patch(
    files: Files, patch: Mapping[str, Any], limits: LoadLimits | None = None
) -> dict[str, str]:
    """Apply a JSON Merge Patch (RFC 7396) to the draft, keeping the admin's comments.

    A key of a section spread over several files (`templates`, `workflows`, ...) is edited
    in the file that holds it; a new entry goes to a file holding its section, a new section
    or setting to the main file (the one holding `pack:`). Returns every file's text
    (untouched files as given). Raises DraftError when the patch is not a JSON object or a
    file does not parse.
    """
    _require_json(patch, "the patch")
    draft = _Draft(files, limits)
    for key, value in patch.items():
        draft.patch_top(key, value)
    return draft.texts()


def replace_from_json(
    files: Files, document: Mapping[str, Any], limits: LoadLimits | None = None
) -> dict[str, str]:
    """Make the draft's merged JSON equal `document` with the fewest text edits, keeping
    comments (the merge patch between the old and the new document, applied)."""
    _require_json(document, "the document")
    merged, diagnostics = _merged(files, limits)
    if merged is None:
        raise DraftError(diagnostics)
    patch = patch_between(merged, dict(document))
    return apply_merge_patch(files, patch, limits) if patch else dict(files)


def _require_json(value: Any, what: str) -> None:
    """DraftError unless `value` is a JSON object of plain JSON data."""
    if not isinstance(value, Mapping):
        raise DraftError(
            [
                Diagnostic(
                    "draft-not-an-object",
                    f"{what} must be a JSON object, not {type(value).__name__}",
                    None,
                    hint='send an object of pack sections, e.g. {"templates": {...}}',
                    pointer="",
                )
            ]
        )
    problems = json_problems(dict(value), what)
    if problems:
        raise DraftError(problems)


# -- the files of a draft --------------------------------------------------------------------


class _Editable(Protocol):
    """A file that can be edited by data path and written back."""

    def set(self, path: JsonPath, value: Any) -> None: ...

    def delete(self, path: JsonPath) -> None: ...

    def dump(self) -> str: ...


class _FlowFile:
    """A `.flow` file edited as data and written back canonically with its comments (each
    stays with the statement it was attached to; those of deleted statements go)."""

    def __init__(self, data: dict[str, Any], comments: CommentMap) -> None:
        self._data = data
        self._comments = comments

    def set(self, path: JsonPath, value: Any) -> None:
        node: Any = self._data
        for step in path[:-1]:
            if isinstance(node, dict) and not isinstance(node.get(step), dict | list):
                node[step] = {}  # created on the way, as RoundTripYaml.set does
            node = node[step]
        node[path[-1]] = copy.deepcopy(value)

    def delete(self, path: JsonPath) -> None:
        node: Any = self._data
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]

    def dump(self) -> str:
        return write_flow(self._data, comments=self._comments)


_MISSING: Any = object()


def _lookup(data: Any, path: JsonPath) -> Any:
    """The value at `path` of plain data, or _MISSING."""
    for step in path:
        in_mapping = isinstance(data, dict) and isinstance(step, str) and step in data
        in_list = isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data)
        if not (in_mapping or in_list):
            return _MISSING
        data = data[step]
    return data


class _Draft:
    """The files of a draft, read as plain data; a file is opened for round-trip editing
    (the slow part) only when an edit reaches it. Reads see the data as it was before the
    patch, which is right because a merge patch names each place once."""

    def __init__(self, files: Files, limits: LoadLimits | None) -> None:
        self.original = dict(files)
        self.limits = limits
        self.names = sorted(files, key=PurePosixPath)
        documents, problems = parse_pack_texts(files, limits)
        problems += [_not_a_mapping(d.path) for d in documents if not _is_mapping(d.data)]
        if problems:
            raise DraftError(sort_diagnostics(problems))
        self.data: dict[str, dict[str, Any]] = {d.path: d.data or {} for d in documents}
        self.editors: dict[str, _Editable] = {}
        self.main = self._main_file()

    def _main_file(self) -> str:
        for name in self.names:
            if "pack" in self.data[name]:
                return name
        for name in self.names:
            if PurePosixPath(name).name in MAIN_FILE_NAMES:
                return name
        if self.names:
            return self.names[0]
        self.names.append("pack.yaml")
        self.original["pack.yaml"] = ""
        self.data["pack.yaml"] = {}
        return "pack.yaml"

    def holders(self, key: str) -> list[str]:
        """Files holding top-level `key`, the main file first."""
        found = [n for n in self.names if key in self.data[n]]
        return sorted(found, key=lambda n: n != self.main)

    def patch_top(self, key: str, value: Any) -> None:
        """Apply one top-level member of a merge patch."""
        holders = self.holders(key)
        if value is None:
            for name in holders:
                self._edit(name, (key,))
            return
        spread = [self.data[n][key] for n in holders]
        if (
            key in PACK_SECTIONS
            and isinstance(value, dict)
            and all(isinstance(s, dict) for s in spread)
        ):
            for entry, sub in value.items():
                owner = next((n for n in holders if entry in self.data[n][key]), None)
                if sub is None:
                    if owner is not None:
                        self._edit(owner, (key, entry))
                    continue
                target = owner or (holders[0] if holders else self.main)
                self._merge(target, (key, entry), sub)
            return
        if len(holders) <= 1:
            self._merge(holders[0] if holders else self.main, (key,), value)
            return
        # A section spread over files gets a value of another shape: it moves, whole, into
        # the first file that held it.
        self._edit(holders[0], (key,), apply_to_data(_combined(spread), value))
        for name in holders[1:]:
            self._edit(name, (key,))

    def _merge(self, name: str, path: JsonPath, patch: Any) -> None:
        """RFC 7396 at `path` of one file, touching only what the patch names."""
        current = _lookup(self.data[name], path)
        if isinstance(patch, dict) and isinstance(current, dict):
            for key, value in patch.items():
                if value is not None:
                    self._merge(name, (*path, key), value)
                elif key in current:
                    self._edit(name, (*path, key))
            return
        if current is _MISSING or not same_json(current, patch):
            self._edit(name, path, without_nulls(patch))

    def _edit(self, name: str, path: JsonPath, value: Any = None) -> None:
        """Set `path` of file `name` to `value`, or delete it when `value` is None."""
        if name not in self.editors:
            self.editors[name] = _open(name, self.original[name], self.limits)
        try:
            if value is None:
                self.editors[name].delete(path)
            else:
                self.editors[name].set(path, value)
        except (YamlPathError, TypeError) as exc:
            raise DraftError(
                [
                    Diagnostic(
                        "draft-cannot-edit",
                        f"{name}: {exc}",
                        None,
                        hint="edit this part of the YAML text directly",
                        pointer=json_pointer(path),
                    )
                ]
            ) from None

    def texts(self) -> dict[str, str]:
        """Every file's text: rewritten where edited, as given elsewhere."""
        return {
            name: self.editors[name].dump() if name in self.editors else self.original[name]
            for name in self.names
        }


def _combined(values: list[Any]) -> Any:
    """One value out of a top-level key spread over files, as the loader merges them."""
    if all(isinstance(v, dict) for v in values):
        out: dict[str, Any] = {}
        for v in values:
            for k, item in v.items():
                out.setdefault(k, item)
        return out
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    return values[0]


def _open(name: str, text: str, limits: LoadLimits | None) -> _Editable:
    """Open one file for round-trip editing (it has parsed already)."""
    if name.endswith(".flow"):
        parsed = parse_flow(text, name, limits)
        if parsed.document is None:
            raise DraftError(parsed.diagnostics)
        return _FlowFile(
            parsed.document.data or {}, attach_comments(parsed.comments, parsed.anchors)
        )
    try:
        return RoundTripYaml.parse(text, name, limits)
    except RoundTripError as exc:
        raise DraftError(exc.diagnostics) from None


def _is_mapping(data: Any) -> bool:
    return data is None or isinstance(data, dict)


def _not_a_mapping(name: str) -> Diagnostic:
    return Diagnostic(
        "not-a-mapping",
        "a pack file must be a mapping of sections (pack:, templates:, ...)",
        Span(name, 1, 1),
        pointer="",
    )
