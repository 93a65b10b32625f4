"""Every error as an RFC 9457 problem document with a stable `code`.

Runtime errors keep the code the embedding API gives them (`not-found`, `invalid-fields`,
…); HTTP-level failures get their own (`invalid-request`, `unauthenticated`,
`wrong-tenant`, `no-route`, …). Validation problems list every failing field at once, each
with a JSON pointer into the request (`/fields/priority`, `/query/limit`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from pydantic import BaseModel, Field

from runtime.intake import IntakeRefused
from runtime.records import (
    Conflict,
    InvalidCommand,
    InvalidFields,
    NotFound,
    PermissionDenied,
    PublishRefused,
    TicketflowError,
    TransitionUnavailable,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://ticketflow.dev/problems/"
log = logging.getLogger("ticketflow.http")

_STATUS: dict[type[TicketflowError], int] = {
    IntakeRefused: 403,
    NotFound: 404,
    PermissionDenied: 403,
    InvalidFields: 422,
    TransitionUnavailable: 409,
    Conflict: 409,
    PublishRefused: 422,
    InvalidCommand: 400,
}

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
}


class FieldError(BaseModel):
    """One failing field: where it is in the request and what is wrong."""

    pointer: str = Field(description="JSON pointer into the request, e.g. `/fields/priority`.")
    code: str = Field(description="Stable code of the failure, e.g. `required`, `type`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, documented code of the error; see docs/http.md.")
    instance: str | None = None
    errors: list[FieldError] = Field(
        default_factory=list, description="Every failing field, for validation errors."
    )
    diagnostics: list[dict[str, Any]] | None = Field(
        None, description="Located pack diagnostics, when a pack or draft was refused."
    )


class ApiError(Exception):
    """An HTTP-level failure raised by a handler (auth, tenant, media type, …)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.headers = dict(headers or {})
        self.diagnostics = diagnostics


def problem_response(
    request: Request[Any, Any, Any] | None,
    status: int,
    code: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    diagnostics: list[dict[str, Any]] | None = None,
) -> Response[dict[str, Any]]:
    body = Problem(
        type=TYPE_BASE + code,
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
        instance=request.url.path if request is not None else None,
        errors=errors or [],
        diagnostics=diagnostics,
    )
    return Response(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def status_of(exc: TicketflowError) -> int:
    for kind in type(exc).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 400


def field_errors(exc: TicketflowError) -> list[FieldError]:
    if isinstance(exc, InvalidFields):
        return [
            FieldError(pointer=_field_pointer(p.field), code=p.code, message=p.message)
            for p in exc.problems
        ]
    return []


def _field_pointer(field: str) -> str:
    """`parts[0].qty` → `/fields/parts/0/qty`."""
    parts = [p for p in re.split(r"[.\[\]]+", field) if p]
    return "/fields/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def on_ticketflow_error(request: Request[Any, Any, Any], exc: TicketflowError) -> Response[Any]:
    diagnostics = exc.details.get("diagnostics", getattr(exc, "diagnostics", None))
    if isinstance(diagnostics, list | tuple):
        diagnostics = [d.as_json() if hasattr(d, "as_json") else d for d in diagnostics]
    return problem_response(
        request,
        status_of(exc),
        exc.code,
        exc.message,
        field_errors(exc),
        diagnostics=list(diagnostics) if isinstance(diagnostics, list) else None,
    )


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return problem_response(
        request, exc.status, exc.code, exc.detail, exc.errors, exc.headers, exc.diagnostics
    )


def on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = [_validation_item(item) for item in exc.extra or []] if exc.extra else []
    if not isinstance(exc.extra, list) or not errors:
        errors = [FieldError(pointer="", code="invalid", message=str(exc.detail))]
    detail = f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the request"
    return problem_response(request, 400, "invalid-request", detail, errors)


def _validation_item(item: Any) -> FieldError:
    if not isinstance(item, Mapping):
        return FieldError(pointer="", code="invalid", message=str(item))
    key = str(item.get("key") or "")
    raw = item.get("source") or "body"
    source = str(getattr(raw, "value", raw))
    message = str(item.get("message") or "invalid value")
    where = "" if source == "body" else f"/{source}"
    pointer = where + ("/" + key.replace(".", "/") if key else "")
    return FieldError(pointer=pointer, code=_code_of(message), message=message)


def _code_of(message: str) -> str:
    text = message.lower()
    for needle, code in (
        ("missing", "required"),
        ("required", "required"),
        ("valid integer", "type"),
        ("valid string", "type"),
        ("valid boolean", "type"),
        ("valid number", "type"),
        ("valid dict", "type"),
        ("valid list", "type"),
        ("at least", "too-short"),
        ("at most", "too-long"),
        ("greater", "minimum"),
        ("less", "maximum"),
        ("extra", "unknown-field"),
        ("json", "json"),
    ):
        if needle in text:
            return code
    return "invalid"


_HTTP_CODES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "no-route",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return on_unexpected(request, exc)
    code = _HTTP_CODES.get(status, "bad-request")
    return problem_response(request, status, code, str(exc.detail), headers=exc.headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The detail never carries the exception text: it may hold another tenant's data.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, 500, "internal", "the server failed to handle the request; it is logged"
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    TicketflowError: on_ticketflow_error,
    ApiError: on_api_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}

_DESCRIPTIONS = {
    400: "The request is malformed; `errors` lists every failing part",
    401: "No valid credentials",
    403: "The caller may not do this (or the URL names another tenant)",
    404: "No such thing for this caller",
    409: "The ticket changed, or the transition is not available now",
    413: "The request body is too large",
    415: "Unsupported media type",
    422: "Values break the rules; `errors` lists every failing field",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem documents a handler may answer with."""
    return {
        status: ResponseSpec(
            Problem,
            description=_DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


# What any authenticated endpoint may answer besides its success.
ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)

__all__ = [
    "ERRORS",
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "ApiError",
    "FieldError",
    "Problem",
]
