"""Load a definition pack from files: parse, merge, build the model, run the checks."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from dsl.diagnostics import Diagnostic, Span, sort_diagnostics
from dsl.flow_parser import load_flow_text
from dsl.sections import PACK_SECTIONS
from dsl.source_map import SourceMap
from dsl.sources import (
    PACK_SUFFIXES,
    MergedDocument,
    PackSource,
    discover_packs,
    load_pack_source,
    merge_documents,
    pack_files,
)
from dsl.yaml_loader import LoadLimits, YamlDocument, load_yaml_text
from engine.checks import check_pack
from engine.errors import translate
from engine.model import Pack
from engine.pack_expressions import check_pack_expressions

# Top-level keys whose entries may be spread over several files of a pack.
SECTIONS = PACK_SECTIONS
# Longest name of a pack file given as text (a path below the pack, e.g. `flows/repair.yaml`).
MAX_FILE_NAME = 255


@dataclass(slots=True)
class PackResult:
    """The outcome of loading one pack and every diagnostic.

    `pack` is the model whenever the pack parsed and matched the model's shape, even if
    semantic checks then found errors (tools such as the builder still show it); `ok` says
    whether the pack may be published.
    """

    source: PackSource
    pack: Pack | None
    diagnostics: list[Diagnostic]
    texts: dict[str, str] = field(default_factory=dict)
    source_map: SourceMap | None = None

    @property
    def ok(self) -> bool:
        """True when nothing blocks publishing (warnings allowed)."""
        return not any(d.is_error for d in self.diagnostics)


def validate_document(merged: MergedDocument) -> tuple[Pack | None, list[Diagnostic]]:
    """Model and semantic checks of already-parsed pack data."""
    if not merged.data:
        first = next(iter(merged.texts), "<pack>")
        return None, [
            Diagnostic(
                "empty-pack",
                "the pack is empty",
                Span(first, 1, 1),
                hint="start with 'pack:', 'title:' and 'timezone:'",
            )
        ]
    try:
        pack = Pack.model_validate(merged.data)
    except ValidationError as exc:
        return None, translate(exc, Pack, merged.data, merged.source)
    semantic = check_pack(pack, merged.source)
    return pack, [*semantic, *check_pack_expressions(pack, merged.source, merged.texts)]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading builds a large tree of objects that all survive; the cycle collector would
    rescan it again and again (a 200,000-line pack: 6.0 s with it, 3.5 s without). Nothing
    here makes cycles worth collecting before the load ends. Process-wide, restored after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_pack(
    source: PackSource, limits: LoadLimits | None = None, display_root: Path | None = None
) -> PackResult:
    """Load one pack (a file or a directory of files) into a model, or say why not."""
    with _gc_paused():
        return _load_pack(source, limits, display_root)


def _load_pack(
    source: PackSource, limits: LoadLimits | None, display_root: Path | None
) -> PackResult:
    merged, diagnostics = load_pack_source(source, SECTIONS, limits, display_root)
    return _validated(source, merged, diagnostics)


def _validated(
    source: PackSource, merged: MergedDocument | None, diagnostics: list[Diagnostic]
) -> PackResult:
    if merged is None:
        return PackResult(source, None, sort_diagnostics(diagnostics))
    if not merged.data and any(d.is_error for d in diagnostics):
        # Nothing usable was merged (e.g. a file holding a list): no "empty pack" on top.
        return PackResult(source, None, sort_diagnostics(diagnostics), merged.texts)
    pack, more = validate_document(merged)
    all_diags = sort_diagnostics([*diagnostics, *more])
    if any(d.is_error for d in diagnostics):
        pack = None
    return PackResult(source, pack, all_diags, merged.texts, merged.source)


def load_packs(
    paths: list[Path], limits: LoadLimits | None = None, display_root: Path | None = None
) -> list[PackResult]:
    """Load every pack found under `paths` (see `discover_packs`)."""
    return [load_pack(s, limits, display_root) for s in discover_packs(paths)]


def load_pack_path(path: Path | str, limits: LoadLimits | None = None) -> PackResult:
    """Load the single pack at `path` (a file, or a directory of pack files)."""
    p = Path(path)
    return load_pack(PackSource(p, [p] if p.is_file() else pack_files(p)), limits)


def load_pack_texts(files: Mapping[str, str], limits: LoadLimits | None = None) -> PackResult:
    """Load a pack given as texts by file name (a builder's draft), with the same checks as
    files on disk. Names are shown as given; each must be a plain relative name ending in
    .yaml, .yml or .flow, and files are merged in the order a directory would give."""
    source = PackSource(Path("."), [Path(n) for n in sorted(files, key=PurePosixPath)])
    with _gc_paused():
        documents, diagnostics = parse_pack_texts(files, limits)
        if diagnostics:
            return PackResult(source, None, diagnostics, dict(files))
        merged, diags = merge_documents(documents, SECTIONS)
        return _validated(source, merged, diags)


def parse_pack_texts(
    files: Mapping[str, str], limits: LoadLimits | None = None
) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Parse every text of a pack (names checked first), in the order a directory would
    give; the documents, or the diagnostics of every name or file that is refused."""
    names = sorted(files, key=PurePosixPath)
    bad = [d for d in (bad_file_name(n) for n in names) if d is not None]
    if bad:
        return [], bad
    documents: list[YamlDocument] = []
    diagnostics: list[Diagnostic] = []
    for name in names:
        load = load_flow_text if name.endswith(".flow") else load_yaml_text
        doc, diags = load(files[name], name, limits)
        diagnostics.extend(diags)
        if doc is not None:
            documents.append(doc)
    return documents, sort_diagnostics(diagnostics)


def bad_file_name(name: str) -> Diagnostic | None:
    """Why `name` cannot name a file of a pack given as texts, or None when it can."""
    parts = name.split("/")
    if len(name) > MAX_FILE_NAME:
        problem = f"is longer than {MAX_FILE_NAME} characters"
    elif not name or name.startswith("/") or "\\" in name:
        problem = "is not a relative name with '/' separators"
    elif any(part in ("", ".", "..") for part in parts):
        problem = "has an empty, '.' or '..' part"
    elif any(not ch.isprintable() for ch in name):
        problem = "holds a control character"
    elif not name.endswith(PACK_SUFFIXES):
        problem = f"does not end in {', '.join(PACK_SUFFIXES)}"
    elif parts[-1] in PACK_SUFFIXES:
        problem = "has nothing before its ending"
    else:
        return None
    return Diagnostic(
        "bad-file-name",
        f"file name {name!r} {problem}",
        None,
        hint="name pack files like 'pack.yaml' or 'workflows/repair.yaml'",
    )
