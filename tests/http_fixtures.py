"""An HTTP API over a runtime holding two example packs in two tenants (`acme` and
`globex`), on memory, SQLite or PostgreSQL, with helpers to mint tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from builder_api.app import ApiSettings, create_app
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.intake import IntakeConfig
from runtime.store import open_store
from tests.runtime_fixtures import ROOT, START, database_url

PACKS = [ROOT / "examples/workflows/it_service_desk", ROOT / "examples/workflows/retail_store"]
TENANTS = ("acme", "globex")
BASE = "/api/v1/tenants"

# A valid incident for an employee of the IT service desk pack.
INCIDENT: dict[str, Any] = {
    "site": "new_york",
    "category": "network",
    "affected_service": "office_network",
    "impact": "medium",
    "urgency": "low",
    "users_affected": 8,
    "description": "Laptops lose the Wi-Fi in 12B every few minutes.",
}


@dataclass
class Api:
    """A test client and the runtime behind it."""

    client: TestClient[Any]
    rt: Runtime
    clock: ManualClock
    _tokens: dict[tuple[str, str, tuple[str, ...]], dict[str, str]] = field(default_factory=dict)

    def auth(self, user: str, *roles: str, tenant: str = "acme") -> dict[str, str]:
        """Authorization headers of a token for `user` in `roles` (minted once)."""
        key = (tenant, user, tuple(sorted(roles)))
        if key not in self._tokens:
            issued = self.rt.issue_token(tenant, user, roles, name="test")
            self._tokens[key] = {"Authorization": f"Bearer {issued.secret}"}
        return self._tokens[key]

    def url(self, tenant: str, path: str) -> str:
        return f"{BASE}/{tenant}/{path.lstrip('/')}"

    def create_incident(self, tenant: str = "acme", user: str = "olivia", **changes: Any) -> Any:
        body = {"template": "incident", "fields": {**INCIDENT, **changes}}
        r = self.client.post(
            self.url(tenant, "tickets"),
            json=body,
            headers=self.auth(user, "employee", tenant=tenant),
        )
        assert r.status_code == 201, r.text
        return r.json()


# Both tenants take QR reports on store equipment, public incident forms and alarms.
_TENANT_INTAKE = """
    web: {role: [employee], templates: [it_service_desk/incident], captcha: false}
    qr: {role: [store_staff]}
    alarm:
      monitoring:
        template: it_service_desk/incident
        role: service_desk_agent
        key: [host]
        window: 1h
        fields: {description: output}
        defaults: {category: other, affected_service: other, impact: low, urgency: low}
"""
INTAKE = IntakeConfig.from_text("tenants:\n" + "".join(f"  {t}:{_TENANT_INTAKE}" for t in TENANTS))
ASSET = {
    "code": "FR-1",
    "type": "fridge",
    "template": "retail_store/store_repair",
    "fields": {"store_no": "S0123", "category": "refrigeration"},
}


@contextmanager
def open_api(kind: str, tmp_path: Path, settings: ApiSettings | None = None) -> Iterator[Api]:
    clock = ManualClock(START)
    with database_url(kind, tmp_path) as url:
        rt = Runtime(open_store(url), clock, intake=INTAKE)
        for tenant in TENANTS:
            for pack in PACKS:
                rt.publish(pack, tenant=tenant)
        app = create_app(rt, settings or ApiSettings(token_cache_seconds=0))
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                yield Api(client, rt, clock)
        finally:
            rt.close()
