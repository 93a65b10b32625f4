"""Find the files of a pack and merge them into one document, keeping every position."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.diagnostics import Diagnostic, Span
from dsl.flow_parser import load_flow_file
from dsl.source_map import JsonPath, SourceMap
from dsl.yaml_loader import LoadLimits, YamlDocument, load_yaml_file

PACK_SUFFIXES = (".yaml", ".yml", ".flow")


@dataclass(slots=True)
class PackSource:
    """The files that make up one pack: a single file, or every YAML file under a directory."""

    root: Path
    files: list[Path]


class PathNotFound(Exception):
    """A path given on the command line does not exist (a usage error, not a pack error)."""


def pack_files(directory: Path) -> list[Path]:
    """Every pack file under `directory`, its own pack.yaml first."""
    return sorted(p for p in directory.rglob("*") if p.suffix in PACK_SUFFIXES and p.is_file())


def discover_packs(paths: Iterable[Path]) -> list[PackSource]:
    """A file is a pack; a directory holding YAML files is a pack (with its subdirectories);
    a directory holding none is searched for pack directories below it."""
    packs: list[PackSource] = []
    for path in paths:
        if not path.exists():
            raise PathNotFound(str(path))
        if path.is_file():
            packs.append(PackSource(path, [path]))
            continue
        if any(p.suffix in PACK_SUFFIXES for p in path.iterdir() if p.is_file()):
            packs.append(PackSource(path, pack_files(path)))
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir())
        packs.extend(discover_packs(children))
    return packs


@dataclass(slots=True)
class MergedDocument:
    """A pack's files merged into one mapping, with a source map spanning all of them."""

    data: dict[str, Any]
    source: SourceMap
    texts: dict[str, str] = field(default_factory=dict)


def _shift(source: SourceMap, section: str, offset: int) -> SourceMap:
    """Re-index list positions of `section` after concatenating lists from several files."""
    if offset == 0:
        return source

    def move(path: JsonPath) -> JsonPath:
        if len(path) >= 2 and path[0] == section and isinstance(path[1], int):
            return (section, path[1] + offset, *path[2:])
        return path

    return SourceMap(
        {move(p): s for p, s in source.keys.items()},
        {move(p): s for p, s in source.values.items()},
        {move(p): move(t) for p, t in source.aliases.items()},
    )


def _duplicate(what: str, here: Span | None, first: Span | None) -> Diagnostic:
    where = f"{first.file}:{first.line}" if first else "another file"
    return Diagnostic(
        "duplicate-definition",
        f"{what} is defined twice (first at {where})",
        here,
        hint="keep one definition; names must be unique across the files of a pack",
        related=(first,) if first else (),
    )


def merge_documents(
    documents: list[YamlDocument], sections: frozenset[str]
) -> tuple[MergedDocument, list[Diagnostic]]:
    """Merge top-level mappings; entries of `sections` combine across files, the rest may
    be written once. A name defined twice is an error naming both places."""
    merged = MergedDocument({}, SourceMap())
    diagnostics: list[Diagnostic] = []
    for doc in documents:
        merged.texts[doc.path] = doc.text
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            diagnostics.append(
                Diagnostic(
                    "not-a-mapping",
                    "a pack file must be a mapping of sections (pack:, templates:, ...)",
                    doc.source.value(()) or Span(doc.path, 1, 1),
                )
            )
            continue
        source = doc.source
        root_span = source.value(())
        if root_span is not None:
            merged.source.values.setdefault((), root_span)
        for key, value in doc.data.items():
            here = source.key((key,))
            if key not in merged.data:
                merged.data[key] = value
                merged.source.update(_only(source, key))
                continue
            current = merged.data[key]
            if key in sections and isinstance(current, dict) and isinstance(value, dict):
                for name, entry in value.items():
                    if name in current:
                        diagnostics.append(
                            _duplicate(
                                f"{key}.{name}",
                                source.key((key, name)),
                                merged.source.key((key, name)),
                            )
                        )
                        continue
                    current[name] = entry
                merged.source.update(_only(source, key, keep_section_span=False))
            elif key in sections and isinstance(current, list) and isinstance(value, list):
                # Repeated items are reported by the engine's duplicate-name check.
                merged.source.update(_shift(_only(source, key, False), key, len(current)))
                current.extend(value)
            else:
                diagnostics.append(_duplicate(f"'{key}'", here, merged.source.key((key,))))
    return merged, diagnostics


def _only(source: SourceMap, key: str, keep_section_span: bool = True) -> SourceMap:
    def ours(path: JsonPath) -> bool:
        return bool(path) and path[0] == key and (keep_section_span or len(path) > 1)

    return SourceMap(
        {p: s for p, s in source.keys.items() if ours(p)},
        {p: s for p, s in source.values.items() if ours(p)},
        {p: t for p, t in source.aliases.items() if ours(p)},
    )


def load_pack_source(
    pack: PackSource,
    sections: frozenset[str],
    limits: LoadLimits | None = None,
    display_root: Path | None = None,
) -> tuple[MergedDocument | None, list[Diagnostic]]:
    """Load and merge every file of a pack; None when a file could not be parsed."""
    documents: list[YamlDocument] = []
    diagnostics: list[Diagnostic] = []
    for path in pack.files:
        display = _display(path, display_root)
        load = load_flow_file if path.suffix == ".flow" else load_yaml_file
        doc, diags = load(path, limits, display)
        diagnostics.extend(diags)
        if doc is not None:
            documents.append(doc)
    if diagnostics:
        return None, diagnostics
    merged, diags = merge_documents(documents, sections)
    return merged, diags


def _display(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
