"""The OpenAPI document: the committed `schemas/openapi.json` is what the code generates and
what the server publishes, it is valid OpenAPI 3.1, and every operation is documented the
way clients rely on (summary, tag, problem documents for its errors)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from jsonschema import Draft202012Validator

from builder_api.openapi import OPENAPI_PATH, render_openapi
from builder_api.problems import PROBLEM_MEDIA_TYPE
from tests.http_fixtures import open_api

METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture(scope="module")
def generated() -> str:
    return render_openapi()


@pytest.fixture(scope="module")
def document(generated: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(generated)
    return parsed


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in sorted(document["paths"].items()):
        for method, operation in sorted(item.items()):
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_committed_document_is_what_the_code_generates(generated: str) -> None:
    committed = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
    if committed != generated:
        pytest.fail(
            "schemas/openapi.json is out of date: run `ticketflow openapi`.\n"
            + _first_differences(committed, generated, "render_openapi()"),
            pytrace=False,
        )


def test_served_document_is_the_committed_one(tmp_path: Path) -> None:
    committed = OPENAPI_PATH.read_text(encoding="utf-8")
    with open_api("sqlite", tmp_path) as api:
        served = api.client.get("/schema/openapi.json")
    assert served.status_code == 200
    # The same canonical form `render_openapi` writes, so a difference reads as a diff.
    text = json.dumps(served.json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if committed != text:
        pytest.fail(
            "/schema/openapi.json differs from schemas/openapi.json.\n"
            + _first_differences(committed, text, "/schema/openapi.json"),
            pytrace=False,
        )


def _first_differences(committed: str, other: str, name: str) -> str:
    diff = difflib.unified_diff(
        committed.splitlines(), other.splitlines(), "schemas/openapi.json", name, lineterm=""
    )
    return "First differing lines:\n" + "\n".join(list(diff)[:40])


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    # The structure, against the OpenAPI 3.1 schema schemathesis bundles ...
    schemathesis.openapi.from_dict(document).validate()
    # ... which leaves the JSON Schemas inside unchecked: each against JSON Schema 2020-12.
    for name, schema in document["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:
            pytest.fail(f"components/schemas/{name} is not a valid JSON Schema: {exc}")


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = set(_refs(document))
    assert PROBLEM_REF in refs
    missing = sorted(r for r in refs if r.removeprefix("#/components/schemas/") not in schemas)
    assert missing == []


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_every_operation_has_a_summary_a_tag_and_a_unique_id(document: dict[str, Any]) -> None:
    undocumented = [
        label
        for label, op in operations(document)
        if not op.get("summary", "").strip() or not op.get("tags")
    ]
    assert undocumented == []
    ids = [op.get("operationId") for _, op in operations(document)]
    assert None not in ids
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []


def test_every_error_response_is_a_problem_document(document: dict[str, Any]) -> None:
    wrong = []
    for label, op in operations(document):
        for status, response in op["responses"].items():
            if status[0] in "45":
                content = response.get("content", {})
                schema = content.get(PROBLEM_MEDIA_TYPE, {}).get("schema", {})
                if set(content) != {PROBLEM_MEDIA_TYPE} or schema.get("$ref") != PROBLEM_REF:
                    wrong.append(f"{label} {status}: {sorted(content)}")
    assert wrong == []


def test_every_operation_documents_the_problems_it_can_answer(document: dict[str, Any]) -> None:
    """Input can be malformed (400); on a tenant's URL a token can be missing (401), or be
    for another tenant or without the role (403), unless the operation is public."""
    missing = []
    for label, op in operations(document):
        expected = set()
        if op.get("parameters") or "requestBody" in op:
            expected.add("400")
        security = op.get("security", document.get("security", []))
        if "{tenant}" in label and {} not in security:
            expected |= {"401", "403"}
        if lacking := sorted(expected - set(op["responses"])):
            missing.append(f"{label}: {', '.join(lacking)}")
    assert missing == []
