"""Load YAML into plain data plus a source map, refusing hostile or malformed input early.

We build the data from ruamel.yaml's event stream rather than its composer: that lets us
stop at a depth limit before the composer recurses, count aliases as they appear (an alias
bomb is refused before anything is expanded), refuse tags, and name both lines of a
duplicate key. Aliases share the anchored object instead of copying it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from dsl.diagnostics import Diagnostic, Span
from dsl.source_map import JsonPath, SourceMap

DEFAULT_MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Bounds that keep a hostile file from costing time or memory."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = 64
    max_aliases: int = 10_000
    # Nodes that alias expansion may add on top of the nodes written out in the file.
    max_expanded_nodes: int = 100_000


@dataclass(slots=True)
class YamlDocument:
    """A parsed file: its data, where every node came from, and the text for excerpts."""

    path: str
    text: str
    data: Any
    source: SourceMap


class YamlLoadError(Exception):
    """Raised internally to abort a load; carries the located diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


def resolve_plain_scalar(value: str) -> Any:
    """YAML 1.2 core schema: no `yes`/`no` booleans, no sexagesimals, dates stay strings."""
    if _NULL.match(value):
        return None
    if _BOOL_TRUE.match(value):
        return True
    if _BOOL_FALSE.match(value):
        return False
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.match(value):
        return float("nan")
    return value


