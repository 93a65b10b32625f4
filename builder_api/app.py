"""The Litestar application: `create_app(runtime)` wires the controllers, the caller
resolution, the problem-document error handlers and the OpenAPI document (`/schema`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from litestar import Litestar, Request, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler

from builder_api.admin import TokenController
from builder_api.auth import Authenticator, Caller
from builder_api.builder import BuilderController
from builder_api.forms_http import FormController
from builder_api.intake_http import AssetController, IntakeController, PublicIntakeController
from builder_api.problems import EXCEPTION_HANDLERS
from builder_api.request_checks import check_request
from builder_api.schema_plugin import StrictModelSchemaPlugin
from builder_api.tickets import TicketController
from runtime.api import Runtime
from runtime.api_intake import CaptchaCheck

API_VERSION = "1.0.0"
MAX_BODY = 10 * 1024 * 1024  # a pack draft or an email with attachments fits


@dataclass(slots=True)
class ApiSettings:
    """How the API trusts callers and what it accepts."""

    trust_gateway: bool = False  # take identity from X-Ticketflow-* headers of a gateway
    gateway_secret: str | None = None  # the gateway proves itself with this shared secret
    token_cache_seconds: float = 5.0
    max_body: int = MAX_BODY
    # Checks public forms' captcha answers (see builder_api/captcha.py); None refuses
    # every public form whose tenant asks for a captcha.
    captcha: CaptchaCheck | None = None
    extra_handlers: Sequence[ControllerRouterHandler] = field(default_factory=tuple)


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard of every tenant URL: who calls, and may they enter this tenant? Runs before
    the request is parsed, so a stranger learns nothing, not even what a valid request
    would look like. Handlers marked `opt={"public": True}` (intake forms) skip it."""
    tenant = connection.path_params.get("tenant")
    if tenant is None or handler.opt.get("public"):
        return
    auth: Authenticator = connection.app.state.auth
    # A cached token costs no thread hop; a lookup reads the database in a worker thread.
    found = auth.cached_caller(connection, tenant)
    if found is None:
        found = await anyio.to_thread.run_sync(auth.caller, connection, tenant)
    connection.scope["state"]["caller"] = found


def _provide_caller(request: Request[Any, Any, Any]) -> Caller:
    found = request.scope["state"].get("caller")
    if found is None:  # a handler without {tenant} asked for a caller: a wiring mistake
        raise RuntimeError(f"no caller for {request.url.path}")
    return cast(Caller, found)


@get("/healthz", sync_to_thread=False, tags=["service"], summary="Liveness", security=[{}])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def route_handlers() -> list[ControllerRouterHandler]:
    """Every controller of the API (also what the OpenAPI document is made of)."""
    return [
        healthz,
        TicketController,
        TokenController,
        BuilderController,
        FormController,
        PublicIntakeController,
        IntakeController,
        AssetController,
    ]


def create_app(rt: Runtime, settings: ApiSettings | None = None) -> Litestar:
    settings = settings or ApiSettings()
    if settings.captcha is not None:
        rt.captcha_check = settings.captcha
    auth = Authenticator(
        rt,
        trust_gateway=settings.trust_gateway,
        gateway_secret=settings.gateway_secret,
        cache_seconds=settings.token_cache_seconds,
    )
    return Litestar(
        route_handlers=[*route_handlers(), *settings.extra_handlers],
        dependencies={
            "rt": Provide(lambda: rt, use_cache=True, sync_to_thread=False),
            "caller": Provide(_provide_caller, sync_to_thread=False),
        },
        guards=[authenticate],
        before_request=check_request,
        plugins=[StrictModelSchemaPlugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"auth": auth}),
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_body,
        debug=False,
    )


def operation_id(handler: Any, method: Any, path: Any) -> str:
    """`createTicket` from the handler `create_ticket`: stable names for generated clients
    (handler names are unique across the API; the drift test would show a clash)."""
    first, *rest = str(handler.handler_name).split("_")
    return first + "".join(part.title() for part in rest)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="ticketflow",
        version=API_VERSION,
        description=(
            "Builder and runtime API of ticketflow. Errors are RFC 9457 problem documents "
            "(`application/problem+json`) with a stable `code`; see docs/http.md."
        ),
        path="/schema",
        operation_id_creator=operation_id,
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http", scheme="bearer", description="An API token (`tf_…`)."
                )
            }
        ),
        security=[{"bearer": []}],
    )
