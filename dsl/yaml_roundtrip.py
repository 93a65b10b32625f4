"""Edit a YAML pack file in place, keeping the admin's comments, key order and quoting.

`RoundTripYaml` wraps ruamel.yaml's round-trip mode behind a small API addressed by paths
(tuples of keys and list indices, as in `dsl.source_map`):

    doc = RoundTripYaml.parse(text)
    doc.get(("templates", "repair", "fields", "priority", "default"))     # plain data
    doc.set(("templates", "repair", "fields", "priority", "default"), "P2")
    doc.rename_key(("templates", "repair", "fields", "priority"), "urgency")
    doc.delete(("roles", "admin"))
    doc.insert(("locales",), 0, "de")
    text = doc.dump()

What is kept and how edits treat comments:

- Text is first checked by `dsl.yaml_loader.load_yaml_text` (size, nesting, aliases, tags,
  duplicate keys, syntax); anything it refuses raises `RoundTripError` with its diagnostics.
  Plain scalars are then read with the loader's YAML 1.2 core rules, so `get` returns exactly
  the data the loader would (`09:00`, `yes` and `2026-01-01` are strings).
- Untouched entries keep their comments, order, quoting and flow/block style. Edits keep the
  file's indentation (guessed from the text); `format_yaml` rewrites it to the canonical one.
  ruamel.yaml re-emits the whole file, so a few things are normalised on the first edit:
  extra spaces between a key and its value (`asset:    {type: asset}`), a flow collection
  spread over several lines (joined into one), inconsistent indentation.
- `set` changes as little as it can: setting a mapping onto a mapping updates keys in place
  (existing keys keep their place and comments, missing keys are deleted, new keys are
  appended at the end), lists are updated item by item, and an unchanged scalar keeps its
  text (`0x1f`, `'quoted'`). A changed string keeps the quote style it had when it can.
- `set` and `insert` write new values in the canonical style of `dsl.yaml_writer`.
- `delete` removes the entry with its end-of-line comment and the comments inside its value
  (they describe what is gone) but keeps every full-line comment above and below it in place.
- Comment lines that trail an entry (before its next sibling, or at the end of its mapping) stay
  there when an entry is added after it or the entry's value changes kind.
- Anchors and aliases are kept; editing an anchored node changes every alias of it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq, merge_attrib
from ruamel.yaml.compat import ordereddict
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.events import ScalarEvent
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    ScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken

from dsl.diagnostics import Diagnostic, Span
from dsl.source_map import JsonPath, json_pointer
from dsl.yaml_loader import LoadLimits, load_yaml_text
from dsl.yaml_writer import (
    DEFAULT_WIDTH,
    MAPPING_INDENT,
    SEQUENCE_DASH_OFFSET,
    SEQUENCE_INDENT,
    Layout,
    SpelledBool,
    SpelledNull,
    blank_line,
    dump_yaml,
    is_block_section,
    is_list,
    make_yaml,
    scalar_node,
)

# Slots of a ruamel comment entry (`ca.items[key]`): a mapping entry's comment lines before
# the key, and what follows its value (the end-of-line comment, then any full-line comments
# before the next entry); a sequence item's equivalents.
_MAP_PRE: Final = 1
_MAP_POST: Final = 2
_SEQ_PRE: Final = 1
_SEQ_POST: Final = 0


class RoundTripError(ValueError):
    """The text cannot be edited: it is refused by the loader or cannot be parsed."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        first = diagnostics[0].message if diagnostics else "invalid YAML"
        super().__init__(first)
        self.diagnostics = diagnostics


class YamlPathError(LookupError):
    """A path that does not lead where the operation needs it to."""

    def __init__(self, path: JsonPath, message: str) -> None:
        super().__init__(f"{json_pointer(path) or '/'}: {message}")
        self.path = path


