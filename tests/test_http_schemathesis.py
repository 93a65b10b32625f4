"""A schemathesis run of the HTTP API against its own OpenAPI document: every operation,
valid and invalid inputs, as a caller with broad roles and as an employee. No answer may
be a 5xx, and every answer must be what the document promises (status code, media type,
body schema).

Path parameters draw from real rows (tickets, transitions, tokens, templates) as well as
random strings, so requests reach the handlers' happy paths, not only their 404s; text
parameters sometimes get strings that broke a layer below (NUL for PostgreSQL, LIKE
wildcards, quotes, non-ASCII).

schemathesis' pytest loader for fixtures (`schemathesis.pytest.from_fixture`) fails under
pytest 9.2 (it sets `Function._nodeid`, which pytest 9.2 no longer has), and its eager
loader needs the app at import time; so the run is plain Hypothesis over
`APIOperation.as_strategy()`: one test per store, caller and operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from builder_api.openapi import openapi_document
from tests.http_fixtures import Api, open_api

TENANT = "acme"
# Every role of both example packs that sees or changes much, plus the API's own roles.
STAFF_ROLES = (
    "ticketflow:admin",
    "ticketflow:intake",
    "admin",
    "it_manager",
    "service_desk_agent",
    "team_lead",
    "problem_manager",
    "support_engineer",
)
CALLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "staff": ("sam", STAFF_ROLES),
    "employee": ("olivia", ("employee",)),
}
TRANSITIONS = ["assign", "acknowledge", "reassign", "await_user", "resolve", "close", "cancel"]
TEMPLATES = ["incident", "service_request", "problem", "store_repair", "inspection"]
HOSTILE = ["\x00", "a\x00b", "%", "_%\\", "'; --", "é漢字🙂", " ", "\t\n", "../", "x" * 300]
HOSTILE_HEADER = ["%", "_%\\", "'; --", " x ", "x" * 300]  # what an HTTP header can carry
TEXT_QUERY = ["q", "assignee", "team", "requester", "cursor", "state", "template"]
TEXT_BODY = ["title", "body", "to", "team", "note", "comment", "requester", "user", "name"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per store, caller and operation: keeps the module well under a minute on two cores.
MAX_EXAMPLES = 12
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in openapi_document()["paths"].items()
    for method in item
    if method in {"get", "put", "post", "patch", "delete"}
)


@dataclass(frozen=True)
class Target:
    """The API as schemathesis sees it, and the headers of the caller."""

    schema: Any
    headers: dict[str, str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(request.param, tmp_path_factory.mktemp("schemathesis")) as found:
        yield found


@pytest.fixture(scope="module", params=sorted(CALLERS))
def target(request: pytest.FixtureRequest, api: Api) -> Target:
    user, roles = CALLERS[request.param]
    headers = api.auth(user, *roles, tenant=TENANT)
    config = schemathesis.Config.from_dict(_config(api, headers))
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", api.client.app, config=config)
    return Target(schema, headers)


def _config(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    """Fixed credentials, and dictionaries of real ids and hostile strings to draw from."""
    tickets = _open_tickets(api)
    tokens = [
        api.rt.issue_token(TENANT, "kim", ["employee"], name=f"spare {i}").row.id for i in range(2)
    ]
    parameters: dict[str, Any] = {
        "path.ticket_id": {"dictionary": "tickets", "probability": 0.8},
        "path.name": {"dictionary": "transitions", "probability": 0.8},
        "path.token_id": {"dictionary": "tokens", "probability": 0.8},
        "body.template": {"dictionary": "templates", "probability": 0.8},
        "body.ticket_ids[*]": {"dictionary": "tickets", "probability": 0.8},
        "header.Idempotency-Key": {"dictionary": "hostile_header", "probability": 0.3},
    }
    parameters |= {f"query.{n}": {"dictionary": "hostile", "probability": 0.3} for n in TEXT_QUERY}
    parameters |= {f"body.{n}": {"dictionary": "hostile", "probability": 0.3} for n in TEXT_BODY}
    return {
        "headers": headers,
        "generation": {"database": "none"},
        "parameters": parameters,
        "dictionaries": {
            "tickets": {"values": tickets},
            "transitions": {"values": TRANSITIONS},
            "tokens": {"values": tokens},
            "templates": {"values": TEMPLATES},
            "hostile": {"values": HOSTILE},
            "hostile_header": {"values": HOSTILE_HEADER},
        },
    }


def _open_tickets(api: Api) -> list[str]:
    """An employee's tickets: one new, one assigned to an engineer, one with a comment."""
    made = [
        api.create_incident(user="olivia", description=f"schemathesis {i}")["id"] for i in range(3)
    ]
    agent = api.auth("sam", "service_desk_agent")
    assigned = api.client.post(
        api.url(TENANT, f"tickets/{made[1]}/assign"), json={"to": "marcus"}, headers=agent
    )
    noted = api.client.post(
        api.url(TENANT, f"tickets/{made[2]}/comments"), json={"body": "seen"}, headers=agent
    )
    assert (assigned.status_code, noted.status_code) == (200, 201), assigned.text + noted.text
    return [str(t) for t in made]


@pytest.mark.parametrize("label", OPERATIONS)
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_every_operation_keeps_its_documented_contract(
    target: Target, label: str, data: st.DataObject
) -> None:
    operation = target.schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is in the document but not served"
    fixed = {"tenant": TENANT} if "{tenant}" in operation.path else None
    case = data.draw(
        st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
        )
    )
    case.call_and_validate(headers=target.headers, checks=CHECKS)
