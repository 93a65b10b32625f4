"""Load a definition pack from files: parse, merge, build the model, run the checks."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from dsl.diagnostics import Diagnostic, Span, sort_diagnostics
from dsl.sections import PACK_SECTIONS
from dsl.source_map import SourceMap
from dsl.sources import MergedDocument, PackSource, discover_packs, load_pack_source, pack_files
from dsl.yaml_loader import LoadLimits
from engine.checks import check_pack
from engine.errors import translate
from engine.model import Pack
from engine.pack_expressions import check_pack_expressions

# Top-level keys whose entries may be spread over several files of a pack.
SECTIONS = PACK_SECTIONS


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
