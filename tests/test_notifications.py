"""Notifications end to end: recipients, per-locale rendering with each recipient's
permitted fields, the outbox, and delivery to real counterparts on loopback — an SMTP
server, a webhook receiver checking signatures, one that fails three times first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from loopback import smtp_server, webhook_server
from runtime_fixtures import ROOT, STORE_KINDS, make_runtime

from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.delivery import ChannelConfig

DISPATCH = ROOT / "tests" / "packs" / "dispatch"
PEOPLE = ROOT / "tests" / "people" / "dispatch.yaml"
CUSTOMER = Actor.of("cust", ["customer"], locale="zh")
AGENT = Actor.of("agent1", ["agent"])
SITE = {"lat": 31.2405, "lon": 121.4805, "address": "Nanjing Rd 1"}
SECRET = "s3cret-for-erp"


def pack_with(tmp_path: Path, replace: dict[str, str]) -> Path:
    """The dispatch pack with some text replaced (a webhook URL, a message)."""
    text = (DISPATCH / "pack.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    folder = tmp_path / "pack"
    folder.mkdir(exist_ok=True)
    (folder / "pack.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(kind: str, tmp_path: Path) -> Iterator[tuple[Runtime, ManualClock]]:
    with make_runtime(kind, tmp_path, (DISPATCH,)) as (rt, clock):
        rt.import_people("default", str(PEOPLE))
        yield rt, clock


def p1(rt: Runtime, **extra: Any) -> Any:
    values = {"category": "hvac", "priority": "P1", "site": SITE, **extra}
    return rt.create("repair", values, CUSTOMER)


def rows_for(rt: Runtime, person: str) -> list[Any]:
    return [o for o in rt.outbox("default") if o.recipient == person]


# -- rendering per recipient ----------------------------------------------------------------


def test_one_row_per_recipient_and_channel_in_their_locale(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    t = p1(rt)
    boss, cust = rows_for(rt, "boss"), rows_for(rt, "cust")
    assert sorted(o.channel or "" for o in boss) == ["email", "in_app"]
    assert sorted(o.channel or "" for o in cust) == ["email", "in_app"]
    boss_body = boss[0].payload["body"]
    assert boss_body.startswith(f"P1 {t.ref}: hvac at Nanjing Rd 1") and "hello Boss" in boss_body
    assert (
        cust[0].payload["body"].startswith(f"紧急 {t.ref}：空调")  # the option's zh label
        and "Customer Chen 您好" in cust[0].payload["body"]
    )
    # Stable ids: one message id per row, and the in-app copy is delivered on commit.
    assert len({o.id for o in boss + cust}) == 4
    assert {o.status for o in boss + cust if o.channel == "in_app"} == {"sent"}
    assert {o.status for o in boss + cust if o.channel == "email"} == {"pending"}


def test_hidden_fields_render_as_nothing_for_those_who_may_not_read_them(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    t = p1(rt)
    rt.update(t.id, {"cost": 999}, AGENT)  # the `cost_set` rule tells both again
    boss = rows_for(rt, "boss")[-1].payload["body"]
    cust = rows_for(rt, "cust")[-1].payload["body"]
    assert "cost 999" in boss
    assert "999" not in cust and "费用 ；" in cust  # customers may not read cost


def test_a_broken_template_never_breaks_the_command(kind: str, tmp_path: Path) -> None:
    broken = pack_with(
        tmp_path, {"cost {{ ticket.cost }}; hello": "cost {{ ticket.cost + 'x' }}; hello"}
    )
    with make_runtime(kind, tmp_path, (broken,)) as (rt, _):
        rt.import_people("default", str(PEOPLE))
        t = rt.create("repair", {"category": "hvac", "priority": "P1", "site": SITE}, CUSTOMER)
        assert rt.get(t.id, AGENT).state == "new"  # the ticket exists and moved on
        dead = rt.outbox("default", "dead")
        assert {o.recipient for o in dead} == {"boss"}  # the zh text (customer) rendered fine
        assert all("template failed" in (o.last_error or "") for o in dead)
        queued = next(e for e in rt.timeline(t.id, AGENT) if e.kind == "notify.queued")
        assert queued.data["failed"] == 2


def test_a_template_that_loops_forever_is_stopped_at_render(kind: str, tmp_path: Path) -> None:
    endless = "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}"
    pack = pack_with(
        tmp_path, {'en: "Nobody could be found for {{ ticket.ref }}"': f"en: '{endless}'"}
    )
    with make_runtime(kind, tmp_path, (pack,)) as (rt, _):
        rt.import_people("default", str(PEOPLE))
        rt.remove_people("default", ["li"])
        t = rt.create("repair", {"category": "fridge", "site": SITE}, CUSTOMER)
        assert rt.get(t.id, AGENT).team == "desk"
        dead = rt.outbox("default", "dead")
        assert dead and all(
            "template stopped" in (o.last_error or "") or "longer than" in (o.last_error or "")
            for o in dead
        )


# -- mentions, canned replies, the customer's view ----------------------------------------------


def test_mentions_notify_those_who_may_read_the_comment(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = p1(rt)
    wang = rt.actor("default", "wang")
    rt.comment(t.id, "@li can you bring the gauge? @nobody", wang)
    assert [o.channel for o in rows_for(rt, "li")] == ["in_app"]
    body = rows_for(rt, "li")[0].payload["body"]
    assert body.startswith("Wang Wei 在 ") and "bring the gauge" in body  # li reads Chinese
    rt.comment(t.id, "internal: @cust is difficult", wang, internal=True)
    assert (
        len(rows_for(rt, "cust")) == 2
    )  # only the P1 alert: internal notes are not sent to customers
    comment = next(e for e in rt.timeline(t.id, AGENT) if e.kind == "commented")
    assert comment.data["notified"] == ["li"]
    assert [m.payload["body"] for m in rt.inbox(rt.actor("default", "li"))] == [body]


def test_comment_attachments_are_checked_metadata(env: tuple[Runtime, ManualClock]) -> None:
    from runtime.records import InvalidFields

    rt, _ = env
    t = p1(rt)
    files = [{"id": "f1", "name": "photo.jpg", "content_type": "image/jpeg", "size": 2048}]
    rt.comment(t.id, "photo of the unit", CUSTOMER, attachments=files)
    entry = [e for e in rt.timeline(t.id, AGENT) if e.kind == "commented"][-1]
    assert entry.data["attachments"] == files
    with pytest.raises(InvalidFields) as caught:
        rt.comment(t.id, "bad", CUSTOMER, attachments=[{"name": "x.jpg", "size": -1}])
    fields = {p.field for p in caught.value.problems}
    assert fields == {"attachments[0]", "attachments[0].size"}


def test_canned_replies_render_per_locale_for_staff_only(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = p1(rt)
    rt.update(t.id, {"cost": 300}, AGENT)
    zh_agent = Actor.of("agent2", ["agent"], locale="zh")
    replies = {r.name: r for r in rt.canned_replies(t.id, zh_agent)}
    assert replies["on_the_way"].title == "工程师在路上"
    assert replies["on_the_way"].body == f"您好，工程师正在前往处理您的hvac问题（{t.ref}）。"
    assert rt.canned_replies(t.id, AGENT)[1].body == "The repair costs 300 CNY."
    assert rt.canned_replies(t.id, CUSTOMER) == []


def test_the_customer_timeline_shows_progress_without_internal_detail(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, _ = env
    t = p1(rt)
    wang = rt.actor("default", "wang")
    rt.comment(t.id, "compressor seized, bring a new one", wang, internal=True)
    rt.transition(t.id, "accept", wang)
    rt.transition(t.id, "depart", wang)
    steps = [p.text for p in rt.progress(t.id, CUSTOMER)]
    assert steps == ["已受理", "已分派给工作人员", "已安排工程师", "工程师正在路上"]
    assert all("compressor" not in (p.body or "") for p in rt.progress(t.id, CUSTOMER))


# -- delivery ---------------------------------------------------------------------------------


def test_email_arrives_over_smtp(kind: str, tmp_path: Path) -> None:
    with smtp_server() as smtp:
        channels = ChannelConfig.model_validate(
            {"smtp": {"host": smtp.host, "port": smtp.port, "sender": "desk@example.com"}}
        )
        with make_runtime(kind, tmp_path, (DISPATCH,)) as (rt, _):
            rt.channels = channels
            rt.import_people("default", str(PEOPLE))
            t = p1(rt)
            report = rt.drain_outbox()
            assert (report.sent, report.dead) == (2, 0)
            by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp.mails}
            assert set(by_rcpt) == {"boss@example.com", "cust@example.com"}
            mail = by_rcpt["cust@example.com"]
            assert mail["Subject"].startswith(f"[{t.ref}] 紧急")
            assert "Customer Chen 您好" in mail.get_content()
            row = next(o for o in rows_for(rt, "cust") if o.channel == "email")
            assert row.id in mail["Message-ID"]
            assert rt.outbox("default", "pending") == []


def test_webhook_signed_and_retried_until_accepted(kind: str, tmp_path: Path) -> None:
    with webhook_server(secret=SECRET, fail_first=3) as hook:
        pack = pack_with(tmp_path, {"http://127.0.0.1:9/hooks/done": f"{hook.url}/hooks/done"})
        channels = ChannelConfig.model_validate({"secrets": {"erp": {"value": SECRET}}})
        with make_runtime(kind, tmp_path, (pack,)) as (rt, clock):
            rt.channels = channels
            rt.import_people("default", str(PEOPLE))
            t = rt.create("repair", {"category": "hvac", "site": SITE, "cost": 120}, AGENT)
            wang = rt.actor("default", "wang")
            rt.transition(t.id, "accept", wang)
            rt.transition(t.id, "finish", wang)
            attempts = []
            for _ in range(6):
                rt.drain_outbox()
                row = next(o for o in rt.outbox("default") if o.kind == "webhook")
                attempts.append((row.status, row.attempts))
                clock.advance(timedelta(hours=1))
            # Three failures with their errors visible, then accepted; nothing after that.
            assert attempts[:4] == [("pending", 1), ("pending", 2), ("pending", 3), ("sent", 4)]
            assert attempts[4:] == [("sent", 4), ("sent", 4)]
            assert len(hook.received) == 4
            assert hook.delivered_ids() == [row.id]  # the application saw it once
            accepted = hook.accepted[0]
            assert accepted.body.startswith(f'{{"ref": "{t.ref}", "cost": "120'.encode())
            assert row.last_error is not None and "500" in row.last_error


def test_a_refused_webhook_is_dead_listed_and_can_be_retried(kind: str, tmp_path: Path) -> None:
    with webhook_server(secret=SECRET, fail_first=1, status=400) as hook:
        pack = pack_with(tmp_path, {"http://127.0.0.1:9/hooks/done": f"{hook.url}/hooks/done"})
        channels = ChannelConfig.model_validate({"secrets": {"erp": {"value": SECRET}}})
        with make_runtime(kind, tmp_path, (pack,)) as (rt, _):
            rt.channels = channels
            rt.import_people("default", str(PEOPLE))
            t = rt.create("repair", {"category": "hvac", "site": SITE}, AGENT)
            wang = rt.actor("default", "wang")
            rt.transition(t.id, "accept", wang)
            rt.transition(t.id, "finish", wang)
            assert rt.drain_outbox().dead == 1
            dead = rt.outbox("default", "dead")
            assert len(dead) == 1 and "400" in (dead[0].last_error or "")
            assert rt.retry_outbox("default", [dead[0].id, "no-such-id"]) == 1
            assert rt.drain_outbox().sent == 1
            assert hook.delivered_ids() == [dead[0].id]
