"""The workflow graph of the builder API: nodes, edges and layout hints of a workflow, and an
edited graph applied back to the draft's YAML with the admin's comments kept."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from builder_api.graph import (
    LAYOUT_FILE,
    DraftError,
    Graph,
    GraphError,
    WorkflowNotFound,
    apply_graph,
    read_saved,
    workflow_graph,
)
from builder_api.graph_layout import crossings, layered_layout
from conftest import EXAMPLES
from dsl.yaml_loader import load_yaml_text
from engine.load import load_pack_path
from engine.model import Pack

RETAIL = EXAMPLES / "retail_store"


def pack_files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.yaml"))}


def load(directory: Path) -> Pack:
    result = load_pack_path(directory)
    assert result.pack is not None, result.diagnostics
    return result.pack


@pytest.fixture(scope="module")
def retail() -> Pack:
    return load(RETAIL)


@pytest.fixture
def files() -> dict[str, str]:
    return pack_files(RETAIL)


def editable(graph: Graph) -> dict[str, Any]:
    """The graph as a UI sends it back: plain JSON."""
    data: dict[str, Any] = json.loads(json.dumps(graph))
    return data


def edge(graph: dict[str, Any], edge_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in graph["edges"] if e["id"] == edge_id)
    return found


def workflow_data(text: str, name: str = "repair") -> dict[str, Any]:
    doc, diagnostics = load_yaml_text(text)
    assert doc is not None, diagnostics
    data: dict[str, Any] = doc.data["workflows"][name]
    return data


def write_pack(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


# -- the graph ----------------------------------------------------------------------------


def test_graph_of_the_store_repair_workflow(retail: Pack, snapshot: Any) -> None:
    assert workflow_graph(retail, "repair", locale="en") == snapshot


def test_one_edge_per_transition_and_source_state(retail: Pack) -> None:
    graph = workflow_graph(retail, "repair", locale="en")
    cancels = [(e["id"], e["from"], e["to"]) for e in graph["edges"] if e["name"] == "cancel"]
    assert cancels == [
        ("cancel:new", "new", "cancelled"),
        ("cancel:assigned", "assigned", "cancelled"),
    ]
    resolve = edge(editable(graph), "resolve:in_progress")
    assert resolve["when"] == "len(parts) == 0 or parts_approved"
    assert (resolve["requires"], resolve["only"], resolve["validations"]) == (
        ["signature"],
        "assignee",
        1,
    )


def test_titles_in_every_locale_unless_one_is_asked_for(retail: Pack) -> None:
    every = workflow_graph(retail, "repair")
    chinese = workflow_graph(retail, "repair", locale="zh")
    assert every["nodes"][0]["title"] == {"en": "New", "zh": "新建"}
    assert chinese["nodes"][0]["title"] == "新建"
    assert chinese["edges"][0]["title"] == "派单"
    # A locale the pack lacks falls back to the pack's first locale (zh).
    assert workflow_graph(retail, "repair", locale="fr")["nodes"][0]["title"] == "新建"


def test_ranks_are_distances_from_the_initial_state(retail: Pack) -> None:
    nodes = workflow_graph(retail, "repair")["layout"]["nodes"]
    assert {name: hint["rank"] for name, hint in nodes.items()} == {
        "new": 0,
        "assigned": 1,
        "cancelled": 1,
        "in_progress": 2,
        "waiting_parts": 3,
        "resolved": 3,
        "closed": 4,
    }
    assert workflow_graph(retail, "repair")["layout"]["direction"] == "LR"
    assert nodes["new"]["x"] == 0 and nodes["assigned"]["x"] == nodes["cancelled"]["x"] > 0


def test_unreachable_states_come_after_the_last_rank_and_wildcards_leave_every_state() -> None:
    layout = layered_layout(
        ["a", "b", "c", "lost", "gone"],
        "a",
        ["c"],
        [("a", "b"), ("b", "c"), ("*", "gone")],
    )
    assert {n: h["rank"] for n, h in layout.items()} == {
        "a": 0,
        "b": 1,
        "c": 2,
        "gone": 1,  # from `a`, like from every non-final state
        "lost": 3,
    }


def test_order_within_a_rank_untangles_crossing_edges() -> None:
    states = ["a", "b", "c", "d", "e"]
    edges = [("a", "b"), ("a", "c"), ("b", "e"), ("c", "d")]
    layout = layered_layout(states, "a", [], edges)
    assert (layout["e"]["order"], layout["d"]["order"]) == (0, 1)
    ranks = [["a"], ["b", "c"], ["d", "e"]]
    rank = {"a": 0, "b": 1, "c": 1, "d": 2, "e": 2}
    assert crossings(ranks, rank, edges) == 1  # declaration order would cross once
    assert layout["e"]["y"] < layout["d"]["y"]


def test_saved_positions_replace_coordinates_but_not_ranks(retail: Pack) -> None:
    graph = workflow_graph(retail, "repair", {"closed": {"x": 5, "y": -7}, "nowhere": {"x": 1}})
    closed = graph["layout"]["nodes"]["closed"]
    assert (closed["x"], closed["y"], closed["saved"], closed["rank"]) == (5.0, -7.0, True, 4)
    assert graph["layout"]["nodes"]["new"]["saved"] is False


def test_unknown_workflow_names_the_closest(retail: Pack) -> None:
    with pytest.raises(WorkflowNotFound, match="did you mean 'repair'"):
        workflow_graph(retail, "repiar")


# -- applying an edited graph ----------------------------------------------------------------


@pytest.mark.parametrize(
    "pack_dir", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()), ids=str
)
def test_an_unchanged_graph_leaves_every_file_as_it_was(pack_dir: str) -> None:
    pack = load(EXAMPLES / pack_dir)
    files = pack_files(EXAMPLES / pack_dir)
    for name in pack.workflows:
        for locale in (None, pack.locales[-1]):
            result = apply_graph(files, name, editable(workflow_graph(pack, name, locale=locale)))
            assert result.files == files
            assert result.edits == []
            assert result.layout == {}


def test_adding_a_state_and_re_pointing_an_edge_keeps_the_comments(
    retail: Pack, files: dict[str, str], tmp_path: Path
) -> None:
    graph = editable(workflow_graph(retail, "repair", locale="en"))
    graph["nodes"].append(
        {"id": "on_hold", "title": "On hold", "category": "pending", "sla": "pause"}
    )
    hold = {
        "id": "e1",
        "name": "hold",
        "from": "in_progress",
        "to": "on_hold",
        "roles": ["engineer"],
    }
    resume = {
        "id": "e2",
        "name": "resume",
        "from": "on_hold",
        "to": "in_progress",
        "roles": ["engineer"],
    }
    graph["edges"] += [hold, resume]
    edge(graph, "reopen:resolved")["to"] = "assigned"

    result = apply_graph(files, "repair", graph)

    assert result.edits == [
        {"op": "add_state", "target": "on_hold", "keys": [], "before": None, "after": None},
        {
            "op": "repoint_transition",
            "target": "reopen",
            "keys": [],
            "before": "in_progress",
            "after": "assigned",
        },
        {"op": "add_transition", "target": "hold", "keys": [], "before": None, "after": None},
        {"op": "add_transition", "target": "resume", "keys": [], "before": None, "after": None},
    ]
    text = result.files["store_repair.yaml"]
    assert set(result.files) == set(files)
    assert all(result.files[n] == files[n] for n in files if n != "store_repair.yaml")
    for comment in (
        "      # Taken by the dispatcher by hand, or by the rule routed_means_assigned when routing\n",
        "      # found an engineer.\n",
        "      # P2: part of the store is affected. P3: everything else.\n",
        "  # Counted in store opening hours: overnight, when the store is shut, the clocks stand still.\n",
    ):
        assert comment in files["store_repair.yaml"] and comment in text
    assert "      on_hold: {category: pending, sla: pause, title: {en: On hold}}\n" in text
    assert "      hold: {from: in_progress, to: on_hold, roles: [engineer]}\n" in text
    assert "reopen: {from: resolved, to: assigned, roles: [store_manager, dispatcher]" in text
    # The resolve transition's guard, checks and everything else stay as written.
    assert text.count("Describe what you did before resolving") == 1
    result_pack = load_pack_path(write_pack(tmp_path / "pack", result.files))
    assert result_pack.ok, [d.headline() for d in result_pack.diagnostics]
    assert result_pack.pack is not None
    assert result_pack.pack.workflows["repair"].transitions["reopen"].to == "assigned"


def test_a_removed_state_vanishes_from_every_transition(
    retail: Pack, files: dict[str, str]
) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "assigned"]
    graph["edges"] = [e for e in graph["edges"] if "assigned" not in (e["from"], e["to"])]

    result = apply_graph(files, "repair", graph)

    workflow = workflow_data(result.files["store_repair.yaml"])
    assert "assigned" not in workflow["states"]
    assert "assign" not in workflow["transitions"] and "start" not in workflow["transitions"]
    assert workflow["transitions"]["cancel"]["from"] == ["new"]
    for tr in workflow["transitions"].values():
        froms = tr["from"] if isinstance(tr["from"], list) else [tr["from"]]
        assert "assigned" not in [*froms, tr["to"]]
    assert [(e["op"], e["target"]) for e in result.edits] == [
        ("remove_state", "assigned"),
        ("remove_transition", "assign"),
        ("remove_transition", "start"),
        ("change_transition", "cancel"),
    ]


def test_renaming_an_edge_renames_its_transition_in_place(
    retail: Pack, files: dict[str, str]
) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    edge(graph, "assign:new")["name"] = "dispatch"

    result = apply_graph(files, "repair", graph)

    text = result.files["store_repair.yaml"]
    old_lines = files["store_repair.yaml"].splitlines()
    new_lines = text.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        (
            "      assign: {from: new, to: assigned, roles: [dispatcher], requires: [assignee], title: {en: Assign, zh: 派单}}",
            "      dispatch: {from: new, to: assigned, roles: [dispatcher], requires: [assignee], title: {en: Assign, zh: 派单}}",
        )
    ]
    assert result.edits == [
        {
            "op": "rename_transition",
            "target": "dispatch",
            "keys": [],
            "before": "assign",
            "after": "dispatch",
        }
    ]


def test_two_transitions_can_swap_names(retail: Pack, files: dict[str, str]) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    edge(graph, "confirm:resolved")["name"] = "reopen"
    edge(graph, "reopen:resolved")["name"] = "confirm"

    workflow = workflow_data(apply_graph(files, "repair", graph).files["store_repair.yaml"])

    assert workflow["transitions"]["reopen"]["to"] == "closed"
    assert workflow["transitions"]["confirm"]["to"] == "in_progress"
    # Each entry keeps its place: the one that was `confirm` (written first) is now `reopen`.
    names = list(workflow["transitions"])
    assert names.index("reopen") < names.index("confirm")


def test_one_edge_renamed_away_splits_off_a_copy_of_its_transition(
    retail: Pack, files: dict[str, str]
) -> None:
    graph = editable(workflow_graph(retail, "repair", locale="en"))
    split = edge(graph, "cancel:assigned")
    split["name"], split["roles"] = "withdraw", ["dispatcher"]

    workflow = workflow_data(apply_graph(files, "repair", graph).files["store_repair.yaml"])

    assert workflow["transitions"]["cancel"]["from"] == ["new"]
    assert workflow["transitions"]["withdraw"] == {
        "from": "assigned",
        "to": "cancelled",
        "roles": ["dispatcher"],
        "comment": "required",
        "title": {"en": "Cancel", "zh": "取消"},
    }


def test_editing_one_edge_of_a_transition_edits_the_transition(
    retail: Pack, files: dict[str, str]
) -> None:
    graph = editable(workflow_graph(retail, "repair", locale="en"))
    edge(graph, "cancel:assigned")["comment"] = "optional"

    result = apply_graph(files, "repair", graph)

    assert workflow_data(result.files["store_repair.yaml"])["transitions"]["cancel"] == {
        "from": ["new", "assigned"],
        "to": "cancelled",
        "roles": ["store_manager", "dispatcher"],
        "title": {"en": "Cancel", "zh": "取消"},
    }
    assert result.edits[0]["keys"] == ["comment"]


def test_a_title_edited_in_one_locale_keeps_the_others(retail: Pack, files: dict[str, str]) -> None:
    graph = editable(workflow_graph(retail, "repair", locale="en"))
    graph["nodes"][0]["title"] = "Reported"
    edge(graph, "start:assigned")["title"] = None

    workflow = workflow_data(apply_graph(files, "repair", graph).files["store_repair.yaml"])

    assert workflow["states"]["new"]["title"] == {"en": "Reported", "zh": "新建"}
    assert workflow["transitions"]["start"]["title"] == {"zh": "开始维修"}


def test_moving_the_initial_state(retail: Pack, files: dict[str, str]) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    graph["nodes"][0]["initial"] = False
    graph["nodes"][1]["initial"] = True

    result = apply_graph(files, "repair", graph)

    assert workflow_data(result.files["store_repair.yaml"])["initial"] == "assigned"
    assert result.edits == [
        {
            "op": "set_initial",
            "target": "assigned",
            "keys": [],
            "before": "new",
            "after": "assigned",
        }
    ]


WILDCARD_PACK = """\
pack: desk
title: Desk
timezone: UTC
roles: [agent]
templates:
  ticket: {title: Ticket, workflow: desk}