def _span(path: str, event: Event) -> Span:
    start, end = event.start_mark, event.end_mark
    return Span(path, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _error(code: str, message: str, span: Span, hint: str | None = None) -> YamlLoadError:
    return YamlLoadError(Diagnostic(code, message, span, hint=hint))


class _Discarded(str):
    """Key under which a duplicate's value is consumed and then dropped; no key written in
    a file can be an instance of it."""

    __slots__ = ()


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence under construction."""

    container: dict[str, Any] | list[Any]
    path: JsonPath
    span: Span
    anchor: str | None
    size: int = 1
    pending_key: str | None = None
    pending_key_span: Span | None = None
    key_spans: dict[str, Span] = field(default_factory=dict)
    merges: list[tuple[Any, Span]] = field(default_factory=list)


@dataclass(slots=True)
class _Anchor:
    value: Any
    path: JsonPath
    size: int
    span: Span


class _Builder:
    """Turns an event stream into plain data and a source map."""

    def __init__(self, path: str, limits: LoadLimits) -> None:
        self.path = path
        self.limits = limits
        self.source = SourceMap()
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.aliases = 0
        self.written_nodes = 0
        self.root: Any = None
        self.documents = 0
        self.duplicates: list[Diagnostic] = []

    # -- helpers ---------------------------------------------------------------------------
    def _child_path(self) -> JsonPath | None:
        """Path the next value takes, or None when the next scalar is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        if top.pending_key is None:
            return None
        return (*top.path, top.pending_key)

    def _attach(self, value: Any, span: Span, size: int, anchor: str | None) -> None:
        path = self._child_path()
        assert path is not None
        self.source.values[path] = span
        if anchor is not None:
            self.anchors[anchor] = _Anchor(value, path, size, span)
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.container, list):
            top.container.append(value)
            return
        key = top.pending_key
        assert key is not None
        if key == "<<" and top.pending_key_span is not None:
            top.merges.append((value, span))
        else:
            top.container[key] = value
        top.pending_key = None
        top.pending_key_span = None

    def _check_tag(self, event: Event) -> None:
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = str(tag).replace("tag:yaml.org,2002:", "!!")
            raise _error(
                "yaml-tag",
                f"YAML tags are not allowed (found '{shown}')",
                _span(self.path, event),
                "remove the tag; a definition pack holds plain mappings, lists and scalars",
            )

    def _check_depth(self, event: Event) -> None:
        if len(self.stack) >= self.limits.max_depth:
            raise _error(
                "yaml-too-deep",
                f"nesting deeper than {self.limits.max_depth} levels",
                _span(self.path, event),
                "a definition never needs this much nesting; flatten the structure",
            )

    def _check_expansion(self, event: Event) -> None:
        total = self.stack[0].size if self.stack else 0
        if total - self.written_nodes > self.limits.max_expanded_nodes:
            raise _error(
                "yaml-alias-limit",
                f"aliases expand to more than {self.limits.max_expanded_nodes} extra nodes",
                _span(self.path, event),
                "this looks like an alias bomb; write the repeated parts out or use fewer "
                "nested aliases",
            )

    # -- events ----------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise _error(
                    "yaml-multiple-documents",
                    "a pack file holds one YAML document; found a second '---'",
                    _span(self.path, event),
                    "split the documents into separate files of the pack",
                )
        elif isinstance(event, ScalarEvent):
            self._scalar(event)
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            self._start(event)
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            self._end(event)
        elif isinstance(event, AliasEvent):
            self._alias(event)

    def _scalar(self, event: ScalarEvent) -> None:
        self._check_tag(event)
        span = _span(self.path, event)
        self.written_nodes += 1
        # The C parser reports a plain scalar's style as '', the pure one as None.
        plain = not event.style and event.implicit[0]
        if self._child_path() is None:
            self._key(event.value, span, plain)
            return
        value = resolve_plain_scalar(event.value) if plain else event.value
        self._attach(value, span, 1, event.anchor)

    def _key(self, raw: str, span: Span, plain: bool) -> None:
        top = self.stack[-1]
        key = raw
        if key in top.key_spans and not (plain and key == "<<"):
            first = top.key_spans[key]
            self.duplicates.append(
                Diagnostic(
                    "yaml-duplicate-key",
                    f"duplicate key '{key}' (first defined at line {first.line})",
                    span,
                    hint="each key may appear once in a mapping; merge the two entries",
                    related=(first,),
                )
            )
            # Keep the first value; the duplicate's value still has to be consumed.
            key = _Discarded(f"duplicate {len(self.duplicates)}")
        top.key_spans.setdefault(key, span)
        top.pending_key = key
        top.pending_key_span = span if (plain and raw == "<<") else None
        if not isinstance(key, _Discarded):
            self.source.keys[(*top.path, key)] = span

    def _start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        self._check_tag(event)
        span = _span(self.path, event)
        if self._child_path() is None:
            raise _error(
                "yaml-complex-key",
                "a mapping key must be a plain name, not a list or mapping",
                span,
            )
        self._check_depth(event)
        self.written_nodes += 1
        path = self._child_path()
        assert path is not None
        container: dict[str, Any] | list[Any] = {} if isinstance(event, MappingStartEvent) else []
        self.stack.append(_Frame(container, path, span, event.anchor))

    def _end(self, event: Event) -> None:
        frame = self.stack.pop()
        if isinstance(frame.container, dict):
            self._apply_merges(frame)
            frame.container = {
                k: v for k, v in frame.container.items() if not isinstance(k, _Discarded)
            }
        self._attach(frame.container, frame.span, frame.size, frame.anchor)
        self._check_expansion(event)

    def _apply_merges(self, frame: _Frame) -> None:
        assert isinstance(frame.container, dict)
        for value, span in frame.merges:
            sources = value if isinstance(value, list) else [value]
            for src in sources:
                if not isinstance(src, dict):
                    raise _error(
                        "yaml-bad-merge",
                        "'<<' merges a mapping (or a list of mappings) into this one",
                        span,
                    )
                for k, v in src.items():
                    frame.container.setdefault(k, v)

    def _alias(self, event: AliasEvent) -> None:
        span = _span(self.path, event)
        self.aliases += 1
        if self.aliases > self.limits.max_aliases:
            raise _error(
                "yaml-alias-limit",
                f"more than {self.limits.max_aliases} aliases",
                span,
                "this looks like an alias bomb",
            )
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            raise _error(
                "yaml-syntax",
                f"unknown alias '*{event.anchor}'",
                span,
                f"define the anchor '&{event.anchor}' before using '*{event.anchor}'",
            )
        if self._child_path() is None:
            raise _error("yaml-complex-key", "an alias cannot be used as a mapping key", span)
        path = self._child_path()
        assert path is not None
        self.source.aliases[path] = anchor.path
        self._attach(anchor.value, span, anchor.size, None)
        self._check_expansion(event)


