"""The shapes of a workflow graph (what the builder API sends and receives) and how a
workflow's plain data reads as nodes and edges.

A node is a state, its id the state's name. An edge is one transition leaving one state:
a transition with `from: [a, b]` is two edges, `a → to` and `b → to`, with the ids
`<transition>:a` and `<transition>:b`. `from: "*"` (any non-final state) is one edge
whose `from` is `"*"` and `wildcard` is true: a UI draws it once ("from anywhere") rather
than once per state, and a graph sent back keeps the pack's wording.

Titles are in one locale when a locale is asked for (a string, falling back to the pack's
locales in order), else as written (a string or `{locale: text}`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from builder_api.drafts import DraftError as DraftError  # one error for every draft edit
from engine.form_schema import localized

LocalizedText = str | dict[str, str]
StateCategory = Literal["new", "open", "pending", "resolved", "closed", "cancelled"]
SlaMode = Literal["pause", "stop"]
Only = Literal["assignee", "requester"]
CommentMode = Literal["required", "optional", "none"]

WILDCARD = "*"
LAYOUT_FILE = "layout.json"
DIRECTION: Literal["LR"] = "LR"

# Keys of a state and of a transition that the graph shows and edits; every other key
# (`customer_label`, `do`, `validate`, ...) is left as written.
STATE_KEYS = ("category", "final", "sla", "title")
TRANSITION_KEYS = ("roles", "only", "requires", "form", "when", "comment", "title")
# Values that mean "not set": a key edited to its default is removed from the YAML.
DEFAULTS: Mapping[str, Any] = {
    "category": None,
    "final": False,
    "sla": None,
    "title": None,
    "roles": [],
    "only": None,
    "requires": [],
    "form": [],
    "when": None,
    "comment": "optional",
}


class Position(TypedDict):
    """Where a node is drawn (pixels; x grows rightwards, y downwards)."""

    x: float
    y: float


class GraphNode(TypedDict):
    """A state."""

    id: str  # the state's name
    title: LocalizedText | None
    category: StateCategory | None
    final: bool
    sla: SlaMode | None  # `pause`: SLA clocks stand still here; `stop`: they end
    initial: bool  # exactly one node is the state new tickets start in


# `from` is a Python keyword: the functional form keeps the JSON key.
GraphEdge = TypedDict(
    "GraphEdge",
    {
        "id": str,  # `<transition>:<from>`; a UI gives new edges any unused id
        "name": str,  # the transition's name; edges of one transition share it
        "from": str,  # a state, or `*` for any non-final state
        "to": str,
        "wildcard": bool,  # `from` is `*` (shown, not read back)
        "title": LocalizedText | None,
        "roles": list[str],  # empty: any staff role
        "only": Only | None,
        "requires": list[str],
        "form": list[str],
        "when": str | None,  # the guard's text
        "comment": CommentMode,
        "actions": int,  # how many actions run after the move (shown, not read back)
        "validations": int,  # how many checks with messages (shown, not read back)
    },
)


class NodeLayout(TypedDict):
    """Layout hints of one node: its layer and place in it, and where to draw it."""

    rank: int  # BFS distance from the initial state; unreachable states come last
    order: int  # place within the rank, top to bottom
    x: float
    y: float
    saved: bool  # x and y are a position the UI saved, not computed


class GraphLayout(TypedDict):
    """Layered layout: ranks left to right, `nodes` by state name."""

    direction: Literal["LR"]
    nodes: dict[str, NodeLayout]


class Graph(TypedDict):
    """A workflow as a graph a builder UI draws and edits."""

    workflow: str
    title: LocalizedText | None
    locale: str | None  # the locale titles are in; null: titles as written
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    layout: GraphLayout


class Edit(TypedDict):
    """One change `apply_graph` made to the draft.

    `op`: add_state, remove_state, change_state, set_initial, add_transition,
    remove_transition, rename_transition, repoint_transition, change_transition.
    `target` is the state or transition (its new name after a rename); `keys` the keys
    changed (change_*); `before`/`after` the old and new name (rename), target state
    (repoint) or initial state (set_initial).
    """

    op: str
    target: str
    keys: list[str]
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class GraphProblem:
    """What is wrong with one place of a submitted graph (`pointer`: RFC 6901)."""

    pointer: str
    code: str
    message: str


class GraphError(ValueError):
    """A submitted graph that cannot be applied; `problems` lists every fault found."""

    def __init__(self, problems: Sequence[GraphProblem]) -> None:
        self.problems = tuple(problems)
        lines = [f"{p.pointer or '/'}: {p.message}" for p in self.problems]
        super().__init__("invalid graph: " + "; ".join(lines))


class WorkflowNotFound(LookupError):
    """No workflow of that name (in the pack, or in any file of the draft)."""

    def __init__(self, name: str, hint: str | None = None) -> None:
        super().__init__(f"no workflow '{name}'" + (f"; {hint}" if hint else ""))
        self.name = name


@dataclass(frozen=True, slots=True)
class GraphEdit:
    """What `apply_graph` did: the draft's files after the edit (unchanged files as they
    were, `layout.json` with the saved positions), the edits, and this workflow's saved
    positions by state."""

    files: dict[str, str]
    edits: list[Edit]
    layout: dict[str, Position]


# -- reading a workflow's plain data -----------------------------------------------------


def show_text(value: Any, locale: str | None, locales: Sequence[str]) -> LocalizedText | None:
    """A title as the graph shows it: in `locale` (with fallbacks), else as written."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        return None
    text = {str(k): str(v) for k, v in value.items()}
    if locale is None:
        return text
    return localized(text, locale, locales)


