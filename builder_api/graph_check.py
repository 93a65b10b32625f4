"""Checking a graph a builder UI sends back: every fault is found, each located by a JSON
pointer into the graph document, before anything is changed.

Keys a UI adds for itself (`selected`, `data`, ...) are ignored; `wildcard`, `actions` and
`validations` are shown, not read back.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from builder_api.graph_layout import position
from builder_api.graph_shapes import (
    WILDCARD,
    CommentMode,
    GraphEdge,
    GraphNode,
    GraphProblem,
    LocalizedText,
    Only,
    Position,
    SlaMode,
    StateCategory,
)
from dsl.diagnostics import did_you_mean
from dsl.source_map import json_pointer
from engine.values import Name

MAX_NODES = 1_000
MAX_EDGES = 5_000

_NAME: TypeAdapter[str] = TypeAdapter(Name)
_CATEGORIES: tuple[str, ...] = typing.get_args(StateCategory)
_SLA: tuple[str, ...] = typing.get_args(SlaMode)
_ONLY: tuple[str, ...] = typing.get_args(Only)
_COMMENT: tuple[str, ...] = typing.get_args(CommentMode)


@dataclass(slots=True)
class Submitted:
    """A graph that passed the checks, its values normalised (missing keys at defaults).

    `edges` keep their index in the document, for pointers in later problems.
    """

    locale: str | None
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[tuple[int, GraphEdge]] = field(default_factory=list)
    positions: dict[str, Position] | None = None  # None: the graph sent no layout


class _Problems:
    def __init__(self) -> None:
        self.found: list[GraphProblem] = []

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        self.found.append(GraphProblem(json_pointer(path), code, message))


def check_graph(
    graph: Any, workflow: str, initial_before: str | None
) -> tuple[Submitted | None, list[GraphProblem]]:
    """The submitted graph normalised, and every problem found (None if it is unusable)."""
    out = _Problems()
    if not isinstance(graph, Mapping):
        out.add((), "type", "the graph must be an object with 'nodes' and 'edges'")
        return None, out.found
    if graph.get("workflow", workflow) != workflow:
        out.add(
            ("workflow",),
            "workflow",
            f"this graph is of '{graph.get('workflow')}', not of workflow '{workflow}'",
        )
    locale = graph.get("locale")
    if locale is not None and not isinstance(locale, str):
        out.add(("locale",), "type", "must be a locale such as 'en', or null")
        locale = None
    raw_nodes, raw_edges = graph.get("nodes"), graph.get("edges", [])
    nodes_ok = _is_list(raw_nodes, ("nodes",), MAX_NODES, out)
    edges_ok = _is_list(raw_edges, ("edges",), MAX_EDGES, out)
    if not (nodes_ok and edges_ok):
        return None, out.found
    assert isinstance(raw_nodes, list) and isinstance(raw_edges, list)
    done = Submitted(locale)
    done.nodes = _nodes(raw_nodes, locale, out)
    _initial(done.nodes, raw_nodes, initial_before, out)
    # An edge to a node whose id is itself wrong is not reported twice.
    written = {item.get("id") for item in raw_nodes if isinstance(item, Mapping)}
    done.edges = _edges(raw_edges, {i for i in written if isinstance(i, str)}, locale, out)
    done.positions = _positions(graph.get("layout"), [n["id"] for n in done.nodes], out)
    return done, out.found


def _is_list(value: Any, path: tuple[str], limit: int, out: _Problems) -> bool:
    if not isinstance(value, list):
        out.add(path, "type", "must be a list")
        return False
    if len(value) > limit:
        out.add(path, "too-many", f"has {len(value):,} entries; at most {limit:,} are allowed")
        return False
    return True


# -- nodes ----------------------------------------------------------------------------------


def _nodes(raw: list[Any], locale: str | None, out: _Problems) -> list[GraphNode]:
    nodes: list[GraphNode] = []
    first: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = ("nodes", i)
        if not isinstance(item, Mapping):
            out.add(where, "type", "a node must be an object with an 'id'")
            continue
        name = _name(item.get("id"), (*where, "id"), out)
        if name is not None and name in first:
            out.add(
                (*where, "id"),
                "duplicate-id",
                f"node '{name}' appears twice (first at /nodes/{first[name]})",
            )
            name = None
        if name is None:
            continue
        first[name] = i
        nodes.append(
            GraphNode(
                id=name,
                title=_title(item.get("title"), locale, (*where, "title"), out),
                category=_choice(item.get("category"), _CATEGORIES, (*where, "category"), out),
                final=_flag(item.get("final"), (*where, "final"), out),
                sla=_choice(item.get("sla"), _SLA, (*where, "sla"), out),
                initial=_flag(item.get("initial"), (*where, "initial"), out),
            )
        )
    return nodes


def _initial(nodes: list[GraphNode], raw: list[Any], before: str | None, out: _Problems) -> None:
    marked = [i for i, item in enumerate(raw) if isinstance(item, Mapping) and item.get("initial")]
    if not marked:
        ids = {n["id"] for n in nodes}
        gone = before is not None and before not in ids
        why = (
            f"the initial state '{before}' was removed and no other node is initial"
            if gone
            else "no node is marked initial"
        )
        out.add(("nodes",), "no-initial", f"{why}; mark the state new tickets start in")
    for i in marked[1:]:
        out.add(
            ("nodes", i, "initial"),
            "several-initial",
            f"only one node can be initial (already /nodes/{marked[0]})",
        )


# -- edges ----------------------------------------------------------------------------------


def _edges(
    raw: list[Any], known: set[str], locale: str | None, out: _Problems
) -> list[tuple[int, GraphEdge]]:
    edges: list[tuple[int, GraphEdge]] = []
    first: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = ("edges", i)
        if not isinstance(item, Mapping):
            out.add(where, "type", "an edge must be an object with 'id', 'name', 'from', 'to'")
            continue
        before = len(out.found)
        edge_id = item.get("id")
        if not isinstance(edge_id, str) or not edge_id:
            out.add((*where, "id"), "type", "must be a non-empty string")
        elif edge_id in first:
            out.add(
                (*where, "id"),
                "duplicate-id",
                f"edge id '{edge_id}' appears twice (first at /edges/{first[edge_id]})",
            )
        else:
            first[edge_id] = i
        name = _name(item.get("name"), (*where, "name"), out)
        source = _end(item.get("from"), known, (*where, "from"), out, wildcard=True)
        target = _end(item.get("to"), known, (*where, "to"), out, wildcard=False)
        edge: GraphEdge = {
            "id": str(edge_id),
            "name": name or "",
            "from": source or "",
            "to": target or "",
            "wildcard": source == WILDCARD,
            "title": _title(item.get("title"), locale, (*where, "title"), out),
            "roles": _names(item.get("roles"), (*where, "roles"), out),
            "only": _choice(item.get("only"), _ONLY, (*where, "only"), out),
            "requires": _names(item.get("requires"), (*where, "requires"), out),
            "form": _names(item.get("form"), (*where, "form"), out),
            "when": _when(item.get("when"), (*where, "when"), out),
            "comment": _choice(item.get("comment"), _COMMENT, (*where, "comment"), out)
            or "optional",
            "actions": 0,
            "validations": 0,
        }
        if len(out.found) == before:
            edges.append((i, edge))
    return edges


def _end(
    value: Any, known: set[str], path: tuple[str | int, ...], out: _Problems, *, wildcard: bool
) -> str | None:
    if wildcard and value == WILDCARD:
        return WILDCARD
    if value == WILDCARD:
        out.add(
            path, "wildcard-target", "'*' (any state) is a source only; pick the state it leads to"
        )
        return None
    if not isinstance(value, str) or not value:
        out.add(path, "type", "must be the id of a node" + (" or '*'" if wildcard else ""))
        return None
    if value not in known:
        hint = did_you_mean(value, known)
        out.add(path, "unknown-node", f"no node '{value}'" + (f"; {hint}" if hint else ""))
        return None
    return value


def _when(value: Any, path: tuple[str | int, ...], out: _Problems) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        out.add(path, "type", "must be a condition (text) or null")
        return None
    return value


# -- values ---------------------------------------------------------------------------------


def _name(value: Any, path: tuple[str | int, ...], out: _Problems) -> str | None:
    if not isinstance(value, str):
        out.add(path, "type", "must be a name (letters, digits, underscores)")
        return None
    try:
        return _NAME.validate_python(value)
    except ValidationError as exc:
        out.add(path, "invalid-name", exc.errors()[0]["msg"])
        return None


def _names(value: Any, path: tuple[str | int, ...], out: _Problems) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        out.add(path, "type", "must be a list of names")
        return []
    names = [_name(v, (*path, i), out) for i, v in enumerate(value)]
    return [n for n in names if n is not None]


def _flag(value: Any, path: tuple[str | int, ...], out: _Problems) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        out.add(path, "type", "must be true or false")
        return False
    return value


def _choice(
    value: Any, allowed: tuple[str, ...], path: tuple[str | int, ...], out: _Problems
) -> Any:
    if value is None:
        return None
    if value not in allowed:
        out.add(path, "option", f"must be one of {', '.join(allowed)}, or null")
        return None
    return value


def _title(
    value: Any, locale: str | None, path: tuple[str | int, ...], out: _Problems
) -> LocalizedText | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if (
        locale is None
        and isinstance(value, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return {str(k): str(v) for k, v in value.items()} or None
    expected = "a text" if locale else "a text or an object of texts by locale"
    out.add(path, "type", f"must be {expected}, or null")
    return None


def _positions(layout: Any, ids: Sequence[str], out: _Problems) -> dict[str, Position] | None:
    """Positions of the graph's nodes; entries of nodes that are gone are ignored."""
    if layout is None:
        return None
    nodes = layout.get("nodes") if isinstance(layout, Mapping) else None
    if not isinstance(nodes, Mapping):
        out.add(("layout", "nodes"), "type", "must be an object of {x, y} by node id")
        return None
    found: dict[str, Position] = {}
    for name in ids:
        if name not in nodes:
            continue
        point = position(nodes[name])
        if point is None:
            out.add(("layout", "nodes", name), "type", "must have numbers 'x' and 'y'")
        else:
            found[name] = point
    return found
