"""Who is calling: a bearer API token, or (when the deployment says so) the identity
headers of a trusted upstream gateway. Either way the caller belongs to exactly one tenant
and may only reach URLs of that tenant.

Two roles are the API's own, never a pack's: `ticketflow:admin` (builder endpoints, tokens,
assets) and `ticketflow:intake` (the email and alarm intake a mail gateway or a monitoring
system calls). Every other role is a pack role and goes to the runtime's permission checks.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field, replace
from threading import Lock
from typing import Any

from litestar.connection import ASGIConnection

from builder_api.problems import ApiError
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.api_tokens import actor_with_roles, hash_secret
from runtime.records import TokenRow

ADMIN_ROLE = "ticketflow:admin"
INTAKE_ROLE = "ticketflow:intake"
API_ROLES = frozenset({ADMIN_ROLE, INTAKE_ROLE})

GATEWAY_TENANT = "x-ticketflow-tenant"
GATEWAY_USER = "x-ticketflow-user"
GATEWAY_ROLES = "x-ticketflow-roles"
GATEWAY_SECRET = "x-ticketflow-gateway-secret"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the runtime actor plus the API's own roles."""

    actor: Actor
    api_roles: frozenset[str]
    token_id: str | None = None

    @property
    def tenant(self) -> str:
        return self.actor.tenant

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.api_roles

    @property
    def is_intake(self) -> bool:
        return INTAKE_ROLE in self.api_roles or self.is_admin


@dataclass(slots=True)
class _Cached:
    row: TokenRow
    actor: Actor
    until: float


@dataclass(slots=True)
class Authenticator:
    """Turns request headers into a `Caller`. Token lookups are cached for `cache_seconds`
    (a revocation made in another process takes effect within that time; one made through
    this process's API at once)."""

    rt: Runtime
    trust_gateway: bool = False
    gateway_secret: str | None = None
    cache_seconds: float = 5.0
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _lock: Lock = field(default_factory=Lock)

    def caller(self, request: ASGIConnection[Any, Any, Any, Any], tenant: str) -> Caller:
        """The caller, allowed into `tenant`; ApiError 401 / 403 otherwise."""
        found = self._from_gateway(request) if self.trust_gateway else None
        if found is None:
            found = self._from_token(request)
        if found.tenant != tenant:
            raise _wrong_tenant()
        return found

    def cached_caller(
        self, request: ASGIConnection[Any, Any, Any, Any], tenant: str
    ) -> Caller | None:
        """The caller when its token is in the cache (no database, no thread hop: the
        event loop may call this), else None and `caller` must be asked."""
        if self.trust_gateway and GATEWAY_USER in request.headers:
            return None
        secret = _bearer(request)
        if secret is None:
            return None
        with self._lock:
            hit = self._cache.get(hash_secret(secret))
        if hit is None or hit.until <= time.monotonic() or self._expired(hit.row):
            return None
        if hit.row.tenant_id != tenant:
            raise _wrong_tenant()
        return Caller(hit.actor, frozenset(hit.row.roles) & API_ROLES, hit.row.id)

    def forget(self, token_id: str) -> None:
        with self._lock:
            for key in [k for k, v in self._cache.items() if v.row.id == token_id]:
                del self._cache[key]

    def _from_token(self, request: ASGIConnection[Any, Any, Any, Any]) -> Caller:
        secret = _bearer(request)
        if secret is None:
            raise _unauthenticated("send 'Authorization: Bearer <token>'")
        row, actor = self._lookup(secret)
        return Caller(actor, frozenset(row.roles) & API_ROLES, row.id)

    def _lookup(self, secret: str) -> tuple[TokenRow, Actor]:
        key = hash_secret(secret)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit.until > now and not self._expired(hit.row):
            return hit.row, hit.actor
        row = self.rt.token_row(secret)
        if row is None:
            raise _unauthenticated("the token is unknown, revoked or expired")
        pack_roles = [r for r in row.roles if r not in API_ROLES]
        actor = self.rt.token_actor(replace(row, roles=pack_roles))
        with self._lock:
            self._cache[key] = _Cached(row, actor, now + self.cache_seconds)
        return row, actor

    def _expired(self, row: TokenRow) -> bool:
        return row.expires_at is not None and row.expires_at <= self.rt.clock.now()

    def _from_gateway(self, request: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
        headers = request.headers
        user = headers.get(GATEWAY_USER)
        if user is None:
            return None
        if self.gateway_secret is not None:
            given = headers.get(GATEWAY_SECRET, "")
            if not hmac.compare_digest(given.encode(), self.gateway_secret.encode()):
                raise _unauthenticated("the gateway secret is missing or wrong")
        tenant = headers.get(GATEWAY_TENANT)
        if not tenant or not user.strip():
            raise _unauthenticated(f"the gateway sent {GATEWAY_USER} without {GATEWAY_TENANT}")
        roles = {r.strip() for r in headers.get(GATEWAY_ROLES, "").split(",") if r.strip()}
        person = self.rt.people(tenant).actor(user, tenant)
        actor = actor_with_roles(person, user.strip(), roles - API_ROLES, tenant)
        return Caller(actor, frozenset(roles & API_ROLES))


def _bearer(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def _wrong_tenant() -> ApiError:
    # The same answer whether the tenant exists or not: nothing about it leaks.
    return ApiError(403, "wrong-tenant", "these credentials are for another tenant")


def _unauthenticated(detail: str) -> ApiError:
    return ApiError(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise ApiError(403, "admin-only", f"this needs the '{ADMIN_ROLE}' role")


def require_intake(caller: Caller) -> None:
    if not caller.is_intake:
        raise ApiError(403, "intake-only", f"this needs the '{INTAKE_ROLE}' role")