def as_names(value: Any) -> list[str]:
    """A list of names from plain data (anything else reads as empty)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def sources(value: Any) -> list[str]:
    """The `from` of a transition as a list of distinct entries, in order."""
    items = value if isinstance(value, list) else [value] if value is not None else []
    return list(dict.fromkeys(str(v) for v in items))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def read_nodes(
    workflow: Mapping[str, Any], locale: str | None, locales: Sequence[str]
) -> list[GraphNode]:
    """One node per state, in the order the states are written."""
    initial = workflow.get("initial")
    nodes: list[GraphNode] = []
    for name, raw in _mapping(workflow.get("states")).items():
        state = _mapping(raw)
        nodes.append(
            GraphNode(
                id=str(name),
                title=show_text(state.get("title"), locale, locales),
                category=state.get("category"),
                final=bool(state.get("final", False)),
                sla=state.get("sla"),
                initial=name == initial,
            )
        )
    return nodes


def read_edges(
    workflow: Mapping[str, Any], locale: str | None, locales: Sequence[str]
) -> list[GraphEdge]:
    """One edge per transition and state it leaves from, in the order they are written."""
    edges: list[GraphEdge] = []
    for name, raw in _mapping(workflow.get("transitions")).items():
        tr = _mapping(raw)
        for source in sources(tr.get("from")):
            edges.append(edge_of(str(name), source, tr, locale, locales))
    return edges


def edge_of(
    name: str, source: str, tr: Mapping[str, Any], locale: str | None, locales: Sequence[str]
) -> GraphEdge:
    """The edge of transition `name` (plain data `tr`) leaving `source`."""
    when = tr.get("when")
    return {
        "id": f"{name}:{source}",
        "name": name,
        "from": source,
        "to": str(tr.get("to")),
        "wildcard": source == WILDCARD,
        "title": show_text(tr.get("title"), locale, locales),
        "roles": as_names(tr.get("roles")),
        "only": tr.get("only"),
        "requires": as_names(tr.get("requires")),
        "form": as_names(tr.get("form")),
        "when": str(when) if when is not None else None,
        "comment": tr.get("comment") or "optional",
        "actions": len(tr.get("do") or ()),
        "validations": len(tr.get("validate") or ()),
    }
