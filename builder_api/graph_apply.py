"""Applying an edited workflow graph to a draft's YAML, keeping every comment.

The graph sent back is compared with the graph of the draft as it is; only what differs
is written, key by key, through `RoundTripYaml`, so an unchanged graph leaves the text
exactly as it was and keys the graph does not carry (`do`, `validate`, `customer_label`,
...) are never touched.

How edges become transitions:

- Edges with the same `name` are one transition; its `from` is their `from`s. Edges of one
  transition share everything else; where they disagree, the value that differs from the
  draft wins (a UI may edit one edge of a transition), and two different new values are an
  error.
- An edge's `id` ties it to the transition it was drawn from (`<transition>:<from>`). A
  group of edges whose ids come from transition `a` but named `b` renames `a` to `b` (in
  place, comments kept). When one transition's edges end up under several names, the
  group keeping its name (else the first) stays that transition and the others become new
  transitions starting as copies of it (with its `do` and `validate`). Edges of several
  transitions under one name merge them; the others are removed.
- A transition none of whose edges comes back is removed; a transition the graph cannot
  show (no `from`) is left alone.

States are nodes by name: a node whose id is not a state adds one (at the end of
`states:`), a state without a node is removed. Renaming a state is removing one and
adding another: its comments and unshown keys go with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from builder_api.graph_check import Submitted, check_graph
from builder_api.graph_layout import layout_of, read_saved, write_saved
from builder_api.graph_shapes import (
    DEFAULTS,
    LAYOUT_FILE,
    STATE_KEYS,
    TRANSITION_KEYS,
    DraftError,
    Edit,
    GraphEdge,
    GraphEdit,
    GraphError,
    GraphProblem,
    NodeLayout,
    Position,
    WorkflowNotFound,
    read_edges,
    read_nodes,
    sources,
)
from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.flow_parser import load_flow_text
from dsl.source_map import JsonPath, json_pointer
from dsl.sources import PACK_SUFFIXES
from dsl.yaml_loader import load_yaml_text
from dsl.yaml_roundtrip import RoundTripError, RoundTripYaml, YamlPathError

# A position this close to the computed one was not moved.
SNAP = 0.5


@dataclass(slots=True)
class _Holder:
    """The draft file that defines the workflow, and the workflow's plain data."""

    file: str
    workflow: dict[str, Any]
    locales: list[str]


# A planned change of the document: a `RoundTripYaml` method and its arguments.
_Op = tuple[str, tuple[Any, ...]]


def apply_graph(files: Mapping[str, str], workflow: str, graph: Any) -> GraphEdit:
    """Apply an edited graph of `workflow` to the draft `files` ({file name: text}).

    Raises GraphError listing every problem of the graph (JSON pointers into it),
    WorkflowNotFound, or DraftError when the file holding the workflow cannot be edited.
    Changes nothing when it raises.
    """
    holder = _find(files, workflow)
    before = holder.workflow
    submitted, problems = check_graph(graph, workflow, before.get("initial"))
    if submitted is None or problems:
        raise GraphError(problems)
    writer = _Writer(holder, workflow, before, submitted)
    writer.plan()
    if writer.problems:
        raise GraphError(writer.problems)
    edits = writer.write()
    out = dict(files)
    if writer.ops:
        out[holder.file] = _edited(files[holder.file], holder.file, writer.ops)
    saved = _positions(files, workflow, before, submitted)
    _store_layout(out, files, workflow, saved)
    return GraphEdit(files=out, edits=edits, layout=saved)


