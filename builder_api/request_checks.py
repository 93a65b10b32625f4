"""Checks every request passes before its handler runs: what no endpoint can accept.

- No NUL character (U+0000) in the path, the query, a header or a JSON string: PostgreSQL
  text and jsonb cannot hold one, so it would fail deep in the store as a 500.
- A JSON body must be UTF-8 and nested at most as deeply as the decoder can go; Litestar
  lets both failures through as exceptions, not as a bad request.

The body is decoded here once and cached on the request, so handlers do not decode it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from builder_api.problems import ApiError, FieldError

NUL = "\x00"
_NUL_JSON = b"\\u0000"  # how a NUL can appear in JSON text (a raw 0x00 byte is invalid there)


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Refuse the request with a located 400 problem when no handler could take it."""
    errors = [*_nul_in_url_and_headers(request)]
    if errors:
        raise _refused(errors)
    if _is_json(request.headers.get("content-type", "")):
        body = await request.body()
        if body:
            document = await _decode(request)
            if _NUL_JSON in body:
                errors = [_nul_error(p) for p in _nul_pointers(document, "")]
            if errors:
                raise _refused(errors)


def _nul_in_url_and_headers(request: Request[Any, Any, Any]) -> Iterator[FieldError]:
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            yield _nul_error(f"/path/{name}")
    for name, values in request.query_params.dict().items():
        if NUL in name or any(NUL in v for v in values):
            yield _nul_error(f"/query/{_escape(name)}")
    for name, value in request.headers.items():
        if NUL in value:
            yield _nul_error(f"/header/{name}")


def _nul_pointers(value: Any, at: str) -> Iterator[str]:
    if isinstance(value, str):
        if NUL in value:
            yield at
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{at}/{_escape(key)}"
            if NUL in key:
                yield where
            yield from _nul_pointers(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_pointers(item, f"{at}/{index}")


async def _decode(request: Request[Any, Any, Any]) -> Any:
    try:
        return await request.json()
    except SerializationException:
        return None  # malformed JSON: the handler's own decoding reports it with its position
    except UnicodeDecodeError as exc:
        raise _refused([_body_error("encoding", f"the body is not UTF-8: {exc.reason}")]) from None
    except RecursionError:
        raise _refused([_body_error("too-deep", "the JSON body is nested too deeply")]) from None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _nul_error(pointer: str) -> FieldError:
    return FieldError(
        pointer=pointer, code="nul-character", message="must not contain a NUL character (U+0000)"
    )


def _body_error(code: str, message: str) -> FieldError:
    return FieldError(pointer="", code=code, message=message)


def _refused(errors: list[FieldError]) -> ApiError:
    detail = f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the request"
    return ApiError(400, "invalid-request", detail, errors)
