"""A corpus of broken definition packs and the diagnostics each one must produce.

Every case under `tests/broken/` is one small pack with (mostly) one mistake, described in the
comment at the top of the file. A case is a single file `<case>.yaml` or a directory `<case>/`
holding the files of one multi-file pack.

Each case also states what it must report in an `# expect:` comment line (in a multi-file
case, in its `pack.yaml`): a comma-separated list of `code@line:column`, or
`code@file:line:column` for multi-file cases, `*` standing for any location. The empty-file
case cannot carry a comment; its expectation is in `EXPECT_WITHOUT_COMMENT`.

Four tests per case:

- the full diagnostics (code, severity, file, line, column, message, hint, related places)
  are snapshot-tested in `__snapshots__/test_broken_packs.ambr`; after changing a message on
  purpose, review and refresh them with `pytest tests/test_broken_packs.py --snapshot-update`;
- cases named `warn_*` produce warnings and no errors, every other case at least one error;
- every diagnostic has a location in a file of the case, relative to the corpus directory;
- the codes and locations match the `# expect:` line. Where the engine does not (yet) do
  what the case expects, the case is listed in `KNOWN_PROBLEMS` and that test is an expected
  failure (strict: once the engine is fixed, remove the entry).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl.diagnostics import Diagnostic, Severity
from dsl.sources import PACK_SUFFIXES, discover_packs
from engine.load import PackResult, load_pack

BROKEN = Path(__file__).resolve().parent / "broken"

EXPECT_WITHOUT_COMMENT = {"syntax_empty_file": ["empty-pack@1:1"]}

# Cases where the engine currently reports something other than what the case expects.
KNOWN_PROBLEMS: dict[str, str] = {}


def _cases() -> list[str]:
    names = []
    for entry in BROKEN.iterdir():
        if entry.is_dir():
            names.append(entry.name)
        elif entry.suffix in PACK_SUFFIXES:
            names.append(entry.name.removesuffix(entry.suffix))
    return sorted(names)


CASES = _cases()


def _path(case: str) -> Path:
    for suffix in ("", *PACK_SUFFIXES):
        candidate = BROKEN / f"{case}{suffix}"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(case)


def _load(case: str) -> PackResult:
    (source,) = discover_packs([_path(case)])
    return load_pack(source, display_root=BROKEN)


def _with_known_problems(cases: list[str], only: set[str] | None = None) -> list[object]:
    """The cases, those in KNOWN_PROBLEMS (or in `only` of them) as strict expected failures."""
    return [
        pytest.param(c, marks=pytest.mark.xfail(reason=KNOWN_PROBLEMS[c], strict=True))
        if c in KNOWN_PROBLEMS and (only is None or c in only)
        else c
        for c in cases
    ]


def _row(d: Diagnostic) -> dict[str, object]:
    """The parts of a diagnostic that matter to the person reading it."""
    span = d.span
    row: dict[str, object] = {
        "code": d.code,
        "severity": d.severity.value,
        "file": span.file if span else None,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "message": d.message,
        "hint": d.hint,
    }
    if d.related:
        row["related"] = [f"{s.file}:{s.line}:{s.column}" for s in d.related]
    return row


_EXPECT = re.compile(rb"^# expect:(.*)$", re.MULTILINE)


def _expected(case: str) -> list[str]:
    if case in EXPECT_WITHOUT_COMMENT:
        return EXPECT_WITHOUT_COMMENT[case]
    path = _path(case)
    files = [path] if path.is_file() else sorted(path.rglob("*.yaml"))
    found = [m.group(1).decode() for f in files for m in _EXPECT.finditer(f.read_bytes())]
    assert len(found) == 1, f"{case}: needs exactly one '# expect:' line"
    return [item.strip() for item in found[0].split(",") if item.strip()]


def _matches(expected: str, d: Diagnostic) -> bool:
    code, _, where = expected.partition("@")
    if code != d.code:
        return False
    if where == "*":
        return d.span is not None
    if d.span is None:
        return False
    file = d.span.file.split("/", 1)[1] if "/" in d.span.file else None
    actual = (
        f"{d.span.line}:{d.span.column}"
        if file is None
        else (f"{file}:{d.span.line}:{d.span.column}")
    )
    return actual == where


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45


def test_known_problems_are_cases() -> None:
    assert set(KNOWN_PROBLEMS) <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_diagnostics_snapshot(case: str, snapshot) -> None:
    assert [_row(d) for d in _load(case).diagnostics] == snapshot


@pytest.mark.parametrize("case", CASES)
def test_errors_or_only_warnings(case: str) -> None:
    result = _load(case)
    errors = [d.headline() for d in result.diagnostics if d.severity is Severity.ERROR]
    warnings = [d for d in result.diagnostics if d.severity is Severity.WARNING]
    if case.startswith("warn_"):
        assert warnings, f"{case}: expected at least one warning"
        assert not errors, f"{case}: expected no errors, got {errors}"
        assert result.ok
    else:
        assert errors, f"{case}: expected at least one error"
        assert not result.ok


@pytest.mark.parametrize("case", _with_known_problems(CASES, only={"struct_missing_timezone"}))
def test_every_diagnostic_is_located(case: str) -> None:
    for d in _load(case).diagnostics:
        assert d.span is not None, f"{case}: diagnostic without a location: {d.message}"
        assert not Path(d.span.file).is_absolute()
        assert d.span.file.split("/")[0].removesuffix(".yaml") == case
        assert d.span.line >= 1 and d.span.column >= 1


@pytest.mark.parametrize("case", _with_known_problems(CASES))
def test_expected_codes_and_locations(case: str) -> None:
    expected = _expected(case)
    diagnostics = _load(case).diagnostics
    actual = [
        f"{d.code}@{d.span.file}:{d.span.line}:{d.span.column}" if d.span else f"{d.code}@None"
        for d in diagnostics
    ]
    assert len(expected) == len(diagnostics), f"{case}: expected {expected}, got {actual}"
    for want, d in zip(expected, diagnostics, strict=True):
        assert _matches(want, d), f"{case}: expected {expected}, got {actual}"