def _plain(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _edited(text: str, file: str, ops: list[_Op]) -> str:
    """The text with the planned changes made (parsed for editing only when needed: it
    costs far more than reading)."""
    try:
        doc = RoundTripYaml.parse(text, file)
        for method, args in ops:
            getattr(doc, method)(*args)
    except RoundTripError as exc:
        raise DraftError(exc.diagnostics) from None
    except YamlPathError as exc:  # e.g. a state brought in with a YAML merge (`<<`)
        raise DraftError([Diagnostic("graph-uneditable", str(exc), Span(file, 1, 1))]) from None
    return doc.dump()


# -- finding the workflow ---------------------------------------------------------------


def _find(files: Mapping[str, str], workflow: str) -> _Holder:
    """The file defining `workflow` and its data; the pack's locales from any file."""
    broken: list[Diagnostic] = []
    locales: list[str] = []
    names: list[str] = []
    found: tuple[str, Any] | None = None
    for name, text in files.items():
        suffix = PurePosixPath(name).suffix
        if suffix not in PACK_SUFFIXES:
            continue  # layout.json and other side files
        load = load_flow_text if suffix == ".flow" else load_yaml_text
        doc, diagnostics = load(text, name)
        if doc is None or diagnostics:
            broken.extend(diagnostics)
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        if isinstance(data.get("locales"), list):
            locales = [str(v) for v in data["locales"]]
        workflows = data.get("workflows")
        if isinstance(workflows, dict):
            names.extend(str(k) for k in workflows)
            if workflow in workflows and found is None:
                found = (name, doc)
    if found is None:
        if broken:
            raise DraftError(broken)
        raise WorkflowNotFound(workflow, did_you_mean(workflow, names))
    name, doc = found
    if PurePosixPath(name).suffix == ".flow":
        span = doc.source.key(("workflows", workflow)) or Span(name, 1, 1)
        raise DraftError(
            [
                Diagnostic(
                    "graph-flow-file",
                    f"workflow '{workflow}' is written in the text DSL; the graph editor "
                    "edits YAML files",
                    span,
                    hint="edit the .flow text, or move the workflow into a .yaml file",
                )
            ]
        )
    return _Holder(name, _plain(doc.data["workflows"][workflow]), locales)


# -- planning and writing -----------------------------------------------------------------


@dataclass(slots=True)
class _Group:
    """The edges named alike: one transition after the edit."""

    name: str
    edges: list[tuple[int, GraphEdge]]
    origins: list[str]  # transitions of the draft the edges' ids come from, in order
    primary: str | None = None  # the draft's transition it becomes (updated in place)
    base: str | None = None  # for a new transition: the one it starts as a copy of
    values: dict[str, Any] = field(default_factory=dict)


class _Writer:
    """Plans the edits: first which transitions the edges become (collecting problems),
    then the document operations (`ops`) and the edits they make."""

    def __init__(
        self, holder: _Holder, workflow: str, before: dict[str, Any], submitted: Submitted
    ) -> None:
        self.ops: list[_Op] = []
        self.locales = holder.locales
        self.locale = submitted.locale
        self.path: JsonPath = ("workflows", workflow)
        self.before = before
        self.submitted = submitted
        self.problems: list[GraphProblem] = []
        self.states = _plain(before.get("states"))
        self.transitions = _plain(before.get("transitions"))
        shown = read_edges(before, self.locale, self.locales)
        self.origin_of = {e["id"]: e["name"] for e in shown}
        self.shown: dict[str, GraphEdge] = {}  # the first edge of each, in written order
        for e in shown:
            self.shown.setdefault(e["name"], e)
        self.groups: list[_Group] = []

    # -- planning -----------------------------------------------------------------------

    def plan(self) -> None:
        by_name: dict[str, list[tuple[int, GraphEdge]]] = {}
        for index, edge in self.submitted.edges:
            by_name.setdefault(edge["name"], []).append((index, edge))
        for name, edges in by_name.items():
            ids = [self.origin_of[e["id"]] for _i, e in edges if e["id"] in self.origin_of]
            self.groups.append(_Group(name, edges, list(dict.fromkeys(ids))))
        self._assign()
        for group in self.groups:
            self._resolve(group)

    def _assign(self) -> None:
        """Which transition of the draft each group becomes (see the module docstring)."""
        taken: set[str] = set()
        for g in self.groups:  # groups keeping their name come first
            if g.name in self.shown and (not g.origins or g.name in g.origins):
                g.primary = g.name
                taken.add(g.name)
        for g in self.groups:
            if g.primary is not None:
                continue
            free = [o for o in g.origins if o not in taken]
            if free:
                g.primary = free[0]
                taken.add(free[0])
            elif g.origins:
                g.base = g.origins[0]

    def _resolve(self, g: _Group) -> None:
        reference = self.shown.get(g.primary or g.base or "")
        for key in ("to", *TRANSITION_KEYS):
            values = [(i, _at(e, key)) for i, e in g.edges]
            distinct = _distinct([v for _i, v in values])
            if len(distinct) > 1 and reference is not None:
                was = _at(reference, key)
                distinct = _distinct([v for v in distinct if v != was])
            if len(distinct) > 1:
                first = next(i for i, v in values if v == distinct[0])
                for i, v in values:
                    if v in distinct[1:]:
                        self.problems.append(
                            GraphProblem(
                                json_pointer(("edges", i, key)),
                                "edges-disagree",
                                f"edges of transition '{g.name}' disagree on '{key}': "
                                f"/edges/{first}/{key} says {distinct[0]!r}; give this edge "
                                "another name to make it a transition of its own",
                            )
                        )
            g.values[key] = distinct[0]
        g.values["from"] = list(dict.fromkeys(e["from"] for _i, e in g.edges))

    # -- writing ------------------------------------------------------------------------

    def write(self) -> list[Edit]:
        edits: list[Edit] = []
        edits += self._write_states()
        edits += self._write_transitions()
        return edits

    def _write_states(self) -> list[Edit]:
        edits: list[Edit] = []
        states: JsonPath = (*self.path, "states")
        shown = {n["id"]: n for n in read_nodes(self.before, self.locale, self.locales)}
        wanted = {n["id"] for n in self.submitted.nodes}
        for node in self.submitted.nodes:
            name = node["id"]
            if name not in shown:
                raw = {k: self._new_value(k, _at(node, k), None) for k in STATE_KEYS}
                self._op("set", (*states, name), {k: v for k, v in raw.items() if v != DEFAULTS[k]})
                edits.append(_edit("add_state", name))
                continue
            keys = [
                key
                for key in STATE_KEYS
                if _at(node, key) != _at(shown[name], key)
                and self._write_key(
                    (*states, name), key, _at(node, key), _plain(self.states.get(name)).get(key)
                )
            ]
            if keys:
                edits.append(_edit("change_state", name, keys))
        for name in shown:
            if name not in wanted:
                self._op("delete", (*states, name))
                edits.append(_edit("remove_state", name))
        initial = next(n["id"] for n in self.submitted.nodes if n["initial"])
        was = self.before.get("initial")
        if initial != was:
            self._op("set", (*self.path, "initial"), initial)
            edits.append(_edit("set_initial", initial, before=str(was), after=initial))
        return edits

    def _write_transitions(self) -> list[Edit]:
        base: JsonPath = (*self.path, "transitions")
        kept = {g.primary for g in self.groups if g.primary is not None}
        edits: list[Edit] = []
        for name in self.shown:
            if name not in kept:
                self._op("delete", (*base, name))
                edits.append(_edit("remove_transition", name))
        renames = [
            (g.primary, g.name)
            for g in self.groups
            if g.primary is not None and g.primary != g.name
        ]
        # Names in the mapping once the removed ones are gone (unshown ones stay).
        present = {n for n in self.transitions if n in kept or n not in self.shown}
        self._rename(base, renames, present)
        edits += [_edit("rename_transition", new, before=old, after=new) for old, new in renames]
        for g in self.groups:
            if g.primary is not None:
                edits += self._update(base, g)
            else:
                self._op("set", (*base, g.name), self._new_transition(g))
                edits.append(_edit("add_transition", g.name))
        return edits

    def _rename(self, base: JsonPath, renames: list[tuple[str, str]], present: set[str]) -> None:
        """Rename transitions, through temporary names when one takes another's name."""
        if not any(new in present for _old, new in renames):
            for old, new in renames:
                self._op("rename_key", (*base, old), new)
            return
        temporary = []
        for i, (old, new) in enumerate(renames):
            temp = f"_graph_rename_{i}"
            while temp in present:
                temp += "_"
            self._op("rename_key", (*base, old), temp)
            temporary.append((temp, new))
        for temp, new in temporary:
            self._op("rename_key", (*base, temp), new)

    def _update(self, base: JsonPath, g: _Group) -> list[Edit]:
        assert g.primary is not None
        where: JsonPath = (*base, g.name)
        was = self.shown[g.primary]
        raw = _plain(self.transitions.get(g.primary))
        edits: list[Edit] = []
        keys: list[str] = []
        written = sources(raw.get("from"))
        if set(g.values["from"]) != set(written):
            kept = [s for s in written if s in g.values["from"]]
            added = [s for s in g.values["from"] if s not in written]
            value = kept + added
            as_list = isinstance(raw.get("from"), list) or len(value) > 1
            self._op("set", (*where, "from"), value if as_list else value[0])
            keys.append("from")
        if g.values["to"] != was["to"]:
            self._op("set", (*where, "to"), g.values["to"])
            edits.append(
                _edit("repoint_transition", g.name, before=was["to"], after=g.values["to"])
            )
        for key in TRANSITION_KEYS:
            if g.values[key] != _at(was, key) and self._write_key(
                where, key, g.values[key], raw.get(key)
            ):
                keys.append(key)
        if keys:
            edits.append(_edit("change_transition", g.name, keys))
        return edits

    def _new_transition(self, g: _Group) -> dict[str, Any]:
        copied = _plain(self.transitions.get(g.base)) if g.base else {}
        reference = self.shown.get(g.base or "")
        froms: list[str] = g.values["from"]
        data: dict[str, Any] = {"from": froms if len(froms) > 1 else froms[0], "to": g.values["to"]}
        for key in TRANSITION_KEYS:
            value = g.values[key]
            if reference is not None and value == _at(reference, key):
                value = copied.get(key, DEFAULTS[key])  # as written, e.g. all its locales
            else:
                value = self._new_value(key, value, copied.get(key))
            if value != DEFAULTS[key]:
                data[key] = value
        shown_keys = ("from", "to", *TRANSITION_KEYS)
        return {**data, **{k: v for k, v in copied.items() if k not in shown_keys}}

    # -- one key ----------------------------------------------------------------------------

    def _new_value(self, key: str, shown: Any, written: Any) -> Any:
        """What to write for `key` so the graph shows `shown` (titles: in the graph's locale)."""
        if key != "title" or self.locale is None:
            return shown
        if isinstance(written, dict):
            text = dict(written)
            if shown is None:
                text.pop(self.locale, None)
            else:
                text[self.locale] = shown
            return text or None
        if shown is None or isinstance(written, str):
            return shown  # a title written as one text stays one text
        return {self.locale: shown}

    def _op(self, method: str, *args: Any) -> None:
        self.ops.append((method, args))

    def _write_key(self, where: JsonPath, key: str, shown: Any, current: Any) -> bool:
        """Write `key` of the entry at `where` (now `current`); False if nothing changes."""
        value = self._new_value(key, shown, current)
        if value == current or (current is None and value == DEFAULTS[key]):
            return False
        if value == DEFAULTS[key] or value is None:
            self._op("delete", (*where, key))
        elif key == "title" and isinstance(current, dict) and isinstance(value, dict):
            for locale in [k for k in current if k not in value]:
                self._op("delete", (*where, key, locale))
            for locale, text in value.items():
                self._op("set", (*where, key, locale), text)
        else:
            self._op("set", (*where, key), value)
        return True


def _at(item: Mapping[str, object], key: str) -> Any:
    """A node's or edge's value by a key chosen at run time."""
    return item[key]


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _edit(
    op: str,
    target: str,
    keys: list[str] | None = None,
    before: str | None = None,
    after: str | None = None,
) -> Edit:
    return Edit(op=op, target=target, keys=keys or [], before=before, after=after)


# -- positions ---------------------------------------------------------------------------


def _positions(
    files: Mapping[str, str], workflow: str, before: dict[str, Any], submitted: Submitted
) -> dict[str, Position]:
    """The positions to save, for states still there: those saved before (where the graph
    puts them now) and those the UI moved away from the computed layout it was sent (so an
    untouched node keeps following the layout). A node left out of the graph's
    `layout.nodes` is laid out automatically; a graph without `layout` keeps the saved
    positions."""
    names = {n["id"] for n in submitted.nodes}
    saved = read_saved(files).get(workflow, {})
    if submitted.positions is None:
        return {n: p for n, p in saved.items() if n in names}
    computed = layout_of(read_nodes(before, None, ()), read_edges(before, None, ()))
    return {
        name: point
        for name, point in submitted.positions.items()
        if name in saved or name not in computed or _moved(point, computed[name])
    }


def _moved(point: Position, computed: NodeLayout) -> bool:
    return abs(point["x"] - computed["x"]) > SNAP or abs(point["y"] - computed["y"]) > SNAP


def _store_layout(
    out: dict[str, str], files: Mapping[str, str], workflow: str, saved: dict[str, Position]
) -> None:
    layout = read_saved(files)
    if saved:
        layout[workflow] = saved
    else:
        layout.pop(workflow, None)
    if layout or LAYOUT_FILE in files:
        out[LAYOUT_FILE] = write_saved(layout)