workflows:
  desk:
    initial: open
    states:
      open: {}
      waiting: {}
      done: {final: true}
    transitions:
      wait: {from: open, to: waiting}
      # Anything can be abandoned.
      abandon: {from: "*", to: done}
"""


def test_a_wildcard_source_is_one_flagged_edge_and_round_trips(tmp_path: Path) -> None:
    files = {"pack.yaml": WILDCARD_PACK}
    pack = load(write_pack(tmp_path / "desk", files))
    graph = editable(workflow_graph(pack, "desk"))
    wildcards = [e for e in graph["edges"] if e["wildcard"]]
    assert [(e["id"], e["from"], e["to"]) for e in wildcards] == [("abandon:*", "*", "done")]
    assert graph["layout"]["nodes"]["done"]["rank"] == 1
    graph["edges"].append({"id": "new-1", "name": "nudge", "from": "*", "to": "open"})

    text = apply_graph(files, "desk", graph).files["pack.yaml"]

    assert "      abandon: {from: \"*\", to: done}\n      nudge: {from: '*', to: open}\n" in text
    assert "      # Anything can be abandoned.\n" in text


def test_positions_the_ui_moved_go_to_the_layout_file(
    retail: Pack, files: dict[str, str], tmp_path: Path
) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    graph["layout"]["nodes"]["closed"].update(x=1000, y=400)

    result = apply_graph(files, "repair", graph)

    # Only the moved node is pinned; the others keep following the computed layout.
    assert result.layout == {"closed": {"x": 1000.0, "y": 400.0}}
    assert json.loads(result.files[LAYOUT_FILE]) == {
        "repair": {"closed": {"x": 1000.0, "y": 400.0}}
    }
    assert result.edits == []
    assert read_saved(result.files) == {"repair": {"closed": {"x": 1000.0, "y": 400.0}}}
    regraphed = workflow_graph(retail, "repair", read_saved(result.files)["repair"])
    assert regraphed["layout"]["nodes"]["closed"]["saved"] is True
    # The pack loader reads YAML files only: layout.json beside them changes nothing.
    loaded = load_pack_path(write_pack(tmp_path / "pack", result.files))
    assert loaded.ok and LAYOUT_FILE not in loaded.texts


def test_a_graph_without_layout_keeps_the_saved_positions_of_remaining_states(
    retail: Pack, files: dict[str, str]
) -> None:
    files[LAYOUT_FILE] = json.dumps(
        {"repair": {"closed": {"x": 1, "y": 2}, "waiting_parts": {"x": 3, "y": 4}}}
    )
    graph = editable(workflow_graph(retail, "repair"))
    del graph["layout"]
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "waiting_parts"]
    graph["edges"] = [e for e in graph["edges"] if "waiting_parts" not in (e["from"], e["to"])]

    result = apply_graph(files, "repair", graph)

    assert result.layout == {"closed": {"x": 1.0, "y": 2.0}}
    assert json.loads(result.files[LAYOUT_FILE]) == {"repair": {"closed": {"x": 1.0, "y": 2.0}}}


# -- bad graphs ------------------------------------------------------------------------------


def test_a_bad_graph_reports_every_problem_with_a_pointer_and_changes_nothing(
    retail: Pack, files: dict[str, str]
) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    before = copy.deepcopy(files)
    graph["nodes"][0]["initial"] = False  # no initial state any more
    graph["nodes"].append({"id": "assigned"})  # duplicate of /nodes/1
    graph["nodes"].append({"id": "on hold"})  # not a name
    graph["edges"][3]["to"] = "resolvd"
    graph["edges"][4]["id"] = graph["edges"][0]["id"]
    graph["edges"][5]["comment"] = "maybe"
    graph["edges"][6]["roles"] = ["store manager"]
    graph["edges"].append({"id": "x", "name": "go", "from": "new", "to": "*"})
    graph["layout"]["nodes"]["new"] = {"x": "left"}

    with pytest.raises(GraphError) as caught:
        apply_graph(files, "repair", graph)

    found = [(p.pointer, p.code) for p in caught.value.problems]
    assert found == [
        ("/nodes/7/id", "duplicate-id"),
        ("/nodes/8/id", "invalid-name"),
        ("/nodes", "no-initial"),
        ("/edges/3/to", "unknown-node"),
        ("/edges/4/id", "duplicate-id"),
        ("/edges/5/comment", "option"),
        ("/edges/6/roles/0", "invalid-name"),
        ("/edges/9/to", "wildcard-target"),
        ("/layout/nodes/new", "type"),
    ]
    messages = {p.pointer: p.message for p in caught.value.problems}
    assert messages["/edges/3/to"] == "no node 'resolvd'; did you mean 'resolved'?"
    assert messages["/nodes"] == "no node is marked initial; mark the state new tickets start in"
    assert "invalid name 'on hold'" in messages["/nodes/8/id"]
    assert messages["/nodes/7/id"] == "node 'assigned' appears twice (first at /nodes/1)"
    assert files == before


def test_removing_the_initial_state_needs_a_new_one(retail: Pack, files: dict[str, str]) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "new"]
    graph["edges"] = [e for e in graph["edges"] if e["from"] != "new"]

    with pytest.raises(GraphError) as caught:
        apply_graph(files, "repair", graph)

    assert [(p.pointer, p.message) for p in caught.value.problems] == [
        (
            "/nodes",
            "the initial state 'new' was removed and no other node is initial; "
            "mark the state new tickets start in",
        )
    ]


def test_edges_of_one_transition_that_change_differently_are_refused(
    retail: Pack, files: dict[str, str]
) -> None:
    graph = editable(workflow_graph(retail, "repair"))
    edge(graph, "cancel:new")["to"] = "closed"
    edge(graph, "cancel:assigned")["to"] = "resolved"

    with pytest.raises(GraphError) as caught:
        apply_graph(files, "repair", graph)

    (problem,) = caught.value.problems
    assert problem.pointer == "/edges/8/to"
    assert problem.message == (
        "edges of transition 'cancel' disagree on 'to': /edges/7/to says 'closed'; "
        "give this edge another name to make it a transition of its own"
    )
    # An edge left as it was is not the one in the wrong.
    edge(graph, "cancel:assigned")["to"] = "cancelled"
    graph["edges"].append({"id": "e9", "name": "cancel", "from": "in_progress", "to": "resolved"})
    with pytest.raises(GraphError) as caught:
        apply_graph(files, "repair", graph)
    assert [p.pointer for p in caught.value.problems] == ["/edges/9/to"]
    assert problem.code == "edges-disagree"


def test_a_graph_must_be_an_object_with_lists() -> None:
    files = {"pack.yaml": WILDCARD_PACK}
    for graph, expected in (
        ([], [("", "type")]),
        ({"nodes": {}, "edges": 3}, [("/nodes", "type"), ("/edges", "type")]),
        (
            {"workflow": "other", "nodes": [{"id": "open", "initial": True}]},
            [("/workflow", "workflow")],
        ),
    ):
        with pytest.raises(GraphError) as caught:
            apply_graph(files, "desk", graph)
        assert [(p.pointer, p.code) for p in caught.value.problems] == expected


def test_workflows_that_cannot_be_edited() -> None:
    flow = "workflow w {\n  initial a\n  final b\n  a -> b : go\n}\n"
    graph = {"nodes": [{"id": "a", "initial": True}], "edges": []}
    with pytest.raises(DraftError, match="written in the text DSL"):
        apply_graph({"pack.yaml": WILDCARD_PACK, "w.flow": flow}, "w", graph)
    with pytest.raises(WorkflowNotFound, match="did you mean 'desk'"):
        apply_graph({"pack.yaml": WILDCARD_PACK}, "dsek", graph)
    with pytest.raises(DraftError) as caught:
        apply_graph({"pack.yaml": WILDCARD_PACK, "broken.yaml": "a: [\n"}, "nowhere", graph)
    assert caught.value.diagnostics[0].span is not None
    assert caught.value.diagnostics[0].span.file == "broken.yaml"
