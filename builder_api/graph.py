"""The workflow graph a builder UI edits: nodes (states), edges (transitions), layout hints.

    graph = workflow_graph(pack, "repair", read_saved(files).get("repair"), locale="en")
    graph = graph_of("repair", draft_data["workflows"]["repair"], locales, "en", saved)
    ... the UI moves, adds, removes, re-points ...
    result = apply_graph(files, "repair", edited)   # files: {name: YAML text}

See `graph_shapes` for the shapes and how transitions read as edges, `graph_layout` for
the layered layout, `graph_apply` for how an edited graph is written back.

Positions the UI saves live in the draft's `layout.json` ({workflow: {state: {x, y}}}),
a side file the pack loader skips (it reads only .yaml, .yml and .flow files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builder_api.graph_apply import apply_graph
from builder_api.graph_layout import layout_of, position, read_saved
from builder_api.graph_shapes import (
    DIRECTION,
    LAYOUT_FILE,
    DraftError,
    Edit,
    Graph,
    GraphEdge,
    GraphEdit,
    GraphError,
    GraphLayout,
    GraphNode,
    GraphProblem,
    NodeLayout,
    Position,
    WorkflowNotFound,
    read_edges,
    read_nodes,
    show_text,
)
from dsl.diagnostics import did_you_mean
from engine.model import Pack

__all__ = [
    "LAYOUT_FILE",
    "DraftError",
    "Edit",
    "Graph",
    "GraphEdge",
    "GraphEdit",
    "GraphError",
    "GraphLayout",
    "GraphNode",
    "GraphProblem",
    "NodeLayout",
    "Position",
    "WorkflowNotFound",
    "apply_graph",
    "graph_of",
    "read_saved",
    "workflow_graph",
]


def workflow_graph(
    pack: Pack,
    workflow: str,
    layout: Mapping[str, Any] | None = None,
    *,
    locale: str | None = None,
) -> Graph:
    """The graph of `workflow`: titles in `locale` (as written when None), positions from
    `layout` ({state: {x, y}}, what the UI saved) where given, else computed."""
    found = pack.workflows.get(workflow)
    if found is None:
        raise WorkflowNotFound(workflow, did_you_mean(workflow, pack.workflows))
    data = found.model_dump(by_alias=True, mode="json", exclude_none=True)
    return graph_of(workflow, data, pack.locales, locale, layout)


def graph_of(
    workflow: str,
    data: Mapping[str, Any],
    locales: list[str],
    locale: str | None,
    layout: Mapping[str, Any] | None = None,
) -> Graph:
    """The graph of a workflow's plain data (as written in YAML)."""
    nodes = read_nodes(data, locale, locales)
    edges = read_edges(data, locale, locales)
    saved = {
        str(name): point
        for name, value in (layout or {}).items()
        if (point := position(value)) is not None
    }
    return Graph(
        workflow=workflow,
        title=show_text(data.get("title"), locale, locales),
        locale=locale,
        nodes=nodes,
        edges=edges,
        layout=GraphLayout(direction=DIRECTION, nodes=layout_of(nodes, edges, saved)),
    )
