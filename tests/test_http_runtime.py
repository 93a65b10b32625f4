"""The runtime endpoints over HTTP: tickets, transitions, comments, assignment, bulk,
timeline, SLA; every response filtered exactly as the embedding API filters it; errors as
problem documents listing every failing field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from builder_api.app import ApiSettings
from runtime.actors import Actor
from tests.http_fixtures import INCIDENT, Api, open_api
from tests.runtime_fixtures import STORE_KINDS


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api("sqlite", tmp_path_factory.mktemp("http")) as found:
        yield found


AGENT = ("sam", "service_desk_agent")
ENGINEER = ("marcus", "support_engineer")


def test_create_then_get_returns_what_the_embedding_api_returns(api: Api) -> None:
    made = api.create_incident()
    assert made["template"] == "incident" and made["state"] == "new"
    assert made["fields"]["impact"] == "medium"
    for user, role in (("olivia", "employee"), AGENT):
        r = api.client.get(api.url("acme", f"tickets/{made['id']}"), headers=api.auth(user, role))
        assert r.status_code == 200
        direct = api.rt.get(made["id"], Actor.of(user, [role], "acme")).to_dict()
        assert r.json() == json.loads(json.dumps(direct, default=_iso))


def _iso(value: Any) -> str:
    text = value.isoformat()
    return text.replace("+00:00", "Z")


def test_hidden_fields_never_reach_an_employee(api: Api) -> None:
    made = api.create_incident()
    agent = api.auth(*AGENT)
    r = api.client.patch(
        api.url("acme", f"tickets/{made['id']}"),
        json={"fields": {"vendor": "cisco", "vendor_ref": "CASE-ZX-991"}},
        headers=agent,
    )
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["vendor_ref"] == "CASE-ZX-991"
    mine = api.client.get(
        api.url("acme", f"tickets/{made['id']}"), headers=api.auth("olivia", "employee")
    )
    assert "vendor" not in mine.json()["fields"]
    assert "vendor_ref" not in mine.json()["fields"]
    timeline = api.client.get(
        api.url("acme", f"tickets/{made['id']}/timeline"), headers=api.auth("olivia", "employee")
    )
    assert "CASE-ZX-991" not in timeline.text
    found = api.client.get(
        api.url("acme", "tickets?q=case-zx-991"), headers=api.auth("olivia", "employee")
    )
    assert made["id"] not in {t["id"] for t in found.json()["items"]}


def test_someone_elses_ticket_is_not_found_for_an_employee(api: Api) -> None:
    made = api.create_incident(user="olivia")
    r = api.client.get(
        api.url("acme", f"tickets/{made['id']}"), headers=api.auth("emily", "employee")
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "not-found"


def test_transitions_list_says_why_not_and_taking_one_moves_the_ticket(api: Api) -> None:
    made = api.create_incident()
    url = api.url("acme", f"tickets/{made['id']}/transitions")
    mine = api.client.get(url, headers=api.auth("olivia", "employee")).json()
    assign = next(t for t in mine if t["name"] == "assign")
    assert assign["allowed"] is False and "service_desk_agent" in assign["reason"]
    denied = api.client.post(url + "/assign", json={}, headers=api.auth("olivia", "employee"))
    assert denied.status_code == 403 and denied.json()["code"] == "permission-denied"
    agent = api.auth(*AGENT)
    r = api.client.post(
        api.url("acme", f"tickets/{made['id']}/assign"), json={"to": "marcus"}, headers=agent
    )
    assert r.status_code == 200, r.text
    assert (r.json()["assignee"], r.json()["state"]) == ("marcus", "assigned")
    engineer = api.auth(*ENGINEER)
    moved = api.client.post(url + "/acknowledge", json={}, headers=engineer)
    assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "in_progress"
    again = api.client.post(url + "/acknowledge", json={}, headers=engineer)
    assert again.status_code == 409 and again.json()["code"] == "transition-unavailable"


def test_stale_expected_version_conflicts_and_changes_nothing(api: Api) -> None:
    made = api.create_incident()
    url = api.url("acme", f"tickets/{made['id']}")
    agent = api.auth(*AGENT)
    ok = api.client.patch(
        url, json={"fields": {"vendor": "sap"}, "expected_version": 1}, headers=agent
    )
    assert ok.status_code == 200
    stale = api.client.patch(
        url, json={"fields": {"vendor": "dell"}, "expected_version": 1}, headers=agent
    )
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    assert api.client.get(url, headers=agent).json()["fields"]["vendor"] == "sap"


def test_validation_lists_every_failing_field_with_pointers(api: Api) -> None:
    bad_values = api.client.post(
        api.url("acme", "tickets"),
        json={"template": "incident", "fields": {"impact": "huge", "users_affected": "many"}},
        headers=api.auth("olivia", "employee"),
    )
    assert bad_values.status_code == 422
    problem = bad_values.json()
    assert problem["code"] == "invalid-fields"
    pointers = {e["pointer"]: e["code"] for e in problem["errors"]}
    assert pointers["/fields/impact"] == "option"
    assert "/fields/users_affected" in pointers
    assert {"/fields/category", "/fields/description", "/fields/urgency"} <= set(pointers)
    bad_shape = api.client.post(
        api.url("acme", "tickets"),
        json={"fields": [], "titel": "x"},
        headers=api.auth("olivia", "employee"),
    )
    assert bad_shape.status_code == 400
    shape = {e["pointer"] for e in bad_shape.json()["errors"]}
    assert shape == {"/template", "/fields", "/titel"}
    bad_query = api.client.get(
        api.url("acme", "tickets?limit=0&sla=late"), headers=api.auth("olivia", "employee")
    )
    assert bad_query.status_code == 400
    assert {e["pointer"] for e in bad_query.json()["errors"]} == {"/query/limit", "/query/sla"}


def test_unknown_template_is_a_located_problem_with_a_hint(api: Api) -> None:
    r = api.client.post(
        api.url("acme", "tickets"),
        json={"template": "incidnet", "fields": {}},
        headers=api.auth("olivia", "employee"),
    )
    assert r.status_code == 404
    assert "did you mean 'incident'" in r.json()["detail"]


def test_idempotency_key_returns_the_first_ticket(api: Api) -> None:
    headers = {**api.auth("olivia", "employee"), "Idempotency-Key": "form-7781"}
    body = {"template": "incident", "fields": INCIDENT}
    first = api.client.post(api.url("acme", "tickets"), json=body, headers=headers)
    second = api.client.post(api.url("acme", "tickets"), json=body, headers=headers)
    assert first.json()["id"] == second.json()["id"]


def test_list_filters_and_cursor_pages(api: Api) -> None:
    agent = api.auth(*AGENT)
    marker = "pagination-marker"
    made = []
    for i in range(5):
        api.clock.advance(timedelta(seconds=1))  # oldest first: the order is creation time
        made.append(api.create_incident(description=f"{marker} {i}")["id"])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        q = f"tickets?q={marker}&limit=2&template=incident&state=new"
        r = api.client.get(
            api.url("acme", q + (f"&cursor={cursor}" if cursor else "")), headers=agent
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == made
    assert api.client.get(
        api.url("acme", f"tickets?q={marker}&state=resolved"), headers=agent
    ).json() == {
        "items": [],
        "cursor": None,
    }


def test_sla_status_and_filter(api: Api) -> None:
    made = api.create_incident(description="sla-filter-marker")
    agent = api.auth(*AGENT)
    clocks = api.client.get(api.url("acme", f"tickets/{made['id']}/sla"), headers=agent).json()
    assert {c["metric"] for c in clocks} == {"first_response", "resolution"}
    assert all(c["state"] == "running" for c in clocks)
    assert all(c["target_seconds"] > 0 for c in clocks)
    running = api.client.get(
        api.url("acme", "tickets?q=sla-filter-marker&sla=running"), headers=agent
    )
    breached = api.client.get(
        api.url("acme", "tickets?q=sla-filter-marker&sla=breached"), headers=agent
    )
    assert [t["id"] for t in running.json()["items"]] == [made["id"]]
    assert breached.json()["items"] == []
    api.clock.advance(timedelta(days=10))
    api.rt.run_due()
    breached = api.client.get(
        api.url("acme", "tickets?q=sla-filter-marker&sla=breached"), headers=agent
    )
    assert [t["id"] for t in breached.json()["items"]] == [made["id"]]


def test_comments_internal_notes_and_the_customer_timeline(api: Api) -> None:
    made = api.create_incident()
    url = api.url("acme", f"tickets/{made['id']}/comments")
    employee = api.auth("olivia", "employee")
    note = api.client.post(
        url, json={"body": "router model RX-1", "internal": True}, headers=api.auth(*AGENT)
    )
    assert note.status_code == 201, note.text
    denied = api.client.post(url, json={"body": "psst", "internal": True}, headers=employee)
    assert denied.status_code == 403
    public = api.client.post(url, json={"body": "still broken"}, headers=employee)
    assert public.status_code == 201
    theirs = api.client.get(api.url("acme", f"tickets/{made['id']}/timeline"), headers=employee)
    assert "still broken" in theirs.text and "RX-1" not in theirs.text
    staff = api.client.get(
        api.url("acme", f"tickets/{made['id']}/timeline"), headers=api.auth(*AGENT)
    )
    assert "RX-1" in staff.text


def test_bulk_items_fail_alone(api: Api) -> None:
    agent = api.auth(*AGENT)
    good = api.create_incident()["id"]
    r = api.client.post(
        api.url("acme", "tickets/bulk/assign"),
        json={"ticket_ids": [good, "no-such-ticket"], "to": "marcus"},
        headers=agent,
    )
    assert r.status_code == 200
    items = r.json()
    assert items[0]["ok"] is True and items[0]["ticket"]["assignee"] == "marcus"
    assert items[1] == {
        "index": 1,
        "ok": False,
        "ticket": None,
        "error": {"code": "not-found", "detail": items[1]["error"]["detail"], "status": 404},
    }
    made = api.client.post(
        api.url("acme", "tickets/bulk/create"),
        json={"items": [{"template": "incident", "fields": INCIDENT}, {"template": "incident"}]},
        headers=api.auth("olivia", "employee"),
    ).json()
    assert [i["ok"] for i in made] == [True, False]
    assert made[1]["error"]["code"] == "invalid-fields"


def test_transfer_and_claim_go_through_the_runtime(api: Api) -> None:
    made = api.create_incident()
    r = api.client.post(
        api.url("acme", f"tickets/{made['id']}/transfer"),
        json={"team": "no_such_team"},
        headers=api.auth(*AGENT),
    )
    assert r.status_code in (400, 404) and r.json()["code"] in ("invalid-command", "not-found")
    claim = api.client.post(
        api.url("acme", f"tickets/{made['id']}/claim"), headers=api.auth(*ENGINEER)
    )
    assert claim.status_code in (403, 404, 409)
    assert claim.json()["status"] == claim.status_code


# -- authentication ---------------------------------------------------------------------------


def test_requests_without_a_valid_token_are_refused(api: Api) -> None:
    url = api.url("acme", "tickets")
    missing = api.client.get(url)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = api.client.get(url, headers={"Authorization": "Bearer tf_nope_nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthenticated"
    gateway = api.client.get(
        url,
        headers={
            "X-Ticketflow-Tenant": "acme",
            "X-Ticketflow-User": "sam",
            "X-Ticketflow-Roles": "it_manager",
        },
    )
    assert gateway.status_code == 401  # headers are not trusted unless the server says so


def test_a_revoked_token_stops_working(api: Api) -> None:
    issued = api.rt.issue_token("acme", "zoe", ["employee"], name="to revoke")
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert api.client.get(api.url("acme", "tickets"), headers=headers).status_code == 200
    admin = api.auth("root", "ticketflow:admin")
    listed = api.client.get(api.url("acme", "tokens"), headers=admin).json()
    assert issued.row.id in {t["id"] for t in listed}
    assert all("secret" not in t and "hash" not in t for t in listed)
    r = api.client.delete(api.url("acme", f"tokens/{issued.row.id}"), headers=admin)
    assert r.status_code == 204
    assert api.client.get(api.url("acme", "tickets"), headers=headers).status_code == 401
    with api.rt.store.read() as tx:
        audit = [
            (a.action, a.actor) for a in tx.audit("acme") if a.subject == f"token:{issued.row.id}"
        ]
    assert audit == [("token-issue", "system"), ("token-revoke", "root")]


def test_tokens_are_stored_hashed(api: Api) -> None:
    issued = api.rt.issue_token("acme", "zed", ["employee"])
    with api.rt.store.read() as tx:
        rows = tx.tokens("acme")
    stored = next(r for r in rows if r.id == issued.row.id)
    assert issued.secret not in repr(stored)
    assert stored.hash != issued.secret and len(stored.hash) == 64


def test_token_endpoints_need_the_admin_role(api: Api) -> None:
    r = api.client.post(
        api.url("acme", "tokens"),
        json={"user": "mallory", "roles": ["ticketflow:admin"]},
        headers=api.auth("olivia", "employee"),
    )
    assert r.status_code == 403 and r.json()["code"] == "admin-only"
    made = api.client.post(
        api.url("acme", "tokens"),
        json={"user": "desk", "roles": ["service_desk_agent"], "name": "desk app"},
        headers=api.auth("root", "ticketflow:admin"),
    )
    assert made.status_code == 201
    secret = made.json()["secret"]
    assert (
        api.client.get(
            api.url("acme", "tickets"), headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_trusted_gateway_headers(kind: str, tmp_path: Path) -> None:
    settings = ApiSettings(trust_gateway=True, gateway_secret="s3cret", token_cache_seconds=0)
    with open_api(kind, tmp_path, settings) as api:
        headers = {
            "X-Ticketflow-Tenant": "acme",
            "X-Ticketflow-User": "olivia",
            "X-Ticketflow-Roles": "employee",
        }
        body = {"template": "incident", "fields": INCIDENT}
        url = api.url("acme", "tickets")
        assert api.client.post(url, json=body, headers=headers).status_code == 401
        ok = api.client.post(
            url, json=body, headers={**headers, "X-Ticketflow-Gateway-Secret": "s3cret"}
        )
        assert ok.status_code == 201 and ok.json()["requester"] == "olivia"
        other = api.client.get(
            api.url("globex", "tickets"),
            headers={**headers, "X-Ticketflow-Gateway-Secret": "s3cret"},
        )
        assert other.status_code == 403 and other.json()["code"] == "wrong-tenant"
