"""Tenant isolation over HTTP: every endpoint, called with another tenant's ids or tokens,
is denied, and nothing of the other tenant leaks through lists, searches, counts or error
texts. The endpoints come from the OpenAPI document, so a new endpoint without a case here
fails `test_every_endpoint_is_covered`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.http_fixtures import ASSET, Api, open_api

MARKER = "zq-globex-secret-7731"
NOBODY = "0123456789abcdef0123456789abcdef"

# Roles broad enough that only the tenant boundary can stop the caller.
EVERYTHING = ("ticketflow:admin", "ticketflow:intake", "service_desk_agent", "it_manager")

# A body that would succeed (or fail only on the id) for each operation that takes one.
BODIES: dict[str, Any] = {
    "createTicket": {"template": "incident", "fields": {}},
    "updateTicket": {"fields": {"vendor": "sap"}},
    "takeTransition": {"fields": {}},
    "addComment": {"body": "hello"},
    "assignTicket": {"to": "sam"},
    "transferTicket": {"team": "network"},
    "bulkAssignTickets": {"ticket_ids": ["{ticket_id}"], "to": "sam"},
    "bulkTransitionTickets": {"ticket_ids": ["{ticket_id}"], "transition": "assign"},
    "bulkCreateTickets": {"items": [{"template": "incident", "fields": {}}]},
    "issueToken": {"user": "mallory", "roles": ["ticketflow:admin"]},
    "createDraft": {"pack": "it_service_desk"},
    "replaceDraft": {"files": {"pack.yaml": "pack: it_service_desk\n"}},
    "patchDraft": {"title": "x"},
    "publishDraft": {},
    "putWorkflowGraph": {"nodes": [], "edges": []},
    "putAssets": [ASSET],
    "receiveEmail": {},
    "receiveAlarm": {"host": "g-db", "output": "down"},
}
# Operations that name no object of the tenant: checked for what they list instead.
LISTS = {"listTickets", "listTokens", "listDrafts", "listPacks", "getPalette", "listAssets"}
UNSCOPED = {"healthz"}
BULK_BY_ID = {"bulkAssignTickets", "bulkTransitionTickets"}
PUBLIC = {"healthz", "publicForm", "submitPublicForm", "qrForm", "submitQrForm"}


@dataclass
class World:
    api: Api
    ids: dict[str, str]  # globex's real ids by path parameter name
    acme: dict[str, str]  # an acme caller with every role


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_api("sqlite", tmp_path_factory.mktemp("iso")) as api:
        ticket = api.create_incident("globex", description=f"{MARKER} printer on fire")
        admin = api.auth("boss", "ticketflow:admin", tenant="globex")
        token = api.rt.issue_token("globex", "g-user", ["employee"], name=MARKER)
        draft = api.client.post(
            api.url("globex", "builder/drafts"), json={"pack": "it_service_desk"}, headers=admin
        )
        assert draft.status_code == 201, draft.text
        api.client.patch(
            api.url("globex", "builder/drafts/it_service_desk"),
            json={"title": MARKER},
            headers=admin,
        )
        api.rt.put_assets("globex", [{**ASSET, "name": MARKER}])
        gateway = api.auth("mon", "ticketflow:intake", tenant="globex")
        alarm = api.client.post(
            api.url("globex", "intake/alarms/monitoring"),
            json={"host": "g-db", "output": MARKER},
            headers=gateway,
        )
        assert alarm.status_code == 201, alarm.text
        ids = {
            "code": ASSET["code"],
            "source": "monitoring",
            "ticket_id": ticket["id"],
            "token_id": token.row.id,
            "pack": "it_service_desk",
            "workflow": "incident",
            "name": "assign",
            "version": "1",
            "template": "incident",
        }
        yield World(api, ids, api.auth("root", *EVERYTHING, tenant="acme"))


def _operations(api: Api, public: bool = False) -> list[tuple[str, str, str]]:
    """The API's operations; the public ones (no credentials) only when asked for."""
    doc = api.client.get("/schema/openapi.json").json()
    return [
        (method.upper(), path, op["operationId"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
        and (op.get("security") == [{}]) == public
    ]


def _fill(path: str, tenant: str, ids: dict[str, str]) -> str:
    out = path.replace("{tenant}", tenant)
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), NOBODY), out)


def _body(op: str, ids: dict[str, str]) -> Any:
    text = json.dumps(BODIES.get(op, {}))
    return json.loads(text.replace("{ticket_id}", ids["ticket_id"]))


def _call(world: World, method: str, url: str, op: str, ids: dict[str, str]) -> Any:
    return world.api.client.request(method, url, json=_body(op, ids), headers=world.acme)


def _without_instance(response: Any, *ids: str) -> str:
    text = response.text
    for value in ids:
        text = text.replace(value, "<id>")
    return re.sub(r'"instance":"[^"]*"', "", text)


def test_every_endpoint_is_covered(world: World) -> None:
    public = {op for _, _, op in _operations(world.api, public=True)}
    assert public == PUBLIC, "a new public endpoint needs an isolation case"
    ops = {op for _, path, op in _operations(world.api) if "{tenant}" in path}
    unknown = {op for _, path, op in _operations(world.api) if "{tenant}" not in path}
    assert unknown <= UNSCOPED, f"endpoints outside /tenants/{{tenant}}: {unknown - UNSCOPED}"
    without_ids = {
        op for _, path, op in _operations(world.api) if "{tenant}" in path and path.count("{") == 1
    }
    uncovered = without_ids - LISTS - set(BODIES)
    assert not uncovered, f"add an isolation case for {sorted(uncovered)}"
    assert ops


