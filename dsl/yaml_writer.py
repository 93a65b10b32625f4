"""Write plain pack data as canonical, readable YAML.

`write_yaml` turns plain data (dicts, lists, strings, numbers, booleans, None — e.g. a model's
`model_dump(by_alias=True, exclude_defaults=True, mode="json")`) into YAML text that
`dsl.yaml_loader.load_yaml_text` reads back to exactly the same data. ruamel.yaml emits it; this
module only decides the layout and the quoting.

The canonical style:

- The file starts with the `# yaml-language-server: $schema=...` line (unless told otherwise).
- Indentation: mappings 2 spaces; block sequences have their dash 2 spaces in from the parent key
  and their content 4 spaces in (`indent(mapping=2, sequence=4, offset=2)`).
- The top level is always block style, and so is a top-level value that holds collections.
  Deeper down, a collection is written in flow style (`{type: text, required: true}`,
  `[P1, P2, P3]`) when its line fits in `width` columns (CJK characters count two) and it nests
  at most two levels (`{label: {en: Item, zh: 检查项}}`), except for these, which stay block:
  a mapping of two or more mappings (`states:`, `targets:`: one entry per line reads better),
  and a one-key mapping holding a collection as a list item (an action: `- notify: {...}`).
  A list in a list is always flow (`- [a, b]`), however long (multi-line strings in it are
  double-quoted with `\\n`).
- A top-level entry holding block collections is set apart by blank lines.
- Keys keep the order they have in the data.
- Scalars are plain unless the YAML 1.2 core schema of the loader would read them as something
  else (`'true'`, `'null'`, `'1.0'`, `'0x1f'`, `'1e3'`; but `yes`, `NO`, `on`, `09:00` and
  `2026-01-01` stay plain: they are strings to our loader), unless YAML syntax needs quotes
  (`': '`, `' #'`, a leading indicator such as `-`, `#`, `*`, `{`; leading or trailing spaces;
  the empty string), or it sits in a flow collection and holds one of `,:?[]{}#` (libyaml
  refuses `[09:00]` and `[why?]`).
  Single quotes are preferred; double quotes only where an escape is needed (control
  characters, `\\r`, the Unicode line separators, a byte-order mark).
- A string with line breaks is a literal block (`|`, with the chomping and indentation
  indicators it needs), unless it holds characters only an escape can carry.
- A one-line string too long for its line is a folded block (`>-`), broken at single spaces
  so that it reads back unchanged; one without such spaces (or with tabs, or leading or
  trailing spaces) stays on one line. Nothing else is ever wrapped.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import CommentMark
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tag import Tag
from ruamel.yaml.tokens import CommentToken

from dsl.yaml_loader import resolve_plain_scalar

SCHEMA_COMMENT_PREFIX: Final = "# yaml-language-server: $schema="
# Where the schema sits as seen from a pack file in `examples/workflows/<pack>/`.
DEFAULT_SCHEMA_LINE: Final = SCHEMA_COMMENT_PREFIX + "../../../schemas/pack.schema.json"
DEFAULT_WIDTH: Final = 100
# Flow collections nest at most this deep: `{label: {en: x, zh: y}}` is 2.
MAX_FLOW_NESTING: Final = 2
# ruamel folds long scalars and flow collections at its `width`; we never want that (layout is
# decided here, and a long message reads better on one line), so the emitter's width is huge.
NO_WRAP: Final = 1 << 20

MAPPING_INDENT: Final = 2
SEQUENCE_INDENT: Final = 4
SEQUENCE_DASH_OFFSET: Final = 2

_TAG = "tag:yaml.org,2002:"


class CoreResolver(VersionedResolver):
    """Resolve plain scalars exactly as `dsl.yaml_loader` does (YAML 1.2 core schema).

    ruamel's own 1.2 rules differ from the loader's in corners (`1_000`, `017` and `0b1` are
    integers to ruamel, strings or decimal to us; `2026-01-01` is a timestamp to ruamel). Using
    the loader's rules both when emitting (a string is quoted exactly when it would otherwise be
    read as something else) and when loading round-trip keeps the two in step.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            if value == "<<":
                return Tag(suffix=_TAG + "merge")
            return Tag(suffix=_TAG + _plain_type(value))
        if kind is ScalarNode:
            implicit = (False, implicit[1])
        return super().resolve(kind, value, implicit)


