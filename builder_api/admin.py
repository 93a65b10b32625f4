"""Tenant administration over HTTP: API tokens. Needs the `ticketflow:admin` role."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody
from pydantic import BaseModel, Field

from builder_api.auth import Authenticator, require_admin
from builder_api.deps import PathStr, Rt, Who
from builder_api.models import Body
from builder_api.problems import ERRORS
from builder_api.tickets import TENANT_PATH
from runtime.records import TokenRow


class NewToken(Body):
    user: str = Field(min_length=1, max_length=200, description="User id the token acts as.")
    roles: list[str] = Field(
        max_length=50,
        description="Pack roles, plus `ticketflow:admin` / `ticketflow:intake` for the API's own.",
    )
    name: str = Field("", max_length=200, description="What the token is for, shown in lists.")
    expires_at: datetime | None = Field(None, description="When it stops working.")


class TokenOut(BaseModel):
    id: str
    user: str
    roles: list[str]
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: TokenRow) -> TokenOut:
        return cls(
            id=row.id,
            user=row.user_id,
            roles=row.roles,
            name=row.name,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


class IssuedTokenOut(TokenOut):
    secret: str = Field(description="The bearer token. Shown this once; store it now.")


class TokenController(Controller):
    path = TENANT_PATH + "/tokens"
    tags = ["admin"]  # noqa: RUF012 (declared by Controller as an instance variable)

    @post("/", sync_to_thread=True, responses=ERRORS, status_code=201, summary="Issue an API token")
    def issue_token(
        self, rt: Rt, caller: Who, tenant: PathStr, data: JSONBody[NewToken]
    ) -> IssuedTokenOut:
        require_admin(caller)
        issued = rt.issue_token(
            tenant, data.user, data.roles, data.name, data.expires_at, by=caller.actor.id
        )
        return IssuedTokenOut(secret=issued.secret, **TokenOut.of(issued.row).model_dump())

    @get(
        "/",
        sync_to_thread=True,
        responses=ERRORS,
        summary="The tenant's tokens (never their secrets)",
    )
    def list_tokens(self, rt: Rt, caller: Who, tenant: PathStr) -> list[TokenOut]:
        require_admin(caller)
        return [TokenOut.of(row) for row in rt.tokens(tenant)]

    @delete("/{token_id:str}", sync_to_thread=True, responses=ERRORS, summary="Revoke a token")
    def revoke_token(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        token_id: PathStr,
        request: Request,  # type: ignore[type-arg]
    ) -> None:
        require_admin(caller)
        rt.revoke_token(tenant, token_id, by=caller.actor.id)
        auth: Authenticator = request.app.state.auth
        auth.forget(token_id)