def to_plain(node: Any) -> Any:
    """Plain data (dict, list, str, int, float, bool, None) from a ruamel round-trip node."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {str(k): to_plain(v) for k, v in _own_items(node)}
        for merged in _merged_mappings(node):
            for k, v in to_plain(merged).items():
                out.setdefault(k, v)
        return out
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, SpelledNull):
        return None
    if isinstance(node, bool | ScalarBoolean | SpelledBool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _own_items(node: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, CommentedMap):
        yield from node.non_merged_items()
    else:
        yield from node.items()


def _owns(node: Mapping[Any, Any], key: Any) -> bool:
    """Whether `key` is written in this mapping (not only merged in with `<<`)."""
    return any(k == key for k, _v in _own_items(node))


def _merged_mappings(node: Any) -> list[Any]:
    merged = getattr(node, merge_attrib, None)
    if not merged:
        return []
    out: list[Any] = []
    for entry in merged:
        value = entry[1] if isinstance(entry, tuple) else entry
        if isinstance(value, Mapping):
            out.append(value)
    return out


def _same_scalar(old: Any, new: Any) -> bool:
    plain = to_plain(old)
    return type(plain) is type(new) and plain == new


def _is_container(node: Any) -> bool:
    return isinstance(node, CommentedMap | CommentedSeq)


def _is_block(node: Any) -> bool:
    return _is_container(node) and len(node) > 0 and not node.fa.flow_style()


# -- comment plumbing ------------------------------------------------------------------------


def _slots(container: Any) -> tuple[int, int]:
    """(pre, post) slot indices of a container's comment entries."""
    return (_SEQ_PRE, _SEQ_POST) if isinstance(container, list) else (_MAP_PRE, _MAP_POST)


def _token_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(_token_text(v) for v in value)
    return str(value.value)


def _lines_text(tokens: Any) -> str:
    """Text of full-line comment tokens (one line each, indented by their column)."""
    if tokens is None:
        return ""
    if not isinstance(tokens, list):
        tokens = [tokens]
    out = []
    for token in tokens:
        text = str(token.value)
        column = token.start_mark.column if text.strip() else 0
        out.append(" " * column + text)
    return "".join(out)


def _last_key(container: Any) -> Any:
    if isinstance(container, list):
        return len(container) - 1
    return next(reversed(list(container.keys())))


def _deep_last(container: Any, key: Any) -> tuple[list[Any], Any, Any]:
    """Where what follows the last line of `container[key]` is kept.

    Returns the block collections entered on the way down (the value of `container[key]`, its
    last value, ...; each may hold comments after its end in `ca.end`) and the deepest entry
    (whose post slot holds comments after its line).
    """
    inner: list[Any] = []
    while _is_block(container[key]):
        container = container[key]
        inner.append(container)
        key = _last_key(container)
    return inner, container, key


def _take_trailing(container: Any, key: Any) -> str:
    """Remove and return the full-line comments (and blank lines) after an entry's last line.

    The entry's own end-of-line comment stays where it is.
    """
    if not len(container):
        return ""
    inner, holder, hkey = _deep_last(container, key)
    _pre, post = _slots(holder)
    entry = holder.ca.items.get(hkey)
    rest = ""
    if entry is not None and entry[post] is not None:
        text = _token_text(entry[post])
        cut = text.find("\n")
        if cut >= 0:
            eol, rest = text[: cut + 1], text[cut + 1 :]
            first = entry[post][0] if isinstance(entry[post], list) else entry[post]
            entry[post] = CommentToken(eol, first.start_mark) if eol.strip() else None
    for collection in reversed(inner):  # innermost ends first
        if collection.ca.end:
            rest += _lines_text(collection.ca.end)
            collection.ca.end = []
    return rest


def _append_trailing(container: Any, key: Any, lines: str) -> None:
    """Add full-line comments after the last line of `container[key]` (after any already there)."""
    if not lines:
        return
    lines = _take_trailing(container, key) + lines
    _inner, holder, hkey = _deep_last(container, key)
    _pre, post = _slots(holder)
    entry = holder.ca.items.setdefault(hkey, [None, None, None, None])
    current = entry[post]
    if current is None:
        entry[post] = CommentToken("\n" + lines, CommentMark(0))
    else:
        first = current[0] if isinstance(current, list) else current
        entry[post] = CommentToken(_token_text(current) + lines, first.start_mark)