def _plain_type(text: str) -> str:
    value = resolve_plain_scalar(text)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


# -- scalars read from a file keep their spelling ------------------------------------------


class SpelledInt(int):
    """An integer read from a file; written back as spelled there (`0x1f`, `+1`, `017`)."""

    text: str

    def __new__(cls, value: int, text: str) -> SpelledInt:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


class SpelledFloat(float):
    """A float read from a file; written back as spelled there (`1e3`, `.5`, `1.10`)."""

    text: str

    def __new__(cls, value: float, text: str) -> SpelledFloat:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


class SpelledBool(int):
    """A boolean read from a file (`True`, `FALSE`); `bool(x)` is its value."""

    text: str

    def __new__(cls, value: bool, text: str) -> SpelledBool:
        obj = super().__new__(cls, int(value))
        obj.text = text
        return obj


class SpelledNull:
    """A null read from a file (`~`, `Null`, or nothing at all)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"SpelledNull({self.text!r})"


SPELLED = (SpelledInt, SpelledFloat, SpelledBool, SpelledNull)


class CoreConstructor(RoundTripConstructor):
    """Builds plain scalars with the loader's values, remembering how they were spelled.

    ruamel's own round-trip numbers re-format themselves (and a float can lose its last digit);
    `True` and `~` would come back as `true` and `null`. Keeping the text keeps untouched lines
    byte-identical.
    """

    def construct_spelled(self, node: Any) -> Any:
        text = str(node.value)
        value = resolve_plain_scalar(text)
        if value is None:
            return SpelledNull(text)
        if isinstance(value, bool):
            return SpelledBool(value, text)
        if isinstance(value, int):
            return SpelledInt(value, text)
        if isinstance(value, float):
            return SpelledFloat(value, text)
        return text


for _kind in ("null", "bool", "int", "float"):
    CoreConstructor.add_constructor(_TAG + _kind, CoreConstructor.construct_spelled)


class CoreRepresenter(RoundTripRepresenter):
    """Writes None as `null`, floats so they read back exactly, spelled scalars as spelled."""

    def ignore_aliases(self, data: Any) -> bool:
        if isinstance(data, SPELLED):
            return True
        return bool(super().ignore_aliases(data))

    def represent_plain_none(self, _data: None) -> Any:
        # ruamel writes None as nothing (`key:`); `null` is explicit and reads the same.
        return self.represent_scalar(_TAG + "null", "null")

    def represent_exact_float(self, data: float) -> Any:
        if math.isnan(data):
            text = ".nan"
        elif math.isinf(data):
            text = ".inf" if data > 0 else "-.inf"
        else:
            text = repr(data)  # the shortest text that reads back to the same float
        return self.represent_scalar(_TAG + "float", text)

    def represent_spelled(self, data: Any) -> Any:
        kind = {SpelledInt: "int", SpelledFloat: "float", SpelledBool: "bool"}.get(
            type(data), "null"
        )
        return self.represent_scalar(_TAG + kind, data.text)


CoreRepresenter.add_representer(type(None), CoreRepresenter.represent_plain_none)
CoreRepresenter.add_representer(float, CoreRepresenter.represent_exact_float)
for _spelled in SPELLED:
    CoreRepresenter.add_representer(_spelled, CoreRepresenter.represent_spelled)


def make_yaml(
    mapping: int = MAPPING_INDENT,
    sequence: int = SEQUENCE_INDENT,
    offset: int = SEQUENCE_DASH_OFFSET,
) -> YAML:
    """A round-trip ruamel.yaml instance with the loader's scalar rules and no line wrapping.

    Only ever use it on text that `dsl.yaml_loader.load_yaml_text` accepted (it does not refuse
    tags or alias bombs itself).
    """
    yaml = YAML(typ="rt")
    yaml.Resolver = CoreResolver
    yaml.Constructor = CoreConstructor
    yaml.Representer = CoreRepresenter
    yaml.preserve_quotes = True
    yaml.allow_unicode = True
    yaml.width = NO_WRAP
    # `[{a: 1}]` stays as written; ruamel would shorten it to `[a: 1]`.
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def dump_yaml(yaml: YAML, node: Any) -> str:
    """Emit a ruamel node tree to text."""
    out = io.StringIO()
    yaml.dump(node, out)
    return out.getvalue()


def schema_line(schema: str) -> str:
    """The editor's schema comment for `schema` (a path relative to the file, or a URL)."""
    return SCHEMA_COMMENT_PREFIX + schema