def _flow_depth_exceeds(text: str, limit: int) -> tuple[int, int] | None:
    """Find flow nesting past `limit` without parsing (1-based line, col), or None.

    ruamel's scanner looks ahead over a whole flow collection when deciding whether it is a
    key, which is quadratic in nesting: 10,000 `[` take tens of seconds. This linear pre-scan
    refuses such input first. Brackets in quotes and comments do not count, and a bracket or
    quote counts only where a YAML value can start (so `it's` or `a[0]` in plain text do not).
    """
    depth, line, line_start = 0, 1, 0
    quote: str | None = None
    last = "\n"  # last significant character; a value starts after one of _VALUE_START
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if (ch == "\\" and quote == '"') or (
                ch == quote and quote == "'" and text.startswith("''", i)
            ):
                i += 1
            elif ch == quote:
                quote, last = None, ch
            elif ch == "\n":
                line, line_start = line + 1, i + 1
        elif ch == "\n":
            line, line_start, last = line + 1, i + 1, "\n"
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        elif ch in " \t":
            pass
        elif last in _VALUE_START and ch in "'\"":
            quote = ch
        elif ch in "[{" and (depth > 0 or last in _VALUE_START):
            depth += 1
            if depth > limit:
                return line, i - line_start + 1
            last = ch
        elif ch in "]}" and depth > 0:
            depth -= 1
            last = ch
        else:
            last = ch
        i += 1
    return None


_VALUE_START = frozenset(":-?,[{\n")


