"""A layered layout of a workflow graph, left to right.

- Rank: the BFS distance of a state from the initial state (a wildcard edge leaves every
  non-final state). States the initial state cannot reach share one rank after the last.
- Order within a rank: declaration order first, then a few barycenter sweeps (each state
  moves towards the mean place of its neighbours in the ranks before it, then after it);
  the ordering with the fewest crossings between adjacent ranks is kept. Wildcard edges
  and self-loops do not count: a UI draws them apart.
- Coordinates: x = rank × RANK_GAP; y = place × ORDER_GAP, each rank centred on y = 0.

Saved positions (what the UI stored) replace x and y, never rank and order.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right, insort
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from builder_api.graph_shapes import (
    LAYOUT_FILE,
    WILDCARD,
    GraphEdge,
    GraphNode,
    NodeLayout,
    Position,
)

RANK_GAP = 240.0
ORDER_GAP = 120.0
SWEEPS = 4

Ranks = list[list[str]]
SavedLayout = dict[str, dict[str, Position]]  # workflow → state → position


def layout_of(
    nodes: Sequence[GraphNode],
    edges: Sequence[GraphEdge],
    saved: Mapping[str, Position] | None = None,
) -> dict[str, NodeLayout]:
    """The layout hints of a graph's nodes (see `layered_layout`)."""
    initial = next((n["id"] for n in nodes if n["initial"]), None)
    return layered_layout(
        [n["id"] for n in nodes],
        initial,
        [n["id"] for n in nodes if n["final"]],
        [(e["from"], e["to"]) for e in edges],
        saved,
    )


def layered_layout(
    states: Sequence[str],
    initial: str | None,
    finals: Iterable[str],
    edges: Iterable[tuple[str, str]],
    saved: Mapping[str, Position] | None = None,
) -> dict[str, NodeLayout]:
    """Rank, order and position of every state; `edges` are (from, to) with `*` allowed."""
    known = set(states)
    wildcard_targets = [to for src, to in edges if src == WILDCARD and to in known]
    plain = [(a, b) for a, b in edges if a in known and b in known and a != b]
    rank = _ranks(states, initial, set(finals), plain, wildcard_targets)
    ranks = _orders(states, rank, plain)
    saved = saved or {}
    out: dict[str, NodeLayout] = {}
    for r, names in enumerate(ranks):
        for i, name in enumerate(names):
            x, y = r * RANK_GAP, (i - (len(names) - 1) / 2) * ORDER_GAP
            pinned = saved.get(name)
            if pinned is not None:
                x, y = float(pinned["x"]), float(pinned["y"])
            out[name] = NodeLayout(rank=r, order=i, x=x, y=y, saved=pinned is not None)
    return {name: out[name] for name in states}


def _ranks(
    states: Sequence[str],
    initial: str | None,
    finals: set[str],
    edges: list[tuple[str, str]],
    wildcard_targets: list[str],
) -> dict[str, int]:
    successors: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        successors[a].append(b)
    for state in states:
        if state not in finals:
            successors[state].extend(wildcard_targets)
    rank: dict[str, int] = {}
    if initial in states:
        assert initial is not None
        rank[initial] = 0
        queue = deque([initial])
        while queue:
            current = queue.popleft()
            for nxt in successors[current]:
                if nxt not in rank:
                    rank[nxt] = rank[current] + 1
                    queue.append(nxt)
    last = max(rank.values(), default=-1) + 1
    return {s: rank.get(s, last) for s in states}


def _orders(states: Sequence[str], rank: Mapping[str, int], edges: list[tuple[str, str]]) -> Ranks:
    count = max(rank.values(), default=-1) + 1
    ranks: Ranks = [[] for _ in range(count)]
    for state in states:  # declaration order to start with
        ranks[rank[state]].append(state)
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    best, fewest = [list(r) for r in ranks], crossings(ranks, rank, edges)
    for sweep in range(SWEEPS):
        downwards = sweep % 2 == 0
        order = range(1, count) if downwards else range(count - 2, -1, -1)
        for r in order:
            ranks[r] = _by_barycenter(ranks, r, rank, neighbours, before=downwards)
        found = crossings(ranks, rank, edges)
        if found < fewest:
            best, fewest = [list(x) for x in ranks], found
    return best


def _by_barycenter(
    ranks: Ranks, r: int, rank: Mapping[str, int], neighbours: Mapping[str, set[str]], before: bool
) -> list[str]:
    # Places centred on 0, so that ranks of different sizes line up.
    place = {n: i - (len(names) - 1) / 2 for names in ranks for i, n in enumerate(names)}

    def key(name: str) -> tuple[float, float]:
        near = [
            place[n] for n in neighbours.get(name, ()) if (rank[n] < r if before else rank[n] > r)
        ]
        if not near:  # nothing to lean towards: stay where it is
            return place[name], place[name]
        return sum(near) / len(near), place[name]

    return sorted(ranks[r], key=key)


def crossings(ranks: Ranks, rank: Mapping[str, int], edges: Iterable[tuple[str, str]]) -> int:
    """Edge crossings between adjacent ranks (edges spanning more ranks are not counted)."""
    position = {name: i for names in ranks for i, name in enumerate(names)}
    between: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, b in edges:
        low, high = (a, b) if rank[a] < rank[b] else (b, a)
        if rank[high] - rank[low] == 1:
            between[rank[low]].append((position[low], position[high]))
    return sum(_inversions(pairs) for pairs in between.values())


def _inversions(pairs: list[tuple[int, int]]) -> int:
    """Pairs of segments that cross: a1 < a2 and b1 > b2 (shared ends do not cross)."""
    seen: list[int] = []
    total = 0
    pairs = sorted(pairs)
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        for _a, b in pairs[i:j]:
            total += len(seen) - bisect_right(seen, b)
        for _a, b in pairs[i:j]:
            insort(seen, b)
        i = j
    return total


# -- positions saved in the draft --------------------------------------------------------


def position(value: Any) -> Position | None:
    """`{x, y}` with finite numbers, else None."""
    if not isinstance(value, Mapping):
        return None
    x, y = value.get("x"), value.get("y")
    if not (_finite(x) and _finite(y)):
        return None
    return Position(x=float(x), y=float(y))


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_saved(files: Mapping[str, str]) -> SavedLayout:
    """The positions in the draft's `layout.json`, by workflow and state.

    The file is ours, not the admin's: what cannot be read (bad JSON, an entry without
    numbers) is skipped, and the next save writes it anew.
    """
    try:
        data = json.loads(files.get(LAYOUT_FILE) or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: SavedLayout = {}
    for workflow, states in data.items():
        if isinstance(states, dict):
            found = {str(s): p for s, v in states.items() if (p := position(v)) is not None}
            if found:
                out[str(workflow)] = found
    return out


def write_saved(layout: SavedLayout) -> str:
    """`layout.json` text: sorted keys, so saving the same positions gives the same text."""
    kept = {wf: states for wf, states in layout.items() if states}
    return json.dumps(kept, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