def test_another_tenants_url_is_refused_the_same_way_whatever_it_names(world: World) -> None:
    for method, path, op in _operations(world.api):
        if "{tenant}" not in path:
            continue
        real = _call(world, method, _fill(path, "globex", world.ids), op, world.ids)
        assert real.status_code == 403, (op, real.status_code, real.text)
        assert real.json()["code"] == "wrong-tenant"
        fake_ids = {
            **world.ids,
            "ticket_id": NOBODY,
            "token_id": NOBODY[:12],
            "pack": "no_such_pack",
            "version": "99",
        }
        fake = _call(world, method, _fill(path, "nosuchtenant", fake_ids), op, fake_ids)
        assert _without_instance(real) == _without_instance(fake), op
        assert MARKER not in real.text


def test_another_tenants_ids_are_not_found_like_ids_that_never_existed(world: World) -> None:
    # Each call on acme's own URL names globex's objects: it must fail exactly as for an
    # id nobody ever had (same status, same code, same text but for the id itself).
    checked = []
    for method, path, op in _operations(world.api):
        names_an_object = "{ticket_id}" in path or "{token_id}" in path
        if "{tenant}" not in path or not (names_an_object or op in BULK_BY_ID):
            continue
        checked.append(op)
        theirs = _call(world, method, _fill(path, "acme", world.ids), op, world.ids)
        missing = {**world.ids, "ticket_id": NOBODY, "token_id": NOBODY[:12]}
        nobody = _call(world, method, _fill(path, "acme", missing), op, missing)
        assert theirs.status_code == nobody.status_code, (op, theirs.text, nobody.text)
        if op in BULK_BY_ID:  # each item fails on its own, as not found
            assert [i["error"]["code"] for i in theirs.json()] == ["not-found"], op
        else:
            assert theirs.status_code == 404, (op, theirs.text)
        assert MARKER not in theirs.text, op
        scrubbed = _without_instance(theirs, world.ids["ticket_id"], world.ids["token_id"])
        assert scrubbed == _without_instance(nobody, NOBODY, NOBODY[:12]), op
    assert len(checked) >= 13, checked


def test_lists_searches_and_counts_show_nothing_of_another_tenant(world: World) -> None:
    api = world.api
    found = api.client.get(api.url("acme", f"tickets?q={MARKER}"), headers=world.acme)
    assert found.json() == {"items": [], "cursor": None}
    everything = api.client.get(api.url("acme", "tickets?limit=500"), headers=world.acme)
    assert world.ids["ticket_id"] not in everything.text and MARKER not in everything.text
    tokens = api.client.get(api.url("acme", "tokens"), headers=world.acme)
    assert world.ids["token_id"] not in tokens.text and MARKER not in tokens.text
    drafts = api.client.get(api.url("acme", "builder/drafts"), headers=world.acme)
    assert drafts.json() == []
    draft = api.client.get(api.url("acme", "builder/drafts/it_service_desk"), headers=world.acme)
    assert draft.status_code == 404 and MARKER not in draft.text
    packs = api.client.get(api.url("acme", "builder/packs"), headers=world.acme).json()
    assert {p["pack"]: p["version"] for p in packs} == {"it_service_desk": 1, "retail_store": 1}


def test_a_token_of_one_tenant_is_refused_everywhere_in_another(world: World) -> None:
    api = world.api
    theirs = api.auth("g-agent", "service_desk_agent", tenant="globex")
    for path in ("tickets", f"tickets/{world.ids['ticket_id']}", "tokens", "builder/drafts"):
        r = api.client.get(api.url("acme", path), headers=theirs)
        assert r.status_code == 403 and r.json()["code"] == "wrong-tenant", path
        assert MARKER not in r.text


def test_public_forms_and_alarms_never_reach_into_another_tenant(world: World) -> None:
    api = world.api
    theirs = api.client.get(api.url("acme", f"public/qr/{ASSET['code']}"))
    nobody = api.client.get(api.url("acme", "public/qr/NO-SUCH-1"))
    assert theirs.status_code == nobody.status_code == 404
    assert _without_instance(theirs, ASSET["code"]) == _without_instance(nobody, "NO-SUCH-1")
    assert MARKER not in theirs.text
    report = api.client.post(
        api.url("acme", f"public/qr/{ASSET['code']}"), json={"fields": {"symptom": "warm"}}
    )
    assert report.status_code == 404
    # The same alarm key in acme opens acme's own ticket: nothing attaches across tenants.
    ours = api.client.post(
        api.url("acme", "intake/alarms/monitoring"),
        json={"host": "g-db", "output": "acme's db"},
        headers=api.auth("mon", "ticketflow:intake", tenant="acme"),
    )
    assert ours.status_code == 201 and ours.json()["occurrences"] == 1
    assets = api.client.get(api.url("acme", "assets"), headers=world.acme)
    assert assets.json() == [] and MARKER not in assets.text