def _decode(data: bytes, path: str, code: str = "yaml-encoding") -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise _error(
            code,
            f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            Span(path, line, col),
            "save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _tab_diagnostic(text: str, path: str, upto_line: int) -> Diagnostic | None:
    for number, content in enumerate(text.splitlines()[:upto_line], start=1):
        indent = content[: len(content) - len(content.lstrip(" \t"))]
        if "\t" in indent:
            return Diagnostic(
                "yaml-tab",
                "tab character used for indentation",
                Span(path, number, indent.index("\t") + 1),
                hint="YAML indents with spaces only; replace the tab with spaces",
            )
    return None


# libyaml's wording, and what an admin should read instead.
_FRIENDLY = (
    (
        "expected <block end>",
        "bad indentation: this line does not line up with the lines above",
        "indent keys of the same mapping by the same number of spaces",
    ),
    (
        "did not find expected key",
        "bad indentation: expected a key at this position",
        "indent keys of the same mapping by the same number of spaces",
    ),
    (
        "mapping values are not allowed",
        "unexpected ':' in a value",
        "put the value in quotes if it contains ': ', or check the indentation",
    ),
    (
        "could not find expected ':'",
        "expected ':' after this key",
        "write 'key: value' with a space after the colon",
    ),
    (
        "did not find expected '-' indicator",
        "bad indentation in a list",
        "start every item of a list with '- ' at the same indentation",
    ),
    (
        "expected ',' or '}'",
        "expected ',' or '}' in this {...} mapping",
        "close the '{' or separate the entries with commas",
    ),
    (
        "expected ',' or ']'",
        "expected ',' or ']' in this [...] list",
        "close the '[' or separate the items with commas",
    ),
    (
        "found character that cannot start any token",
        "this character cannot start a value",
        "put the value in quotes",
    ),
)


def _syntax_diagnostic(exc: YAMLError, text: str, path: str) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 1
    tab = _tab_diagnostic(text, path, line)
    if tab is not None:
        return tab
    if isinstance(exc, MarkedYAMLError):
        problem = exc.problem or "invalid YAML"
        context = f" {exc.context}" if exc.context else ""
        message = f"{problem}{context}".strip()
    else:
        message = str(exc).splitlines()[0]
    message = " ".join(message.split())
    hint = "check indentation, colons and quotes near this position"
    for needle, friendly, friendly_hint in _FRIENDLY:
        if needle in message:
            message, hint = friendly, friendly_hint
            break
    context_mark = getattr(exc, "context_mark", None)
    related: tuple[Span, ...] = ()
    if context_mark is not None:
        opened = Span(path, context_mark.line + 1, context_mark.column + 1)
        past_end = mark is not None and (
            mark.line >= len(text.splitlines()) or not text[mark.index :].strip()
        )
        simple_key = "expected ':'" in message
        if "end of stream" in message or past_end or simple_key:
            # The end of the file (or the line after) is useless as a location; point at
            # what was left open.
            line, column = opened.line, opened.column
            if past_end and "end of" not in message:
                message = f"{message} (still open at the end of the file)"
        elif (opened.line, opened.column) != (line, column):
            related = (opened,)
    return Diagnostic("yaml-syntax", message, Span(path, line, column), hint=hint, related=related)


def _feed(builder: _Builder, text: str, pure: bool) -> None:
    # typ="safe" without pure uses libyaml's parser (ruamel.yaml.clib): 20x faster than the
    # pure-Python one, with the same events and marks. Comments are the writers' business.
    yaml = YAML(typ="safe", pure=pure)
    for event in yaml.parse(io.StringIO(text)):
        builder.feed(event)


def load_yaml_text(
    text: str, path: str = "<string>", limits: LoadLimits | None = None
) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Parse YAML text into data and a source map, or return located diagnostics."""
    limits = limits or LoadLimits()
    size = len(text.encode("utf-8"))
    if size > limits.max_bytes:
        return None, [_too_big(path, size, limits)]
    deep = _flow_depth_exceeds(text, limits.max_depth)
    if deep is not None:
        return None, [
            Diagnostic(
                "yaml-too-deep",
                f"nesting deeper than {limits.max_depth} levels",
                Span(path, *deep),
                hint="a definition never needs this much nesting; flatten the structure",
            )
        ]
    builder = _Builder(path, limits)
    try:
        _feed(builder, text, pure=False)
    except YamlLoadError as exc:
        return None, [*builder.duplicates, exc.diagnostic]
    except YAMLError:
        # libyaml refuses some valid YAML 1.2 (e.g. `{en: Are you sure?, zh: ...}`); the
        # pure parser has the last word, whether it accepts the text or explains the error.
        builder = _Builder(path, limits)
        try:
            _feed(builder, text, pure=True)
        except YamlLoadError as exc:
            return None, [*builder.duplicates, exc.diagnostic]
        except YAMLError as exc:
            return None, [*builder.duplicates, _syntax_diagnostic(exc, text, path)]
    if builder.duplicates:
        return None, builder.duplicates
    return YamlDocument(path, text, builder.root, builder.source), []


def _too_big(path: str, size: int, limits: LoadLimits) -> Diagnostic:
    return Diagnostic(
        "file-too-large",
        f"file is {size:,} bytes; the limit is {limits.max_bytes:,}",
        Span(path, 1, 1),
        hint="split the pack into several files, or raise the limit if this is intended",
    )


def read_source(
    path: Path, limits: LoadLimits, display: str | None = None, kind: str = "yaml"
) -> tuple[str | None, str, list[Diagnostic]]:
    """A pack file's text (size checked before a byte is read, UTF-8 required), the name
    to show for it, and the diagnostics when it cannot be read."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return None, name, [_too_big(name, size, limits)]
        raw = path.read_bytes()
    except OSError as exc:
        message = exc.strerror or str(exc)
        return None, name, [Diagnostic("file-unreadable", message, Span(name, 1, 1))]
    try:
        return _decode(raw, name, f"{kind}-encoding"), name, []
    except YamlLoadError as exc:
        return None, name, [exc.diagnostic]


def load_yaml_file(
    path: Path, limits: LoadLimits | None = None, display: str | None = None
) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Load a YAML file; its size is checked before a byte of it is read."""
    limits = limits or LoadLimits()
    text, name, diagnostics = read_source(path, limits, display)
    if text is None:
        return None, diagnostics
    return load_yaml_text(text, name, limits)
