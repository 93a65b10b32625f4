"""Inputs the schemathesis run found or probed for, each once more by hand: answered with a
located 400 problem instead of a 500, on SQLite and on PostgreSQL, and nothing stored.

- A NUL character (U+0000) in the path, the query, a header or a JSON string: PostgreSQL
  text and jsonb cannot hold one, so it failed in the store as a 500.
- A JSON body that is not UTF-8, or nested deeper than the decoder goes: Litestar let the
  decoder's exception through as a 500.
- A token expiring at a time that is out of range in UTC (9999-12-31T23:00-14:00 is in
  year 10000 there): a 500 on SQLite; on PostgreSQL it was stored and every later list of
  the tenant's tokens failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from builder_api.admin import NewToken
from builder_api.models import Body
from builder_api.openapi import openapi_document
from runtime.records import InvalidCommand
from tests.http_fixtures import INCIDENT, Api, open_api

STAFF = ("sam", "ticketflow:admin", "service_desk_agent")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(request.param, tmp_path_factory.mktemp("edge")) as found:
        yield found


def ticket_count(api: Api) -> int:
    return len(
        api.client.get(api.url("acme", "tickets?limit=500"), headers=api.auth(*STAFF)).json()[
            "items"
        ]
    )


def assert_refused(response: Any, pointers: set[str], code: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid-request"
    assert {e["pointer"] for e in problem["errors"]} == pointers
    assert {e["code"] for e in problem["errors"]} == {code}


def test_nul_in_the_query_is_a_located_bad_request(api: Api) -> None:
    r = api.client.get(
        api.url("acme", "tickets?q=a%00b&team=ok&state=new&state=%00"), headers=api.auth(*STAFF)
    )
    assert_refused(r, {"/query/q", "/query/state"}, "nul-character")


def test_nul_in_a_path_id_is_a_located_bad_request(api: Api) -> None:
    for path in ("tickets/%00", "tickets/%00/timeline", "tokens/x%00"):
        method = api.client.delete if path.startswith("tokens") else api.client.get
        r = method(api.url("acme", path), headers=api.auth(*STAFF))
        name = "token_id" if path.startswith("tokens") else "ticket_id"
        assert_refused(r, {f"/path/{name}"}, "nul-character")


def test_nul_in_a_header_is_a_located_bad_request(api: Api) -> None:
    before = ticket_count(api)
    headers = {**api.auth(*STAFF), "Idempotency-Key": "form\x00-1"}
    r = api.client.post(
        api.url("acme", "tickets"),
        json={"template": "incident", "fields": INCIDENT},
        headers=headers,
    )
    assert_refused(r, {"/header/idempotency-key"}, "nul-character")
    assert ticket_count(api) == before


def test_nul_anywhere_in_a_json_body_lists_every_place_and_stores_nothing(api: Api) -> None:
    before = ticket_count(api)
    body = {
        "template": "incident",
        "title": "printer\x00",
        "fields": {**INCIDENT, "description": "jam\x00med", "scr\x00": [{"a/b": "\x00"}]},
    }
    r = api.client.post(api.url("acme", "tickets"), json=body, headers=api.auth(*STAFF))
    assert_refused(
        r,
        {"/title", "/fields/description", "/fields/scr\x00", "/fields/scr\x00/0/a~1b"},
        "nul-character",
    )
    assert ticket_count(api) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("comments", {"body": "see\x00 attached"}),
        ("assign", {"to": "\x00"}),
        ("transitions/assign", {"fields": {"assignee": "marcus\x00"}}),
    ],
)
def test_nul_in_a_command_body_changes_nothing(api: Api, path: str, body: dict[str, Any]) -> None:
    made = api.create_incident()
    r = api.client.post(
        api.url("acme", f"tickets/{made['id']}/{path}"), json=body, headers=api.auth(*STAFF)
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "nul-character", r.text
    after = api.client.get(
        api.url("acme", f"tickets/{made['id']}"), headers=api.auth(*STAFF)
    ).json()
    assert after["version"] == made["version"]


def test_nul_in_bulk_ids_is_refused_before_any_item_runs(api: Api) -> None:
    made = api.create_incident()
    r = api.client.post(
        api.url("acme", "tickets/bulk/assign"),
        json={"ticket_ids": [made["id"], "\x00"], "to": "marcus"},
        headers=api.auth(*STAFF),
    )
    assert_refused(r, {"/ticket_ids/1"}, "nul-character")
    after = api.client.get(
        api.url("acme", f"tickets/{made['id']}"), headers=api.auth(*STAFF)
    ).json()
    assert after["assignee"] != "marcus"


def test_an_escaped_backslash_before_u0000_is_text_not_nul(api: Api) -> None:
    # JSON `"\\u0000"` is the six characters \u0000, which any store can hold.
    raw = json.dumps(
        {"template": "incident", "fields": {**INCIDENT, "description": "literal \\u0000 here"}}
    )
    r = api.client.post(
        api.url("acme", "tickets"),
        content=raw.encode(),
        headers={**api.auth(*STAFF), "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["fields"]["description"] == "literal \\u0000 here"


def test_a_body_that_is_not_utf8_is_a_bad_request(api: Api) -> None:
    before = ticket_count(api)
    r = api.client.post(
        api.url("acme", "tickets"),
        content=b'{"template": "incident", "title": "\xff\xfe"}',
        headers={**api.auth(*STAFF), "content-type": "application/json"},
    )
    assert_refused(r, {""}, "encoding")
    assert "not UTF-8" in r.json()["errors"][0]["message"]
    assert ticket_count(api) == before


def test_a_body_nested_too_deeply_is_a_bad_request(api: Api) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = api.client.post(
        api.url("acme", "tickets"),
        content=b'{"template": "incident", "fields": {"description": ' + deep + b"}}",
        headers={**api.auth(*STAFF), "content-type": "application/json"},
    )
    assert_refused(r, {""}, "too-deep")


def test_malformed_json_still_says_where(api: Api) -> None:
    r = api.client.post(
        api.url("acme", "tickets"),
        content=b'{"template": "incident",}',
        headers={**api.auth(*STAFF), "content-type": "application/json"},
    )
    assert r.status_code == 400 and "byte" in r.json()["detail"], r.text


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_token_expiry_out_of_range_in_utc_is_refused_and_the_list_still_works(
    api: Api, expires_at: str
) -> None:
    admin = api.auth(*STAFF)
    before = api.client.get(api.url("acme", "tokens"), headers=admin).json()
    r = api.client.post(
        api.url("acme", "tokens"),
        json={"user": "kim", "roles": [], "expires_at": expires_at},
        headers=admin,
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid-command" and "out of range in UTC" in r.json()["detail"]
    after = api.client.get(api.url("acme", "tokens"), headers=admin)
    assert after.status_code == 200 and after.json() == before


def test_the_runtime_refuses_a_token_expiry_out_of_range_in_utc(api: Api) -> None:
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14)))
    with pytest.raises(InvalidCommand, match="out of range in UTC"):
        api.rt.issue_token("acme", "kim", ["employee"], expires_at=late)
    latest = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=14)))
    assert (
        api.rt.issue_token("acme", "kim", ["employee"], expires_at=latest).row.expires_at == latest
    )


def test_request_bodies_that_refuse_unknown_keys_say_so_in_the_document() -> None:
    schemas = openapi_document()["components"]["schemas"]
    strict = {cls.__name__ for cls in _subclasses(Body)} | {NewToken.__name__}
    documented = {name for name in strict if name in schemas}
    assert {"CreateTicket", "UpdateTicket", "NewToken", "BulkCreateItem"} <= documented
    assert (
        sorted(n for n in documented if schemas[n].get("additionalProperties") is not False) == []
    )
    assert "additionalProperties" not in schemas["TicketOut"]  # responses may grow


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