def _line_tokens(lines: str) -> list[CommentToken]:
    tokens: list[CommentToken] = []
    for line in lines.splitlines():
        stripped = line.lstrip(" ")
        if not stripped:
            tokens.append(blank_line())
        else:
            tokens.append(CommentToken(stripped + "\n", CommentMark(len(line) - len(stripped))))
    return tokens


def _take_pre(container: Any, key: Any) -> str:
    pre, _post = _slots(container)
    entry = container.ca.items.get(key)
    if entry is None or not entry[pre]:
        return ""
    text = _lines_text(entry[pre])
    entry[pre] = None
    return text


def _prepend_pre(container: Any, key: Any, lines: str) -> None:
    if not lines:
        return
    pre, _post = _slots(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    existing = entry[pre] or []
    entry[pre] = _line_tokens(lines) + list(existing)


# -- indentation -----------------------------------------------------------------------------

_ITEM = re.compile(r"^( *)((?:- +)*)(.*)$")


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) a file uses; the canonical ones if unsure.

    Looked for under the first keys that open a block (`key:` alone on its line).
    """
    mapping: int | None = None
    sequence: int | None = None
    offset: int | None = None
    opener: int | None = None  # column of the key of the previous line, if it opens a block
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ITEM.match(line)
        assert match is not None
        indent, dashes, content = match.groups()
        if opener is not None:
            if dashes and offset is None:
                offset = len(indent) - opener
                sequence = len(indent) + len(dashes.split("-")[1]) + 1 - opener
            elif not dashes and mapping is None and len(indent) > opener:
                mapping = len(indent) - opener
        if mapping is not None and offset is not None:
            break
        body = content.split(" #", 1)[0].rstrip()
        opener = len(indent) + len(dashes) if body.endswith(":") else None
    mapping = mapping or MAPPING_INDENT
    if offset is None or sequence is None or offset < 0 or sequence < offset + 2:
        return mapping, SEQUENCE_INDENT, SEQUENCE_DASH_OFFSET
    return mapping, sequence, offset


# -- the document ----------------------------------------------------------------------------


class RoundTripYaml:
    """A parsed YAML file that can be edited by path and dumped with its comments intact."""

    def __init__(
        self,
        root: Any,
        indent: tuple[int, int, int],
        width: int = DEFAULT_WIDTH,
        comments: str = "",
    ) -> None:
        self._root = root
        # The comment lines of a document without content, which ruamel has nowhere to keep.
        self._comments = comments if root is None else ""
        self._indent = indent
        self._yaml = make_yaml(*indent)
        self._layout = Layout(width)

    @classmethod
    def parse(
        cls,
        text: str,
        path: str = "<string>",
        limits: LoadLimits | None = None,
        *,
        indent: tuple[int, int, int] | None = None,
    ) -> RoundTripYaml:
        """Parse `text` after the loader's safety checks; raise RoundTripError if refused.

        `indent` (mapping, sequence, dash offset) is what edits are written with; by default
        the one the text already uses.
        """
        _doc, diagnostics = load_yaml_text(text, path, limits)
        if diagnostics:
            raise RoundTripError(diagnostics)
        indent = indent or guess_indent(text)
        yaml = make_yaml(*indent)
        try:
            root = yaml.load(text)
        except YAMLError as exc:  # the loader accepted it, so this is unexpected
            mark = getattr(exc, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            raise RoundTripError(
                [Diagnostic("yaml-syntax", " ".join(str(exc).split()), Span(path, line, column))]
            ) from None
        comments = "".join(
            line + "\n" for line in text.splitlines() if not line.strip() or line.lstrip()[0] == "#"
        )
        return cls(root, indent, comments=comments.strip("\n") + "\n" if comments.strip() else "")

    # -- reading -------------------------------------------------------------------------
    @property
    def data(self) -> Any:
        """The whole document as plain data."""
        return to_plain(self._root)

    def get(self, path: JsonPath = ()) -> Any:
        """Plain data at `path`; YamlPathError if there is nothing there."""
        return to_plain(self._node(path))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, tuple):
            return False
        try:
            self._node(path)
        except YamlPathError:
            return False
        return True

    def _node(self, path: JsonPath) -> Any:
        node = self._root
        for depth, step in enumerate(path):
            node = self._child(node, step, path[: depth + 1])
        return node

    @staticmethod
    def _child(node: Any, step: str | int, where: JsonPath) -> Any:
        if isinstance(node, Mapping):
            if not isinstance(step, str):
                raise YamlPathError(where, f"a mapping is indexed by key, not {step!r}")
            if step not in node:
                raise YamlPathError(where, f"no key '{step}'")
            return node[step]
        if isinstance(node, list):
            if not isinstance(step, int) or isinstance(step, bool):
                raise YamlPathError(where, f"a list is indexed by position, not {step!r}")
            if not 0 <= step < len(node):
                raise YamlPathError(where, f"index {step} out of range (length {len(node)})")
            return node[step]
        raise YamlPathError(where, "a scalar has no children")

    # -- editing ---------------------------------------------------------------------------
    def set(self, path: JsonPath, value: Any) -> None:
        """Make the data at `path` equal `value`, changing as little text as possible.

        Missing mappings on the way are created; a new key goes at the end of its mapping.
        Setting index `len(list)` appends.
        """
        if not path:
            self._set_root(value)
            return
        if self._root is None:
            self._root = self._new_root(CommentedMap())
        node, owner = self._root, None
        for depth, step in enumerate(path[:-1]):
            if isinstance(node, CommentedMap) and isinstance(step, str) and not _owns(node, step):
                # Create what is missing as one nested value, laid out as a whole.
                nested = value
                for later in reversed(path[depth + 1 :]):
                    if not isinstance(later, str):
                        raise YamlPathError(path, "only mappings are created on the way")
                    nested = {later: nested}
                self._set_in(node, step, nested, owner, path[: depth + 1])
                return
            owner = (node, step)
            node = self._child(node, step, path[: depth + 1])
        self._set_in(node, path[-1], value, owner, path)

    def delete(self, path: JsonPath) -> None:
        """Remove the entry at `path` (a mapping key or a list item)."""
        if not path:
            raise YamlPathError(path, "cannot delete the document itself")
        parent = self._node(path[:-1])
        self._child(parent, path[-1], path)
        if isinstance(parent, Mapping) and not _owns(parent, path[-1]):
            raise YamlPathError(path, "the key comes from a merge ('<<'); delete it there")
        self._delete_entry(parent, path[-1], self._owner(path[:-1]))

    def rename_key(self, path: JsonPath, new_name: str) -> None:
        """Rename the mapping key at `path`, keeping its position, value and comments."""
        if not path:
            raise YamlPathError(path, "the document has no key")
        parent = self._node(path[:-1])
        old = path[-1]
        if not isinstance(parent, CommentedMap):
            raise YamlPathError(path, "only a mapping key can be renamed")
        self._child(parent, old, path)
        if not _owns(parent, old):
            raise YamlPathError(path, "the key comes from a merge ('<<'); rename it there")
        if new_name == old:
            return
        if new_name in parent:
            raise YamlPathError((*path[:-1], new_name), "key already exists")
        keys = list(parent.keys())
        position = keys.index(old)
        comments = parent.ca.items.pop(old, None)
        value = parent[old]
        old_key = keys[position]
        del parent[old]
        new_key: Any = scalar_node(new_name, flow=bool(parent.fa.flow_style()), key=True)
        if isinstance(old_key, SingleQuotedScalarString | DoubleQuotedScalarString) and not (
            isinstance(new_key, ScalarString)
        ):
            new_key = type(old_key)(new_name)
        parent.insert(position, new_key, value)
        if comments is not None:
            parent.ca.items[new_key] = comments

    def insert(self, path: JsonPath, index: int, value: Any) -> None:
        """Insert `value` into the list at `path` before position `index` (len appends)."""
        seq = self._node(path)
        if not isinstance(seq, CommentedSeq):
            raise YamlPathError(path, "not a list")
        if not 0 <= index <= len(seq):
            raise YamlPathError((*path, index), f"index out of range (length {len(seq)})")
        self._set_in(seq, index, value, self._owner(path), (*path, index), insert=True)

    def dump(self) -> str:
        """The document as text."""
        if self._root is None:
            return self._comments
        return dump_yaml(self._yaml, self._root)

    # -- internals -------------------------------------------------------------------------
    def _owner(self, path: JsonPath) -> Owner:
        """The (container, key) entry that holds the node at `path`; None for the root."""
        if not path:
            return None
        return self._node(path[:-1]), path[-1]

    def _new_root(self, root: Any) -> Any:
        """Install a root where the document had none, keeping its comment lines on top."""
        if self._comments and isinstance(root, CommentedBase):
            root._yaml_get_pre_comment().extend(_line_tokens(self._comments))
        self._comments = ""
        return root

    def _set_root(self, value: Any) -> None:
        root = self._root
        if isinstance(root, CommentedMap) and len(root) and isinstance(value, Mapping):
            self._update_mapping(root, value, 0, None)
        elif isinstance(root, CommentedSeq) and len(root) and is_list(value):
            self._update_sequence(root, value, 0, None)
        else:
            comments = getattr(root, "ca", None)
            self._root = self._new_root(self._layout.node(value))
            if comments is not None and isinstance(self._root, CommentedBase):
                # Keep the comments at the top of the file.
                self._root.ca.comment = comments.comment

    def _set_in(
        self,
        container: Any,
        key: str | int,
        value: Any,
        owner: Owner,
        path: JsonPath,
        *,
        insert: bool = False,
    ) -> None:
        depth = len(path)
        if isinstance(container, CommentedMap):
            if not isinstance(key, str):
                raise YamlPathError(path, f"a mapping is indexed by key, not {key!r}")
            if _owns(container, key):
                self._update_entry(container, key, value, depth)
            elif owner is not None and _is_empty(container):
                self._update_entry(*owner, {key: value}, depth - 1)  # re-lay `{}` as a whole
            else:
                self._add_entry(container, key, value, depth)
            return
        if not isinstance(container, CommentedSeq):
            raise YamlPathError(path[:-1], "a scalar has no children")
        if not isinstance(key, int) or isinstance(key, bool):
            raise YamlPathError(path, f"a list is indexed by position, not {key!r}")
        if not 0 <= key <= len(container):
            raise YamlPathError(path, f"index {key} out of range (length {len(container)})")
        if key < len(container) and not insert:
            self._update_entry(container, key, value, depth)
        elif owner is not None and not len(container):
            self._update_entry(*owner, [value], depth - 1)  # re-lay `[]` as a whole
        else:
            self._insert_item(container, key, value, depth)

    def _build(self, value: Any, container: Any, key: Any, depth: int) -> Any:
        flow = bool(container.fa.flow_style())
        mapping, sequence, offset = self._indent
        indent = _column(container, depth, mapping)
        if isinstance(container, list):
            used = indent + (sequence - offset)
            return self._layout.node(
                value, depth=depth, indent=used, used=used, flow=flow, list_item=True
            )
        used = indent + len(str(key)) + 2
        child_indent = indent + (offset if is_list(value) and value else mapping)
        return self._layout.node(value, depth=depth, indent=child_indent, used=used, flow=flow)

    def _update_entry(self, container: Any, key: Any, value: Any, depth: int) -> None:
        old = container[key]
        owner = (container, key)
        if isinstance(old, CommentedMap) and isinstance(value, Mapping) and not _is_empty(old):
            self._update_mapping(old, value, depth, owner)
            return
        if isinstance(old, CommentedSeq) and is_list(value) and len(old):
            self._update_sequence(old, value, depth, owner)
            return
        if not value and (
            (isinstance(old, CommentedMap) and isinstance(value, Mapping))
            or (isinstance(old, CommentedSeq) and is_list(value))
        ):
            return  # `{}` stays `{}`, `[]` stays `[]`
        if not _is_container(old) and not (isinstance(value, Mapping) or is_list(value)):
            if _same_scalar(old, value):
                return
            styled = scalar_node(value, flow=bool(container.fa.flow_style()))
            if (
                isinstance(value, str)
                and not isinstance(styled, ScalarString)
                and isinstance(old, SingleQuotedScalarString | DoubleQuotedScalarString)
            ):
                styled = type(old)(value)  # keep the admin's quotes
            _store(container, key, styled)
            return
        # The value changes kind (or an empty collection fills): lay it out anew, keeping the
        # comments that trail the old value.
        trailing = _take_trailing(container, key)
        _store(container, key, self._build(value, container, key, depth))
        _append_trailing(container, key, trailing)

    def _update_mapping(
        self, node: CommentedMap, value: Mapping[Any, Any], depth: int, owner: Owner
    ) -> None:
        gone = [k for k, _v in _own_items(node) if k not in value]
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, not {type(key).__name__}")
            if _owns(node, key):
                self._update_entry(node, key, item, depth + 1)
            else:
                self._add_entry(node, key, item, depth + 1)
        # Deleting last: the mapping only empties if the new value is empty.
        for key in gone:
            self._delete_entry(node, key, owner)

    def _update_sequence(
        self, node: CommentedSeq, value: list[Any], depth: int, owner: Owner
    ) -> None:
        for index in range(min(len(node), len(value))):
            self._update_entry(node, index, value[index], depth + 1)
        while len(node) > len(value):
            self._delete_entry(node, len(node) - 1, owner)
        for item in value[len(node) :]:
            self._insert_item(node, len(node), item, depth + 1)

    def _add_entry(self, node: CommentedMap, key: str, value: Any, depth: int) -> None:
        built = self._build(value, node, key, depth)
        previous = node[_last_key(node)] if len(node) else None
        trailing = _take_trailing(node, _last_key(node)) if len(node) else ""
        styled_key = scalar_node(key, flow=bool(node.fa.flow_style()), key=True)
        node[styled_key] = built
        if (
            node is self._root
            and previous is not None
            and (is_block_section(built) or is_block_section(previous))
        ):
            node.ca.items.setdefault(styled_key, [None, None, None, None])[_MAP_PRE] = [
                blank_line()
            ]
        _append_trailing(node, styled_key, trailing)

    def _insert_item(self, seq: CommentedSeq, index: int, value: Any, depth: int) -> None:
        built = self._build(value, seq, index, depth)
        trailing = _take_trailing(seq, index - 1) if index > 0 else ""
        seq.insert(index, built)
        _append_trailing(seq, index, trailing)

    def _delete_entry(self, container: Any, key: Any, owner: Owner) -> None:
        keys = list(range(len(container))) if isinstance(container, list) else list(container)
        position = keys.index(key)
        # Full-line comments above and below the entry stay; its own lines go.
        kept = _take_pre(container, key) + _take_trailing(container, key)
        if isinstance(container, list):
            del container[key]
        else:
            container.ca.items.pop(key, None)
            del container[key]
        if position > 0:
            _append_trailing(container, keys[position - 1], kept)
        elif len(container):
            first = 0 if isinstance(container, list) else next(iter(container.keys()))
            _prepend_pre(container, first, kept)
        else:
            self._emptied(container, owner, kept)

    def _emptied(self, container: Any, owner: Owner, kept: str) -> None:
        """A collection lost its last entry and becomes `{}`/`[]` on its key's line.

        Comments that stood above its first entry would now sit between the key and the
        `{}`; they move below, with the other kept comments.
        """
        first = _lines_text(container.ca.comment[1]) if container.ca.comment else ""
        container.ca.comment = None
        kept += _lines_text(container.ca.end)
        container.ca.end = []
        container.fa.set_flow_style()  # emitted as `{}` / `[]` in any case
        if owner is None:
            container._yaml_get_pre_comment().extend(_line_tokens(first + kept))
            return
        parent, key = owner
        entry = parent.ca.items.get(key)
        if isinstance(parent, CommentedMap) and entry is not None and entry[3]:
            first = _lines_text(entry[3])
            entry[3] = None
        _append_trailing(parent, key, first + kept)


Owner = tuple[Any, Any] | None


def _is_empty(node: Any) -> bool:
    return _is_container(node) and not len(node) and not _merged_mappings(node)


def _store(container: Any, key: Any, value: Any) -> None:
    """Set an existing entry to exactly `value`.

    CommentedMap/CommentedSeq.__setitem__ re-wrap a plain str in the style of the string it
    replaces, which would turn a new one-line value into a literal block; the value's style was
    already chosen, so bypass that.
    """
    if isinstance(container, list):
        list.__setitem__(container, key, value)
    else:
        ordereddict.__setitem__(container, key, value)


def _column(container: Any, depth: int, mapping_indent: int) -> int:
    """Best guess of the column a container's entries start at."""
    lc = getattr(container, "lc", None)
    col = getattr(lc, "col", None) if lc is not None else None
    if isinstance(col, int):
        return col
    return max(depth - 1, 0) * mapping_indent


