"""Intake over HTTP, as a mail gateway, a monitoring system and a customer's phone call it:
a real RFC 822 email opens a ticket and its reply comments on it; a QR code opens the
asset's prefilled form; 1,000 duplicate alarms make one ticket and 999 attached
occurrences; public forms need their captcha; every item is idempotent by key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from litestar.testing import TestClient

from builder_api.app import ApiSettings, create_app
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.intake import IntakeConfig
from tests.runtime_fixtures import ROOT, START, database_url

PACKS = [
    ROOT / "examples" / "workflows" / name
    for name in (
        "it_service_desk",
        "property",
        "manufacturing",
        "hotel",
        "retail_store",
        "home_services",
    )
]
BASE = "/api/v1/tenants/default"


@dataclass
class Env:
    client: TestClient[Any]
    rt: Runtime
    gateway: dict[str, str]  # the mail gateway / monitoring system's token
    desk: dict[str, str]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with database_url("sqlite", tmp_path_factory.mktemp("intake")) as url:
        config = IntakeConfig.load(ROOT / "examples" / "intake.yaml")
        rt = Runtime.open(PACKS, database_url=url, clock=ManualClock(START), intake=config)
        rt.put_people(
            "default",
            [
                {
                    "id": "alice",
                    "name": "Alice Example",
                    "roles": ["employee"],
                    "email": "alice@example.com",
                }
            ],
        )
        for path in sorted((ROOT / "examples" / "assets").iterdir()):
            rt.import_assets("default", path)
        settings = ApiSettings(
            token_cache_seconds=0, captcha=lambda tenant, answer: answer == "human"
        )
        try:
            with TestClient(create_app(rt, settings), raise_server_exceptions=False) as client:
                gateway = rt.issue_token("default", "mailgw", ["ticketflow:intake"]).secret
                desk = rt.issue_token("default", "sam", ["service_desk_agent"]).secret
                yield Env(client, rt, _bearer(gateway), _bearer(desk))
        finally:
            rt.close()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _email(subject: str, body: str, *, sender: str = "Alice Example <alice@example.com>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "IT Service Desk <servicedesk@example.com>"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="mail.example.com")
    msg["Date"] = "Tue, 10 Mar 2026 09:12:00 -0400"
    msg.set_content(body)
    msg.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
    msg.add_attachment(b"\x89PNG fake", maintype="image", subtype="png", filename="error.png")
    return msg.as_bytes()


def test_a_real_email_opens_a_ticket_and_its_reply_comments_on_it(env: Env) -> None:
    raw = _email(
        "Outlook keeps asking for my password",
        "Since this morning Outlook asks for my password every 5 minutes.",
    )
    url = f"{BASE}/intake/email"
    first = env.client.post(
        url, content=raw, headers={**env.gateway, "Content-Type": "message/rfc822"}
    )
    assert first.status_code == 201, first.text
    made = first.json()
    assert made["outcome"] == "created" and made["ref"].startswith("INC")
    ticket = env.client.get(f"{BASE}/tickets/{made['ticket_id']}", headers=env.desk).json()
    assert ticket["title"] == "Outlook keeps asking for my password"
    assert ticket["requester"] == "alice" and ticket["channel"] == "email"
    assert "every 5 minutes" in ticket["fields"]["description"]

    again = env.client.post(
        url, content=raw, headers={**env.gateway, "Content-Type": "message/rfc822"}
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["ticket_id"] == made["ticket_id"]

    reply = _email(
        f"RE: [{made['ref']}] Outlook keeps asking for my password",
        "It happens on my phone too.\n\nOn Tue, 10 Mar 2026, IT Service Desk wrote:\n> We are looking into it.\n",
    )
    answered = env.client.post(
        url, content=reply, headers={**env.gateway, "Content-Type": "message/rfc822"}
    )
    assert answered.status_code == 200, answered.text
    assert (answered.json()["outcome"], answered.json()["ticket_id"]) == (
        "commented",
        made["ticket_id"],
    )
    timeline = env.client.get(
        f"{BASE}/tickets/{made['ticket_id']}/timeline", headers=env.desk
    ).json()
    comments = [e["data"]["body"] for e in timeline if e["kind"] == "commented"]
    assert comments == ["It happens on my phone too."]


def test_email_intake_needs_the_intake_role(env: Env) -> None:
    r = env.client.post(f"{BASE}/intake/email", content=_email("x", "y"), headers=env.desk)
    assert r.status_code == 403 and r.json()["code"] == "intake-only"
    with env.rt.store.read() as tx:
        assert tx.intake("default", "email:x") is None


def test_a_qr_code_opens_the_assets_prefilled_form_and_reports_on_it(env: Env) -> None:
    scanned = env.client.get(f"{BASE}/public/qr/PR-01?locale=zh")
    assert scanned.status_code == 200, scanned.text
    form = scanned.json()
    assert form["template"] == "manufacturing/equipment_breakdown"
    assert form["form_data"]["asset"] == "PR-01" and form["form_data"]["line"] == "press_1"
    assert form["asset"]["name"].startswith("Press line 1")
    assert "asset" in form["schema"]["properties"]
    body = {
        "fields": {
            "fault_type": "hydraulic",
            "line_impact": "line_down",
            "symptom": "Oil leaking at the ram.",
        }
    }
    sent = env.client.post(
        f"{BASE}/public/qr/PR-01", json=body, headers={"Idempotency-Key": "scan-77"}
    )
    assert sent.status_code == 201, sent.text
    again = env.client.post(
        f"{BASE}/public/qr/PR-01", json=body, headers={"Idempotency-Key": "scan-77"}
    )
    assert again.status_code == 200 and again.json()["ticket_id"] == sent.json()["ticket_id"]
    ticket = env.rt.get(sent.json()["ticket_id"], Actor.system("default"))
    assert ticket.fields["asset"] == "PR-01" and ticket.channel == "qr"
    unknown = env.client.get(f"{BASE}/public/qr/NOPE-1")
    assert unknown.status_code == 404 and "NOPE-1" in unknown.json()["detail"]


def test_a_thousand_duplicate_alarms_make_one_ticket_and_999_occurrences(env: Env) -> None:
    alarm = {
        "host": "db-7",
        "service": "disk",
        "state": "CRITICAL",
        "summary": "db-7: disk full",
        "output": "DISK CRITICAL - 2% free on /var",
    }
    url = f"{BASE}/intake/alarms/monitoring"
    answers = [env.client.post(url, json=alarm, headers=env.gateway) for _ in range(1000)]
    assert Counter(r.status_code for r in answers) == {201: 1, 200: 999}
    outcomes = [r.json() for r in answers]
    assert Counter(o["outcome"] for o in outcomes) == {"created": 1, "attached": 999}
    ticket_id = outcomes[0]["ticket_id"]
    assert {o["ticket_id"] for o in outcomes} == {ticket_id}
    assert outcomes[-1]["occurrences"] == 1000
    listed = env.client.get(f"{BASE}/tickets?q=db-7&limit=500", headers=env.desk).json()["items"]
    assert [t["id"] for t in listed] == [ticket_id]
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = env.client.get(
            f"{BASE}/tickets/{ticket_id}/occurrences",
            params={"limit": 500, **({"after": after} if after else {})},
            headers=env.desk,
        ).json()
        if not page:
            break
        seen += page
        after = page[-1]["key"]
    assert Counter(o["outcome"] for o in seen) == {"created": 1, "attached": 999}

    recovered = env.client.post(
        url, json={**alarm, "state": "OK", "output": "DISK OK - 40% free"}, headers=env.gateway
    )
    assert recovered.status_code == 200 and recovered.json()["outcome"] == "resolved"
    after_recovery = env.client.get(f"{BASE}/tickets/{ticket_id}", headers=env.desk).json()
    assert after_recovery["state"] == "resolved"
    assert after_recovery["fields"]["resolution_notes"] == "DISK OK - 40% free"


def test_public_forms_need_the_captcha_and_change_nothing_without_it(env: Env) -> None:
    form = env.client.get(f"{BASE}/public/forms/complaint")
    assert form.status_code == 200 and form.json()["captcha"] is True
    values = {
        "category": "noise",
        "building": "tower_1",
        "flat": "3C",
        "contact_phone": "+852 9123 4567",
        "details": "Drilling at 11 pm.",
    }
    before = env.client.get(f"{BASE}/tickets?template=complaint", headers=env.desk)
    wrong = env.client.post(
        f"{BASE}/public/forms/complaint", json={"fields": values, "captcha": "robot"}
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "intake-refused"
    assert (
        env.client.get(f"{BASE}/tickets?template=complaint", headers=env.desk).json()
        == before.json()
    )
    ok = env.client.post(
        f"{BASE}/public/forms/complaint", json={"fields": values, "captcha": "human"}
    )
    assert ok.status_code == 201 and ok.json()["outcome"] == "created"
    private = env.client.get(f"{BASE}/public/forms/incident")
    assert private.status_code == 403 and "no public form" in private.json()["detail"]
