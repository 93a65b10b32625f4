"""API tokens: a secret handed out once, stored only as its sha256, that stands for one
user of one tenant with a set of roles. The HTTP API turns a bearer token into an `Actor`.

The secrets are 256 random bits, so a plain (unsalted, fast) hash is what fits: nothing can
be guessed by trying, and a lookup by hash stays one index probe per request. Passwords
would need a slow hash; these are not passwords.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runtime.actors import SYSTEM_ID, Actor
from runtime.records import AuditDraft, InvalidCommand, NotFound, TokenRow

if TYPE_CHECKING:
    from runtime.clock import Clock
    from runtime.directory import Directory
    from runtime.store.base import Store

PREFIX = "tf_"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_:-]{0,99}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: `secret` is shown this once and never again."""

    secret: str
    row: TokenRow


class TokenApi:
    """Issue, list, revoke and check API tokens (mixed into `Runtime`)."""

    store: Store
    clock: Clock
    directory: Directory

    def issue_token(
        self,
        tenant: str,
        user: str,
        roles: Iterable[str],
        name: str = "",
        expires_at: datetime | None = None,
        by: str = SYSTEM_ID,
    ) -> IssuedToken:
        """A new token for `user` of `tenant` acting in `roles`; `by` is who issued it
        (for the audit log, which records every issue and revocation)."""
        role_list = sorted(set(roles))
        _check_token_fields(tenant, user, role_list, expires_at)
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidCommand(f"expires_at {expires_at.isoformat()} has already passed")
        token_id = secrets.token_hex(6)
        secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        row = TokenRow(
            tenant_id=tenant,
            id=token_id,
            hash=hash_secret(secret),
            user_id=user,
            roles=role_list,
            name=name,
            created_at=now,
            expires_at=expires_at,
        )
        after = {"user": user, "roles": role_list, "name": name, "expires_at": _iso(expires_at)}
        with self.store.transaction() as tx:
            tx.add_token(row)
            tx.add_audit(
                tenant, [AuditDraft(now, by, "token-issue", f"token:{token_id}", None, after)]
            )
        return IssuedToken(secret, row)

    def tokens(self, tenant: str) -> list[TokenRow]:
        with self.store.read() as tx:
            return tx.tokens(tenant)

    def revoke_token(self, tenant: str, token_id: str, by: str = SYSTEM_ID) -> None:
        now = self.clock.now()
        with self.store.transaction() as tx:
            if not tx.revoke_token(tenant, token_id, now):
                raise NotFound(f"no live token '{token_id}'")
            tx.add_audit(
                tenant, [AuditDraft(now, by, "token-revoke", f"token:{token_id}", None, None)]
            )

    def token_row(self, secret: str) -> TokenRow | None:
        """The live token with this secret, or None (unknown, revoked or expired)."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        with self.store.read() as tx:
            row = tx.token_by_hash(hash_secret(secret))
        now = self.clock.now()
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        return row

    def token_actor(self, row: TokenRow) -> Actor:
        """The actor a token stands for: its own roles, with the person's teams, skills,
        locale and attributes when the user is in the directory."""
        with self.store.read() as tx:
            person = self.directory.snapshot(tx, row.tenant_id).actor(row.user_id, row.tenant_id)
        return actor_with_roles(person, row.user_id, row.roles, row.tenant_id)


def actor_with_roles(person: Actor | None, user: str, roles: Iterable[str], tenant: str) -> Actor:
    """An actor whose roles are exactly `roles` (the token's or the gateway's), enriched
    with the directory's view of the person when there is one."""
    if person is None:
        return Actor.of(user, roles, tenant)
    return Actor(
        id=user,
        roles=frozenset(roles),
        tenant=tenant,
        name=person.name,
        email=person.email,
        locale=person.locale,
        teams=person.teams,
        skills=person.skills,
        attributes=person.attributes,
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _check_token_fields(
    tenant: str, user: str, roles: list[str], expires_at: datetime | None
) -> None:
    problems = []
    if not _ID.match(tenant):
        problems.append(f"tenant {tenant!r} is not a valid name")
    if not _ID.match(user):
        problems.append(f"user {user!r} is not a valid id")
    problems += [f"role {r!r} is not a valid role name" for r in roles if not _ROLE.match(r)]
    if expires_at is not None and expires_at.tzinfo is None:
        problems.append("expires_at needs a time zone")
    elif expires_at is not None and not _fits_in_utc(expires_at):
        problems.append(f"expires_at {expires_at.isoformat()} is out of range in UTC")
    if problems:
        raise InvalidCommand("; ".join(problems))


def _fits_in_utc(at: datetime) -> bool:
    """Whether `at` is a datetime in UTC too: 9999-12-31T23:00-14:00 is in year 10000
    there, which the stores keep in UTC and could not read back."""
    try:
        at.astimezone(UTC)
    except OverflowError:
        return False
    return True