# -- scalars ---------------------------------------------------------------------------------

# Characters a plain or single-quoted scalar cannot carry as they are: YAML non-printables
# (C0/C1 controls but tab and line feed, DEL), carriage return and the other line breaks a
# parser folds (NEL, LS, PS), and the byte-order mark. They need a double-quoted escape.
_ESCAPE_ONLY = frozenset(
    [chr(c) for c in range(0x20) if c not in (0x09, 0x0A)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u2028", "\u2029", "\ufeff", "\ufffe", "\uffff"]
)
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
# libyaml ends a plain scalar in a flow collection at any of these (YAML 1.1 rules).
_FLOW_SPECIAL = frozenset(",:?[]{}#")


def _needs_escape(text: str) -> bool:
    return any(ch in _ESCAPE_ONLY or unicodedata.category(ch) == "Cs" for ch in text)


def _literal_ok(text: str) -> bool:
    """Whether a literal block carries the text exactly and unambiguously.

    Trailing spaces and whitespace-only lines are legal in a block but invisible and fragile
    (and a whitespace-only first line trips indentation detection); a line starting with a tab
    reads as tab indentation to libyaml; trailing empty lines (`|+`) run into what follows; a
    first line that is empty or starts with a space needs an indentation indicator. Such strings
    get a double-quoted escape instead.
    """
    if not text.strip() or text.endswith("\n\n") or text[0] in " \n":
        return False  # `|+`, or an indentation indicator (`|2`), which ruamel gets wrong in lists
    return all(
        line == line.rstrip(" \t") and not line.startswith("\t") for line in text.split("\n")
    )


def scalar_node(value: Any, *, flow: bool, key: bool = False) -> Any:
    """The ruamel value for one scalar: plain where safe, else with the style it needs."""
    if not isinstance(value, str) or isinstance(value, bool):
        return value
    if _needs_escape(value):
        return DoubleQuotedScalarString(value)
    if "\n" in value:
        if flow or key or not _literal_ok(value):
            return DoubleQuotedScalarString(value)
        return LiteralScalarString(value)
    if flow and any(ch in _FLOW_SPECIAL for ch in value):
        # libyaml (our loader's parser) ends a plain scalar in a flow collection at `:` or `?`
        # even without a following space, where ruamel would write it plain.
        return SingleQuotedScalarString(value)
    return value  # ruamel quotes it when syntax or the resolver (CoreResolver) requires


def display_width(text: str) -> int:
    """Columns the text takes in an editor: wide (CJK) characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _plain_ok(text: str, flow: bool) -> bool:
    if not text or text != text.strip() or _plain_type(text) != "str":
        return False
    if text[0] in _INDICATORS or ": " in text or " #" in text or text.endswith(":"):
        return False
    return not (flow and any(ch in _FLOW_SPECIAL for ch in text))


def _scalar_width(value: Any, flow: bool) -> int | None:
    """Estimated width of a scalar on one line, or None when it cannot sit on one line."""
    if value is None:
        return 4
    if isinstance(value, bool):
        return 4 if value else 5
    if isinstance(value, int):
        return len(str(value))
    if isinstance(value, float):
        return len(repr(value)) + 1
    text = str(value)
    if "\n" in text:
        return None
    if _needs_escape(text):
        return len(text.encode("unicode_escape")) + 2
    if _plain_ok(text, flow):
        return display_width(text)
    return display_width(text) + 2 + text.count("'")


def fold_positions(text: str, room: int) -> list[int]:
    """Where to break a long one-line string (indices of single spaces) so lines fit `room`.

    Only a single space between two non-space characters is a fold point: a folded block reads
    each such line break back as one space, so the text is unchanged.
    """
    folds: list[int] = []
    start = 0
    candidate: int | None = None
    column = 0  # display width of text[start:i]
    for i, ch in enumerate(text):
        if ch == " " and 0 < i < len(text) - 1 and text[i - 1] != " " and text[i + 1] != " ":
            if column > room and candidate is not None:
                folds.append(candidate)
                column -= display_width(text[start : candidate + 1])
                start = candidate + 1
            candidate = i
        column += display_width(ch)
    if column > room and candidate is not None and candidate >= start:
        folds.append(candidate)
    return folds


# -- layout ----------------------------------------------------------------------------------


def _nesting(value: Any) -> int:
    if isinstance(value, Mapping):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    if is_list(value):
        return 1 + max((_nesting(v) for v in value), default=0)
    return 0


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def flow_width(value: Any) -> int | None:
    """Width of `value` written in flow style on one line, or None if it cannot be."""
    if isinstance(value, Mapping):
        parts: list[int] = []
        for k, v in value.items():
            kw, vw = _scalar_width(k, True), flow_width(v)
            if kw is None or vw is None:
                return None
            parts.append(kw + 2 + vw)
        return 2 + sum(parts) + 2 * max(len(parts) - 1, 0)
    if is_list(value):
        items = [flow_width(v) for v in value]
        if any(w is None for w in items):
            return None
        return 2 + sum(w for w in items if w is not None) + 2 * max(len(items) - 1, 0)
    return _scalar_width(value, True)


class Layout:
    """Builds ruamel nodes (CommentedMap/CommentedSeq, styled scalars) from plain data."""

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        self.width = width

    def wants_flow(self, value: Any, *, depth: int, used: int, list_item: bool = False) -> bool:
        """Whether a collection at `depth` whose line already has `used` columns goes flow."""
        if not value:
            return True  # `{}` and `[]` have no block form
        if depth == 0:
            return False
        if list_item and is_list(value):
            # A list in a list: `- [a, b]` reads better than ruamel's `-   - a`, at any length
            # (multi-line strings in it are escaped), and ruamel loses a blank line after a
            # nested block list when it reads the text back.
            return True
        nesting = _nesting(value)
        if nesting > MAX_FLOW_NESTING or (depth == 1 and nesting > 1):
            return False
        if isinstance(value, Mapping):
            values = list(value.values())
            if len(values) >= 2 and all(isinstance(v, Mapping) for v in values):
                return False
            if (
                list_item
                and len(values) == 1
                and (isinstance(values[0], Mapping) or is_list(values[0]))
            ):
                return False
        width = flow_width(value)
        return width is not None and used + width <= self.width

    def node(
        self,
        value: Any,
        *,
        depth: int = 0,
        indent: int = 0,
        used: int = 0,
        flow: bool = False,
        list_item: bool = False,
    ) -> Any:
        """The ruamel node for `value`.

        `depth` is how deep the value sits below the document root, `indent` the column its
        block entries would start at, `used` the columns its first line already has (for
        `key: ` or `- `), `flow` whether it sits inside a flow collection.
        """
        if isinstance(value, Mapping):
            return self._mapping(value, depth, indent, used, flow, list_item)
        if is_list(value):
            return self._sequence(value, depth, indent, used, flow, list_item)
        if isinstance(value, str) and not flow:
            return self._block_string(value, indent, used)
        if value is None or isinstance(value, str | bool | int | float):
            return scalar_node(value, flow=flow)
        raise TypeError(f"cannot write a {type(value).__name__} as YAML: {value!r}")

    def _block_string(self, text: str, indent: int, used: int) -> Any:
        """A string value in block context: folded (`>-`) when it is too long for its line."""
        styled = scalar_node(text, flow=False)
        if styled is not text or used + display_width(text) <= self.width:
            return styled
        if text != text.strip() or "\t" in text:
            return styled
        folds = fold_positions(text, max(self.width - indent, 40))
        if not folds:
            return styled
        folded = FoldedScalarString(text)
        folded.fold_pos = folds
        return folded

    def key(self, key: Any, *, flow: bool) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"mapping keys must be strings, not {type(key).__name__}: {key!r}")
        return scalar_node(key, flow=flow, key=True)

    def _mapping(
        self,
        value: Mapping[Any, Any],
        depth: int,
        indent: int,
        used: int,
        flow: bool,
        list_item: bool,
    ) -> CommentedMap:
        out = CommentedMap()
        flow = flow or self.wants_flow(value, depth=depth, used=used, list_item=list_item)
        if flow:
            out.fa.set_flow_style()
        else:
            out.fa.set_block_style()
        for k, v in value.items():
            key = self.key(k, flow=flow)
            used_here = indent + (_scalar_width(k, flow) or 0) + 2
            if not flow and is_list(v) and v:
                child_indent = indent + SEQUENCE_DASH_OFFSET
            else:
                child_indent = indent + MAPPING_INDENT
            out[key] = self.node(v, depth=depth + 1, indent=child_indent, used=used_here, flow=flow)
        return out

    def _sequence(
        self,
        value: Sequence[Any],
        depth: int,
        indent: int,
        used: int,
        flow: bool,
        list_item: bool,
    ) -> CommentedSeq:
        out = CommentedSeq()
        flow = flow or self.wants_flow(value, depth=depth, used=used, list_item=list_item)
        if flow:
            out.fa.set_flow_style()
        else:
            out.fa.set_block_style()
        item_indent = indent + (SEQUENCE_INDENT - SEQUENCE_DASH_OFFSET)
        for item in value:
            out.append(
                self.node(
                    item,
                    depth=depth + 1,
                    indent=item_indent,
                    used=item_indent,
                    flow=flow,
                    list_item=True,
                )
            )
        return out


def is_block_section(node: Any) -> bool:
    """A top-level value that spreads over lines and holds collections of its own."""
    if not isinstance(node, CommentedMap | CommentedSeq) or node.fa.flow_style():
        return False
    children = node.values() if isinstance(node, CommentedMap) else node
    return any(isinstance(c, CommentedMap | CommentedSeq) for c in children)


def blank_line() -> CommentToken:
    """A comment token that emits as an empty line."""
    return CommentToken("\n", CommentMark(0))


def write_yaml(
    data: Mapping[str, Any],
    schema_line: str | None = DEFAULT_SCHEMA_LINE,
    *,
    width: int = DEFAULT_WIDTH,
) -> str:
    """Canonical YAML text for plain pack data (see the module docstring for the style).

    `schema_line` is the first line, e.g. `DEFAULT_SCHEMA_LINE`; a value without a leading `#`
    is taken as the schema's path or URL. None leaves it out. Raises TypeError for data that is
    not plain (non-string keys, dates, objects).
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a pack document is a mapping, not {type(data).__name__}")
    root = Layout(width).node(data)
    assert isinstance(root, CommentedMap)
    previous: Any = None
    for index, (key, value) in enumerate(root.items()):
        if index > 0 and (is_block_section(value) or is_block_section(previous)):
            root.ca.items[key] = [None, [blank_line()], None, None]
        previous = value
    if schema_line:
        line = schema_line if schema_line.startswith("#") else SCHEMA_COMMENT_PREFIX + schema_line
        root.yaml_set_start_comment(line)
    return dump_yaml(make_yaml(), root)
