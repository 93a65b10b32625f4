"""The builder endpoints over HTTP, as a drag-and-drop admin UI uses them: palette, drafts
edited as JSON with the admin's YAML comments kept, located validation, the workflow graph
edited and sent back, publishing (refused with every error, or with stranded states),
versions and diffs, and form schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http_fixtures import Api, open_api
from tests.runtime_fixtures import ROOT

RETAIL = ROOT / "examples" / "workflows" / "retail_store"
COMMENT = (
    "      # Taken by the dispatcher by hand, or by the rule routed_means_assigned when routing"
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api("sqlite", tmp_path) as found:
        yield found


def _files() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(RETAIL.glob("*.yaml"))}


def _admin(api: Api) -> dict[str, str]:
    return api.auth("root", "ticketflow:admin")


def _draft(api: Api) -> dict[str, object]:
    r = api.client.post(
        api.url("acme", "builder/drafts"),
        json={"pack": "retail_store", "files": _files()},
        headers=_admin(api),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_palette_lists_what_the_engine_knows_for_admins_only(api: Api) -> None:
    r = api.client.get(api.url("acme", "builder/palette"), headers=_admin(api))
    assert r.status_code == 200
    palette = r.json()
    types = {t["name"]: t for t in palette["field_types"]}
    assert {"text", "choice", "asset", "signature", "table"} <= set(types)
    assert types["choice"]["schema"]["properties"]["options"]
    assert {"len", "abs"} <= {f["name"] for f in palette["conditions"]}
    denied = api.client.get(
        api.url("acme", "builder/palette"), headers=api.auth("amy", "store_manager")
    )
    assert denied.status_code == 403 and denied.json()["code"] == "admin-only"


def test_a_json_edit_keeps_the_admins_comments(api: Api) -> None:
    draft = _draft(api)
    patch = {"workflows": {"repair": {"transitions": {"confirm": {"comment": "required"}}}}}
    r = api.client.patch(
        api.url("acme", "builder/drafts/retail_store"),
        json=patch,
        headers={**_admin(api), "If-Match": str(draft["revision"])},
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["revision"] == 2
    text = edited["files"]["store_repair.yaml"]
    assert COMMENT in text
    assert (
        edited["document"]["workflows"]["repair"]["transitions"]["confirm"]["comment"] == "required"
    )
    assert (
        edited["files"]["pack.yaml"] == _files()["pack.yaml"]
    )  # untouched files stay as they were
    stale = api.client.patch(
        api.url("acme", "builder/drafts/retail_store"),
        json={"title": "lost"},
        headers={**_admin(api), "If-Match": "1"},
    )
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    now = api.client.get(api.url("acme", "builder/drafts/retail_store"), headers=_admin(api)).json()
    assert now["revision"] == 2 and now["document"]["title"] != "lost"


def test_validation_locates_every_problem_in_the_text_and_the_model(api: Api) -> None:
    _draft(api)
    broken = {
        "templates": {"store_repair": {"workflow": "repiar"}},
        "workflows": {"repair": {"initial": "nowhere"}},
    }
    api.client.patch(
        api.url("acme", "builder/drafts/retail_store"), json=broken, headers=_admin(api)
    )
    r = api.client.post(
        api.url("acme", "builder/drafts/retail_store/validate"), headers=_admin(api)
    )
    report = r.json()
    assert r.status_code == 200 and report["ok"] is False and report["errors"] >= 2
    by_pointer = {d["pointer"]: d for d in report["diagnostics"]}
    workflow = by_pointer["/templates/store_repair/workflow"]
    assert workflow["file"] == "store_repair.yaml" and workflow["line"] > 1
    assert "did you mean 'repair'" in (workflow["hint"] or "")
    assert "/workflows/repair/initial" in by_pointer
    refused = api.client.post(
        api.url("acme", "builder/drafts/retail_store/publish"), json={}, headers=_admin(api)
    )
    assert refused.status_code == 422 and refused.json()["code"] == "publish-refused"
    assert {e["pointer"] for e in refused.json()["errors"]} >= {
        "/templates/store_repair/workflow",
        "/workflows/repair/initial",
    }
    versions = api.client.get(
        api.url("acme", "builder/packs/retail_store/versions"), headers=_admin(api)
    )
    assert [v["version"] for v in versions.json()] == [1]


def test_bad_file_names_are_refused_each_by_name(api: Api) -> None:
    r = api.client.post(
        api.url("acme", "builder/drafts"),
        json={
            "pack": "retail_store",
            "files": {"../evil.yaml": "x: 1", "notes.txt": "", "pack.yaml": "pack: retail_store"},
        },
        headers=_admin(api),
    )
    assert r.status_code == 400
    assert {e["pointer"] for e in r.json()["errors"]} == {
        "/files/..~1evil.yaml",
        "/files/notes.txt",
    }
    assert api.client.get(api.url("acme", "builder/drafts"), headers=_admin(api)).json() == []


def test_the_graph_edited_by_a_ui_is_written_back_keeping_comments(api: Api) -> None:
    _draft(api)
    url = api.url("acme", "builder/drafts/retail_store/workflows/repair/graph")
    graph = api.client.get(url, headers=_admin(api)).json()
    assert {n["id"] for n in graph["nodes"]} >= {"new", "assigned", "closed"}
    assert graph["layout"]["nodes"]["new"]["rank"] == 0
    graph["nodes"].append(
        {"id": "on_hold", "title": {"en": "On hold", "zh": "暂停"}, "category": "pending"}
    )
    graph["edges"].append(
        {
            "id": "hold:in_progress",
            "name": "hold",
            "from": "in_progress",
            "to": "on_hold",
            "roles": ["engineer"],
        }
    )
    graph["edges"].append(
        {
            "id": "unhold:on_hold",
            "name": "unhold",
            "from": "on_hold",
            "to": "in_progress",
            "roles": ["engineer"],
        }
    )
    r = api.client.put(url, json=graph, headers=_admin(api))
    assert r.status_code == 200, r.text
    out = r.json()
    assert {e["op"] for e in out["edits"]} == {"add_state", "add_transition"}
    assert out["validation"]["ok"] is True
    files = api.client.get(
        api.url("acme", "builder/drafts/retail_store"), headers=_admin(api)
    ).json()["files"]
    assert COMMENT in files["store_repair.yaml"] and "on_hold" in files["store_repair.yaml"]
    bad = dict(
        graph, edges=[*graph["edges"], {"id": "x:new", "name": "x", "from": "new", "to": "nowhere"}]
    )
    refused = api.client.put(url, json=bad, headers=_admin(api))
    assert refused.status_code == 422 and refused.json()["code"] == "invalid-graph"
    assert any(e["pointer"].endswith("/to") for e in refused.json()["errors"])


def test_publishing_a_draft_that_strands_tickets_needs_a_migration_map(api: Api) -> None:
    dispatcher = api.auth("dora", "dispatcher")
    made = api.client.post(
        api.url("acme", "tickets"),
        json={
            "template": "store_repair",
            "channel": "mobile",
            "fields": {
                "store_no": "S0123",
                "category": "refrigeration",
                "description": "Dairy fridge 2 is warm",
            },
        },
        headers=api.auth("amy", "store_staff"),
    )
    assert made.status_code == 201, made.text
    assert (
        api.client.get(api.url("acme", f"tickets/{made.json()['id']}"), headers=dispatcher).json()[
            "state"
        ]
        == "new"
    )
    _draft(api)
    url = api.url("acme", "builder/drafts/retail_store/workflows/repair/graph")
    graph = api.client.get(url, headers=_admin(api)).json()
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "new"] + [
        {"id": "reported", "category": "new", "title": "Reported"}
    ]
    graph["edges"] = [
        {**e, "from": "reported"} if e["from"] == "new" else e for e in graph["edges"]
    ]
    graph["initial"] = "reported"
    for node in graph["nodes"]:
        node["initial"] = node["id"] == "reported"
    edited = api.client.put(url, json=graph, headers=_admin(api))
    assert edited.status_code == 200, edited.text
    rule = {
        "rules": {
            "routed_means_assigned": {"if": 'state == "reported" and ticket.assignee != null'}
        }
    }
    fixed = api.client.patch(
        api.url("acme", "builder/drafts/retail_store"), json=rule, headers=_admin(api)
    )
    assert fixed.status_code == 200, fixed.text
    report = api.client.post(
        api.url("acme", "builder/drafts/retail_store/validate"), headers=_admin(api)
    ).json()
    assert report["ok"], report
    publish = api.url("acme", "builder/drafts/retail_store/publish")
    refused = api.client.post(publish, json={}, headers=_admin(api))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["pointer"] == "/migrate"
    assert "'new'" in refused.json()["errors"][0]["message"]
    done = api.client.post(publish, json={"migrate": {"new": "reported"}}, headers=_admin(api))
    assert done.status_code == 201, done.text
    assert done.json()["version"] == 2
    moved = api.client.get(
        api.url("acme", f"tickets/{made.json()['id']}"), headers=dispatcher
    ).json()
    assert (moved["state"], moved["pack_version"]) == ("reported", 2)
    diff = api.client.get(
        api.url("acme", "builder/packs/retail_store/diff?from=1&to=2"), headers=_admin(api)
    ).json()
    assert diff["summary"]["workflows"]["repair"]["states"]["added"] == ["reported"]
    assert diff["summary"]["workflows"]["repair"]["states"]["removed"] == ["new"]


def test_form_schemas_follow_the_callers_permissions_and_locale(api: Api) -> None:
    staff = api.client.get(
        api.url("acme", "forms/incident?locale=zh"), headers=api.auth("olivia", "employee")
    ).json()
    agent = api.client.get(
        api.url("acme", "forms/incident"), headers=api.auth("sam", "service_desk_agent")
    ).json()
    assert (
        "vendor" not in staff["schema"]["properties"] and "vendor" in agent["schema"]["properties"]
    )
    assert staff["locale"] == "zh" and staff["uiSchema"]["ui:order"][0] == "site"
    assert staff["uiSchema"]["description"]["ui:widget"] == "textarea"
    preview = api.client.get(
        api.url("acme", "builder/packs/it_service_desk/forms/incident?role=employee&locale=zh"),
        headers=_admin(api),
    ).json()
    assert preview["schema"] == staff["schema"]
    rules = api.client.post(
        api.url("acme", "forms/incident/evaluate"),
        json={"values": {}},
        headers=api.auth("olivia", "employee"),
    ).json()
    assert "description" in rules["required"]
