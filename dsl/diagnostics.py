"""Diagnostics: errors and warnings as values with a code and a source location."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How bad a diagnostic is: errors block publishing, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Span:
    """A place in a source file; line and column are 1-based."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a definition, with where it is and how to fix it."""

    code: str
    message: str
    span: Span | None
    severity: Severity = Severity.ERROR
    hint: str | None = None
    pointer: str | None = None
    related: tuple[Span, ...] = field(default_factory=tuple)

    @property
    def is_error(self) -> bool:
        """True when this diagnostic blocks publishing."""
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        """Order by file, then position, then code."""
        if self.span is None:
            return ("", 0, 0, self.code, self.message)
        return (self.span.file, self.span.line, self.span.column, self.code, self.message)

    def headline(self) -> str:
        """`file:line:col: severity[code]: message`, the one-line form."""
        where = f"{self.span.file}:{self.span.line}:{self.span.column}" if self.span else "<pack>"
        return f"{where}: {self.severity.value}[{self.code}]: {self.message}"

    def as_json(self) -> dict[str, object]:
        """The machine-readable form used by `--format json` and the HTTP API."""
        out: dict[str, object] = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.span.file if self.span else None,
            "line": self.span.line if self.span else None,
            "column": self.span.column if self.span else None,
        }
        if self.span and self.span.end_line is not None:
            out["end_line"] = self.span.end_line
            out["end_column"] = self.span.end_column
        out["hint"] = self.hint
        out["pointer"] = self.pointer
        if self.related:
            out["related"] = [
                {"file": s.file, "line": s.line, "column": s.column} for s in self.related
            ]
        return out


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted and de-duplicated, so output is stable whatever order checks ran in."""
    seen: set[tuple[object, ...]] = set()
    unique: list[Diagnostic] = []
    for d in diagnostics:
        key = (d.code, d.message, d.span, d.severity)
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return sorted(unique, key=Diagnostic.sort_key)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    pool = sorted({c for c in candidates if isinstance(c, str)})
    if not pool:
        return None
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if close:
        return f"did you mean '{close[0]}'?"
    return None


def known_list(candidates: Sequence[str], limit: int = 12) -> str:
    """A short human list of valid names for a hint."""
    names = sorted(set(candidates))
    if not names:
        return "none are defined"
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"known: {shown}{more}"


def render_text(diagnostics: Sequence[Diagnostic], sources: dict[str, str] | None = None) -> str:
    """Render diagnostics for a terminal: headline, source line with a caret, hint."""
    lines: list[str] = []
    for d in diagnostics:
        lines.append(d.headline())
        text = (sources or {}).get(d.span.file) if d.span else None
        if text is not None and d.span is not None:
            src_lines = text.splitlines()
            if 0 < d.span.line <= len(src_lines):
                src = src_lines[d.span.line - 1]
                if len(src) <= 200:
                    gutter = f"{d.span.line:>5} | "
                    lines.append(f"{gutter}{src}")
                    lines.append(" " * (len(gutter) + d.span.column - 1) + "^")
        if d.hint:
            lines.append(f"  hint: {d.hint}")
        for rel in d.related:
            lines.append(f"  see: {rel.file}:{rel.line}:{rel.column}")
    return "\n".join(lines)
