"""Diffs between pack versions: every change with its values before and after, in document
order, and a summary per workflow and template."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from builder_api.diff import Change, diff_documents, parse_pointer, summarize
from builder_api.drafts import draft_document

RETAIL = Path(__file__).resolve().parent.parent / "examples" / "workflows" / "retail_store"


@pytest.fixture(scope="module")
def version_1() -> dict[str, Any]:
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(RETAIL.glob("*.yaml"))}
    doc = draft_document(files)
    assert doc is not None
    return doc


def test_a_removed_state_is_listed_with_its_value_before(version_1: dict[str, Any]) -> None:
    version_2 = copy.deepcopy(version_1)
    removed = version_2["workflows"]["repair"]["states"].pop("waiting_parts")
    changes = diff_documents(version_1, version_2)
    assert changes == [
        Change("remove", "/workflows/repair/states/waiting_parts", before=removed, after=None)
    ]
    assert removed["sla"] == "pause"


def test_identical_documents_have_no_changes(version_1: dict[str, Any]) -> None:
    assert diff_documents(version_1, copy.deepcopy(version_1)) == []


def test_changes_come_in_document_order(version_1: dict[str, Any]) -> None:
    version_2 = copy.deepcopy(version_1)
    version_2["timezone"] = "Asia/Hong_Kong"
    version_2["templates"]["store_repair"]["fields"]["priority"]["default"] = "P2"
    version_2["workflows"]["repair"]["transitions"]["cancel"]["roles"].append("admin")
    version_2["new_setting_last"] = True
    del version_2["canned_replies"]
    changes = diff_documents(version_1, version_2)
    assert [(c.op, c.path) for c in changes] == [
        ("replace", "/templates/store_repair/fields/priority/default"),
        ("add", "/workflows/repair/transitions/cancel/roles/2"),
        ("remove", "/canned_replies"),
        ("replace", "/timezone"),
        ("add", "/new_setting_last"),
    ]
    assert (changes[0].before, changes[0].after) == ("P3", "P2")
    assert changes[-1].before is None and changes[-1].after is True


def test_list_items_are_compared_item_by_item() -> None:
    old: dict[str, Any] = {
        "rules": {"r": {"do": [{"set": {"a": 1}}, {"notify": {"to": "assignee"}}]}}
    }
    new = copy.deepcopy(old)
    new["rules"]["r"]["do"][1]["notify"]["to"] = "requester"
    new["rules"]["r"]["do"].insert(0, {"comment": {"message": "m"}})
    changes = diff_documents(old, new)
    assert changes == [
        Change("add", "/rules/r/do/0", after={"comment": {"message": "m"}}),
        Change("replace", "/rules/r/do/2/notify/to", before="assignee", after="requester"),
    ]


def test_values_of_another_type_are_changes() -> None:
    changes = diff_documents({"a": 1, "b": True, "c": [1]}, {"a": 1.0, "b": 1, "c": [True]})
    assert [c.path for c in changes] == ["/a", "/b", "/c/0"]


def test_pointers_escape_names() -> None:
    (change,) = diff_documents({"messages": {}}, {"messages": {"a/b~c": "x"}})
    assert change.path == "/messages/a~1b~0c"
    assert parse_pointer(change.path) == ("messages", "a/b~c")


def test_summary_per_workflow_and_template(version_1: dict[str, Any]) -> None:
    version_2 = copy.deepcopy(version_1)
    repair = version_2["workflows"]["repair"]
    del repair["states"]["waiting_parts"]
    repair["states"]["on_hold"] = {"category": "pending"}
    repair["transitions"]["start"]["roles"] = ["engineer", "dispatcher"]
    fields = version_2["templates"]["store_repair"]["fields"]
    del fields["engineer_notes"]
    fields["root_cause"] = {"type": "text"}
    del version_2["rules"]["monthly_inspection"]
    version_2["rules"]["night_alert"] = {"on": "created", "do": [{"set": {"priority": "P1"}}]}
    version_2["workflows"]["audit"] = {
        "initial": "open",
        "states": {"open": {}, "done": {"final": True}},
        "transitions": {"finish": {"from": "open", "to": "done"}},
    }
    version_2["roles"]["auditor"] = {}
    version_2["title"]["en"] = "Shops"
    summary = summarize(diff_documents(version_1, version_2))
    assert summary["workflows"]["repair"] == {
        "status": "changed",
        "states": {"added": ["on_hold"], "removed": ["waiting_parts"], "changed": []},
        "transitions": {"added": [], "removed": [], "changed": ["start"]},
    }
    assert summary["workflows"]["audit"] == {
        "status": "added",
        "states": {"added": ["open", "done"], "removed": [], "changed": []},
        "transitions": {"added": ["finish"], "removed": [], "changed": []},
    }
    assert summary["templates"] == {
        "store_repair": {
            "status": "changed",
            "fields": {"added": ["root_cause"], "removed": ["engineer_notes"], "changed": []},
        }
    }
    assert summary["rules"] == {
        "added": ["night_alert"],
        "removed": ["monthly_inspection"],
        "changed": [],
    }
    assert summary["sections"] == {"roles": {"added": ["auditor"], "removed": [], "changed": []}}
    assert summary["settings"] == ["title"]


def test_summary_of_a_removed_template_and_a_changed_rule(version_1: dict[str, Any]) -> None:
    version_2 = copy.deepcopy(version_1)
    del version_2["templates"]["store_inspection"]
    rule = next(iter(version_2["rules"]))
    version_2["rules"][rule]["priority"] = 99
    summary = summarize(diff_documents(version_1, version_2))
    inspection = summary["templates"]["store_inspection"]
    assert inspection["status"] == "removed"
    assert "inspector_signature" in inspection["fields"]["removed"]
    assert summary["rules"]["changed"] == [rule]


def test_summary_of_a_list_section_names_its_items() -> None:
    old = {"roles": ["agent", "customer", "admin"]}
    new = {"roles": ["agent", "admin", "auditor"]}
    summary = summarize(diff_documents(old, new))
    assert summary["sections"]["roles"] == {
        "added": ["auditor"],
        "removed": ["customer"],
        "changed": [],
    }


def test_an_item_moved_in_a_list_section_is_changed_not_added_and_removed() -> None:
    old = {"roles": ["agent", "customer", "admin"]}
    new = {"roles": ["admin", "agent", "customer"]}
    roles = summarize(diff_documents(old, new))["sections"]["roles"]
    assert roles["added"] == [] and roles["removed"] == [] and len(roles["changed"]) == 1