def format_yaml(text: str, path: str = "<string>", limits: LoadLimits | None = None) -> str:
    """Canonical formatting of a YAML pack file, keeping comments, key order and quoting.

    - Indentation becomes the canonical one of `dsl.yaml_writer`: mappings 2 spaces, block
      sequences with the dash 2 in and the content 4 in.
    - A full-line comment takes the indentation of the line it precedes (the entry it
      describes); end-of-line comments keep their column where the line leaves room.
    - A flow collection spread over several lines is joined into one; runs of spaces between
      a key and its value shrink to one; the file ends with exactly one line break.
    - Everything else stays as written: key order, flow or block style, quotes, block scalars,
      comments, blank lines, anchors and aliases.

    Formatting its own output changes nothing. Raises RoundTripError for input the loader
    refuses (size, depth, aliases, tags, syntax).
    """
    doc = RoundTripYaml.parse(
        text, path, limits, indent=(MAPPING_INDENT, SEQUENCE_INDENT, SEQUENCE_DASH_OFFSET)
    )
    return _reindent_comments(doc.dump())


def _events(text: str) -> list[Any]:
    """The parse events of `text`. libyaml refuses some valid YAML 1.2 (a plain `08:00` or
    `?` inside `{...}`) that the loader accepted through the pure parser: so does this."""
    try:
        return list(YAML(typ="safe", pure=False).parse(io.StringIO(text)))
    except YAMLError:
        return list(YAML(typ="safe", pure=True).parse(io.StringIO(text)))


def _reindent_comments(text: str) -> str:
    """Indent each full-line comment like the next line of content (the first column at the end).

    Lines inside multi-line scalars (block scalars, quoted strings over several lines) are
    content even if they start with `#`; the parser's marks tell where those are.
    """
    lines = text.splitlines(keepends=True)
    inside: set[int] = set()
    for event in _events(text):
        if isinstance(event, ScalarEvent) and event.end_mark.line > event.start_mark.line:
            inside.update(range(event.start_mark.line + 1, event.end_mark.line + 1))
    indent = 0
    for number in range(len(lines) - 1, -1, -1):
        line = lines[number]
        stripped = line.lstrip(" ")
        if number in inside or not stripped.strip():
            continue
        if stripped.startswith("#"):
            lines[number] = " " * indent + stripped
        else:
            indent = len(line) - len(stripped)
    return "".join(lines)
