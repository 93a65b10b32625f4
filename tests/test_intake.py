"""Intake channels on the shipped packs and examples/intake.yaml: inbound email (new
ticket, reply as a comment, redelivery, refused senders), QR codes of examples/assets/,
public web forms, and monitoring alarms with their dedup window (1,000 duplicates make
one ticket and 999 attached occurrences, also from several threads at once).

One runtime per store kind serves the module (publishing six packs costs more than the
tests); each test uses its own senders, message ids and alarm hosts.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from runtime_fixtures import START, STORE_KINDS, database_url

from dsl.diagnostics import Diagnostic
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.intake import IntakeConfig, IntakeConfigError, IntakeRefused, check_against
from runtime.intake_assets import AssetError
from runtime.intake_mail import find_refs, html_to_text, parse_email, ref_regex, strip_quoted
from runtime.records import InvalidCommand, NotFound

ROOT = Path(__file__).resolve().parent.parent
PACKS = [
    ROOT / "examples" / "workflows" / name
    for name in (
        "it_service_desk", "property", "manufacturing", "hotel", "retail_store", "home_services"
    )
]  # fmt: skip
CONFIG = IntakeConfig.load(ROOT / "examples" / "intake.yaml")
ASSETS = sorted((ROOT / "examples" / "assets").iterdir())
TENANT = "default"
SYSTEM = Actor.system(TENANT)
DESK = Actor.of("desk1", ["service_desk_agent"], TENANT)
PEOPLE: list[dict[str, Any]] = [
    {"id": "alice", "name": "Alice Example", "roles": ["employee"], "email": "Alice@example.com"},
    {
        "id": "r-1203",
        "name": "Chan Tai Man",
        "roles": ["resident"],
        "email": "chan.taiman@example.hk",
        "phone": "+852 2345 6789",
        "attributes": {"building": "tower_2", "flat": "12A"},
    },
]


@dataclass
class Env:
    rt: Runtime
    clock: ManualClock
    kind: str


def _open(kind: str, tmp: Path) -> Iterator[Env]:
    with database_url(kind, tmp) as url:
        clock = ManualClock(START)
        rt = Runtime.open(PACKS, database_url=url, clock=clock, intake=CONFIG)
        try:
            rt.put_people(TENANT, PEOPLE)
            for path in ASSETS:
                rt.import_assets(TENANT, path)
            rt.captcha_check = lambda tenant, answer: answer == "right"
            yield Env(rt, clock, kind)
        finally:
            rt.close()


@pytest.fixture(scope="module", params=STORE_KINDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from _open(request.param, tmp_path_factory.mktemp(request.param))


# -- a real message -------------------------------------------------------------------------------

# A reply to a facilities notice, sent to the desk too: multipart/mixed holding a
# multipart/alternative (quoted-printable text, HTML) and a base64 PNG; encoded-word
# headers, CRLF line ends, the desk only in Delivered-To and Cc.
PRINTER_MAIL = (
    b"Return-Path: <wei.zhang@example.com>\r\n"
    b"Delivered-To: servicedesk@example.com\r\n"
    b"Received: from mx1.example.com (mx1.example.com [192.0.2.10])\r\n"
    b"\tby mail.example.com with ESMTPS id 4Q1x2; Mon, 02 Mar 2026 09:12:45 -0500\r\n"
    b"From: =?UTF-8?B?5byg5Lyf?= <Wei.Zhang@Example.com>\r\n"
    b"To: Facilities <facilities@example.com>\r\n"
    b"Cc: IT Service Desk <servicedesk@example.com>\r\n"
    b"Subject: =?UTF-8?Q?Re:_Printer_on_3F_jams_=E2=80=93_every_page?=\r\n"
    b"Date: Mon, 02 Mar 2026 09:12:44 -0500\r\n"
    b"Message-ID: <CAF+printer-3f-0001@mail.example.com>\r\n"
    b"In-Reply-To: <notice-77@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer-b1"\r\n'
    b"\r\n"
    b"--outer-b1\r\n"
    b'Content-Type: multipart/alternative; boundary="inner-b2"\r\n'
    b"\r\n"
    b"--inner-b2\r\n"
    b'Content-Type: text/plain; charset="UTF-8"\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"The printer on the 3rd floor jams on every page since this morning.\r\n"
    b"Error shown: E-502 =E2=80=93 paper path.\r\n"
    b"\r\n"
    b"On Fri, 27 Feb 2026 at 16:02, Facilities <facilities@example.com> wrote:\r\n"
    b"> Please report printer faults to the service desk.\r\n"
    b"\r\n"
    b"--inner-b2\r\n"
    b'Content-Type: text/html; charset="UTF-8"\r\n'
    b"\r\n"
    b"<html><body><p>The printer on the 3rd floor jams on every page.</p>"
    b"<blockquote>Please report printer faults</blockquote></body></html>\r\n"
    b"--inner-b2--\r\n"
    b"\r\n"
    b"--outer-b1\r\n"
    b'Content-Type: image/png; name="jam.png"\r\n'
    b'Content-Disposition: attachment; filename="jam.png"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"iVBORw0KGgoAAAANSUhEUg==\r\n"
    b"--outer-b1--\r\n"
)


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    content_type: str = "text/plain",
    extra: str = "",
) -> bytes:
    return (
        f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{message_id}>\n{extra}"
        f'MIME-Version: 1.0\nContent-Type: {content_type}; charset="utf-8"\n\n{body}\n'
    ).encode()


def tickets(rt: Runtime, template: str) -> int:
    return len(rt.query(SYSTEM, templates=[template], limit=500).items)


# -- email ------------------------------------------------------------------------------------------


def test_an_email_opens_a_ticket_with_the_mapped_fields(env: Env) -> None:
    result = env.rt.receive_email(TENANT, PRINTER_MAIL)

    assert (result.outcome, result.duplicate) == ("created", False)
    assert result.key == "email:CAF+printer-3f-0001@mail.example.com"
    t = env.rt.get(result.ticket_id or "", SYSTEM)
    assert t.ref == result.ref and t.ref.startswith("INC")
    assert (t.template, t.channel, t.title) == (
        "incident",
        "email",
        "Re: Printer on 3F jams – every page",
    )
    # An unknown sender to the desk mailbox is a guest employee, known by the address.
    assert t.requester == "wei.zhang@example.com"
    assert t.fields["description"].startswith(
        "The printer on the 3rd floor jams on every page since this morning.\n"
        "Error shown: E-502 – paper path."
    )  # the plain-text part, not the HTML
    assert {k: t.fields[k] for k in ("category", "affected_service", "impact", "urgency")} == {
        "category": "other", "affected_service": "other", "impact": "low", "urgency": "medium"
    }  # fmt: skip
    [item] = env.rt.occurrences(t.id, DESK)
    assert item.data["attachments"] == [
        {"name": "jam.png", "content_type": "image/png", "size": 16}
    ]
    assert item.data["from"] == "wei.zhang@example.com"


def test_a_known_sender_opens_the_ticket_as_themselves(env: Env) -> None:
    raw = mail("Alice <alice@EXAMPLE.com>", "servicedesk@example.com", "Laptop fan noise",
               "It is loud.", "fan-1@example.com")  # fmt: skip

    result = env.rt.receive_email(TENANT, raw)

    assert env.rt.get(result.ticket_id or "", SYSTEM).requester == "alice"


def test_a_reply_with_the_reference_in_the_subject_is_a_comment_without_the_quote(env: Env) -> None:
    first = env.rt.receive_email(TENANT, mail(
        "Bob Guest <bob.guest@example.com>", "servicedesk@example.com", "Teams crashes",
        "Teams crashes on start.", "teams-1@example.com"))  # fmt: skip
    before = tickets(env.rt, "incident")
    html = (
        "<div>Still crashing after the update.<br>Log attached.</div>"
        "<div><hr><b>From:</b> IT Service Desk &lt;servicedesk@example.com&gt;<br>"
        "<b>Sent:</b> Monday, 2 March 2026 10:02<br>Subject: Teams crashes</div>"
        "<div>We installed the update.</div>"
    )
    reply = mail("bob.guest@example.com", "servicedesk@example.com",
                 f"RE: [{first.ref}] Teams crashes", html, "teams-2@example.com",
                 content_type="text/html")  # fmt: skip

    result = env.rt.receive_email(TENANT, reply)

    assert (result.outcome, result.ticket_id, result.ref) == (
        "commented",
        first.ticket_id,
        first.ref,
    )
    assert tickets(env.rt, "incident") == before
    comments = [e for e in env.rt.timeline(first.ticket_id or "", DESK) if e.kind == "commented"]
    assert [(c.actor, c.data["body"], c.visibility) for c in comments] == [
        ("bob.guest@example.com", "Still crashing after the update.\nLog attached.", "public")
    ]
    assert [i.outcome for i in env.rt.occurrences(first.ticket_id or "", DESK)] == [
        "created",
        "commented",
    ]


def test_a_reference_the_sender_may_not_see_opens_a_new_ticket(env: Env) -> None:
    first = env.rt.receive_email(TENANT, mail(
        "carol@example.org", "servicedesk@example.com", "Printer", "Broken.", "carol-1@x"))  # fmt: skip

    other = env.rt.receive_email(TENANT, mail(
        "mallory@example.org", "servicedesk@example.com", f"Re: {first.ref}", "Status?", "mal-1@x"))  # fmt: skip

    assert other.outcome == "created" and other.ticket_id != first.ticket_id
    assert not [e for e in env.rt.timeline(first.ticket_id or "", DESK) if e.kind == "commented"]


def test_a_redelivered_message_returns_the_first_outcome_and_changes_nothing(env: Env) -> None:
    raw = mail(
        "dave@example.org", "servicedesk@example.com", "VPN drops", "Every 5 min.", "vpn-1@x"
    )
    first = env.rt.receive_email(TENANT, raw)
    events = len(env.rt.timeline(first.ticket_id or "", DESK))
    count = tickets(env.rt, "incident")

    again = env.rt.receive_email(TENANT, raw)

    assert again.duplicate and (again.outcome, again.ticket_id, again.ref, again.key) == (
        first.outcome, first.ticket_id, first.ref, first.key
    )  # fmt: skip
    assert tickets(env.rt, "incident") == count
    assert len(env.rt.timeline(first.ticket_id or "", DESK)) == events


def test_an_unknown_sender_is_refused_where_the_route_says_so_and_nothing_is_stored(
    env: Env,
) -> None:
    raw = mail(
        "stranger@example.net", "complaints@example.com", "Noise", "Loud music.", "noise-1@x"
    )
    count = tickets(env.rt, "complaint")

    with pytest.raises(IntakeRefused, match=r"stranger@example\.net is not in the directory"):
        env.rt.receive_email(TENANT, raw)

    assert tickets(env.rt, "complaint") == count
    with env.rt.store.read() as tx:
        assert tx.intake(TENANT, "email:noise-1@x") is None


def test_a_known_residents_complaint_takes_flat_and_phone_from_the_directory(env: Env) -> None:
    raw = mail("chan.taiman@example.hk", "Complaints@Example.com", "Dog barking at night",
               "The dog in 12B barks every night.", "dog-1@x")  # fmt: skip

    result = env.rt.receive_email(TENANT, raw)

    t = env.rt.get(result.ticket_id or "", SYSTEM)
    assert (t.template, t.requester) == ("complaint", "r-1203")
    assert {k: t.fields[k] for k in ("building", "flat", "contact_phone", "category", "details")} == {
        "building": "tower_2", "flat": "12A", "contact_phone": "+852 2345 6789",
        "category": "other", "details": "The dog in 12B barks every night.",
    }  # fmt: skip


def test_auto_replies_are_recorded_but_open_nothing(env: Env) -> None:
    raw = mail("erin@example.org", "servicedesk@example.com", "Out of office", "Back Monday.",
               "ooo-1@x", extra="Auto-Submitted: auto-replied\n")  # fmt: skip
    count = tickets(env.rt, "incident")

    result = env.rt.receive_email(TENANT, raw)

    assert (result.outcome, result.ticket_id, result.note) == (
        "ignored",
        None,
        "an automatic reply",
    )
    assert tickets(env.rt, "incident") == count
    assert env.rt.receive_email(TENANT, raw).duplicate


def test_mail_no_route_takes_is_refused(tmp_path: Path) -> None:
    config = IntakeConfig.from_text(
        "tenants:\n  default:\n    email:\n      routes:\n"
        "        - {to: desk@example.com, template: incident, unknown_senders: refuse}\n"
    )
    rt = Runtime.open(PACKS[:1], database_url="memory", intake=config)
    raw = mail("alice@example.com", "sales@example.com", "Hi", "Hello", "hi-1@x")

    with pytest.raises(IntakeRefused, match=r"no email route takes mail to sales@example\.com"):
        rt.receive_email(TENANT, raw)


# -- parsing helpers --------------------------------------------------------------------------------


def test_parse_email_reads_sender_recipients_and_attachment_metadata() -> None:
    parsed = parse_email(PRINTER_MAIL)

    assert (parsed.from_address, parsed.from_name) == ("wei.zhang@example.com", "张伟")
    assert parsed.recipients == (
        "servicedesk@example.com", "facilities@example.com"
    )  # fmt: skip
    assert parsed.message_id == "CAF+printer-3f-0001@mail.example.com"
    assert [(a.name, a.content_type, a.size) for a in parsed.attachments] == [
        ("jam.png", "image/png", 16)
    ]


def test_parse_email_refuses_what_cannot_be_a_message() -> None:
    with pytest.raises(InvalidCommand, match="no From address"):
        parse_email(b"Subject: hi\n\nbody\n")
    with pytest.raises(InvalidCommand, match="takes at most 1,024"):
        parse_email(b"From: a@b.c\n\n" + b"x" * 2000, max_bytes=1024)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Thanks!\n\nOn Mon, 2 Mar 2026 at 09:14, Desk <d@x.com> wrote:\n> old\n", "Thanks!"),
        ("Thanks!\nOn Mon, 2 Mar 2026 at 09:14, Service Desk\n<d@x.com> wrote:\n> old", "Thanks!"),
        ("好的，谢谢\n\n在 2026年3月2日 09:14，服务台 写道：\n> 旧内容", "好的，谢谢"),
        ("Done.\n-----Original Message-----\nFrom: Desk\nSent: Monday", "Done."),
        ("Done.\n\nFrom: Desk <d@x.com>\nSent: Monday, 2 March\nSubject: x\n\nold", "Done."),
        ("See below\n> quoted line\nmy answer", "See below\nmy answer"),
    ],
)
def test_strip_quoted_keeps_only_the_new_text(text: str, kept: str) -> None:
    assert strip_quoted(text) == kept


def test_html_to_text_keeps_lines_and_drops_markup() -> None:
    html = "<style>p{}</style><p>Line&nbsp;one</p><ul><li>a</li><li>b</li></ul>x<br>y<br/>z"
    assert html_to_text(html) == "Line\xa0one\n\n- a\n- b\nx\ny\nz"


def test_references_are_found_by_the_templates_ref_patterns() -> None:
    patterns = {
        "it/incident": ref_regex("INC{seq:07}"),
        "retail/inspection": ref_regex("IN-{yyyy}{mm}-{seq:04}"),
        "x/bare": ref_regex("{yyyy}-{seq}"),  # no letters: not detectable
    }
    known = {k: v for k, v in patterns.items() if v is not None}

    found = find_refs("Re: [INC0000123] and IN-202603-0042, not XINC0000123 or INC12", known)

    assert patterns["x/bare"] is None
    assert found == [("INC0000123", "it/incident"), ("IN-202603-0042", "retail/inspection")]


# -- QR codes and web forms -----------------------------------------------------------------------


def test_a_qr_code_opens_the_prefilled_form_of_its_assets_template(env: Env) -> None:
    scanner = env.rt.intake_actor(TENANT, "qr")

    machine = env.rt.qr_form(TENANT, "PR-01", scanner)
    room = env.rt.qr_form(TENANT, "ROOM-1208", scanner)  # from examples/assets/hotel.csv

    assert machine.template == "manufacturing/equipment_breakdown"
    assert machine.form_data == {"asset": "PR-01", "line": "press_1"}
    assert {"asset", "line", "symptom"} <= set(machine.schema["properties"])
    assert (room.template, room.form_data) == ("hotel/room_issue", {"room_no": "1208"})


def test_an_unknown_qr_code_is_not_found_with_the_code_named(env: Env) -> None:
    with pytest.raises(NotFound, match="no asset with code 'NOPE-9'"):
        env.rt.qr_form(TENANT, "NOPE-9", env.rt.intake_actor(TENANT, "qr"))


def test_a_qr_form_submission_opens_a_ticket_once_per_key(env: Env) -> None:
    scanner = env.rt.intake_actor(TENANT, "qr")
    form = env.rt.qr_form(TENANT, "S0123-FR-02", scanner)
    values = {**form.form_data, "description": "Not cooling, 12 °C inside."}

    first = env.rt.submit_form(TENANT, "store_repair", values, scanner, channel="qr", key="scan-1")
    again = env.rt.submit_form(TENANT, "store_repair", values, scanner, channel="qr", key="scan-1")

    t = env.rt.get(first.ticket_id or "", SYSTEM)
    assert (t.channel, t.fields["asset"], t.fields["store_no"]) == ("qr", "S0123-FR-02", "S0123")
    assert again.duplicate and again.ticket_id == first.ticket_id


def test_a_form_over_a_channel_its_template_does_not_take_is_refused(env: Env) -> None:
    scanner = env.rt.intake_actor(TENANT, "qr")
    with pytest.raises(InvalidCommand, match="incident tickets cannot come in over 'qr'"):
        env.rt.submit_form(TENANT, "incident", {}, scanner, channel="qr")


def test_public_web_forms_need_a_public_template_and_the_captcha(env: Env) -> None:
    visitor = env.rt.intake_actor(TENANT, "web")
    values = {"category": "noise", "building": "tower_1", "flat": "3C",
              "contact_phone": "+852 9123 4567", "details": "Drilling at 11 pm."}  # fmt: skip

    with pytest.raises(IntakeRefused, match="captcha"):
        env.rt.submit_form(TENANT, "complaint", values, visitor, captcha="wrong")
    with pytest.raises(IntakeRefused, match="home_repair has no public form"):
        env.rt.submit_form(TENANT, "home_repair", {}, visitor, captcha="right")
    result = env.rt.submit_form(TENANT, "complaint", values, visitor, captcha="right")

    assert env.rt.get(result.ticket_id or "", SYSTEM).requester == visitor.id
    assert env.rt.public_form(TENANT, "complaint").captcha


# -- alarms ---------------------------------------------------------------------------------------


def alarm(host: str, state: str = "CRITICAL", **extra: Any) -> dict[str, Any]:
    return {"host": host, "service": "disk", "state": state, "summary": f"{host}: disk full",
            "output": "DISK CRITICAL - 2% free on /var", **extra}  # fmt: skip


@pytest.mark.parametrize("env", ["memory", "sqlite"], indirect=True)
def test_a_thousand_duplicate_alarms_make_one_ticket_and_999_occurrences(env: Env) -> None:
    results = [env.rt.receive_alarm(TENANT, "monitoring", alarm("db-seq")) for _ in range(1000)]

    assert Counter(r.outcome for r in results) == {"created": 1, "attached": 999}
    assert len({r.ticket_id for r in results}) == 1
    assert [r.occurrences for r in results] == list(range(1, 1001))
    ticket_id = results[0].ticket_id or ""
    t = env.rt.get(ticket_id, SYSTEM)
    assert (t.title, t.fields["error_message"], t.requester) == (
        "db-seq: disk full", "DISK CRITICAL - 2% free on /var", "alarm:monitoring"
    )  # fmt: skip
    pages, after = [], None
    while page := env.rt.occurrences(ticket_id, DESK, after=after, limit=500):
        pages.append(page)
        after = page[-1].key
    assert [len(p) for p in pages] == [500, 500]
    assert {i.key for p in pages for i in p} == {r.key for r in results}


@pytest.mark.parametrize("env", ["sqlite", "postgresql"], indirect=True)
def test_a_threaded_burst_of_duplicate_alarms_makes_one_ticket(env: Env) -> None:
    start = threading.Barrier(8, timeout=60)

    def send(i: int) -> Any:
        if i < 8:
            start.wait()  # the first eight go at once: all race to open the ticket
        return env.rt.receive_alarm(TENANT, "monitoring", alarm("db-burst"), key=f"evt-{i}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(1000)))

    assert Counter(r.outcome for r in results) == {"created": 1, "attached": 999}
    assert len({r.ticket_id for r in results}) == 1
    assert sorted(r.occurrences or 0 for r in results) == list(range(1, 1001))
    with env.rt.store.read() as tx:
        assert tx.count_intake_of_ticket(TENANT, results[0].ticket_id or "") == 1000
    assert env.rt.receive_alarm(TENANT, "monitoring", alarm("db-burst"), key="evt-7").duplicate


def test_a_resolved_alarm_takes_the_resolving_transition(env: Env) -> None:
    opened = env.rt.receive_alarm(TENANT, "monitoring", alarm("web-1"))

    result = env.rt.receive_alarm(
        TENANT, "monitoring", alarm("web-1", "OK", output="DISK OK - 40% free")
    )

    assert (result.outcome, result.ticket_id) == ("resolved", opened.ticket_id)
    t = env.rt.get(opened.ticket_id or "", SYSTEM)
    assert (t.state, t.fields["resolution_code"], t.fields["resolution_notes"]) == (
        "resolved", "service_restarted", "DISK OK - 40% free"
    )  # fmt: skip
    # The incident it was is over: the next failure opens a new one.
    again = env.rt.receive_alarm(TENANT, "monitoring", alarm("web-1"))
    assert again.outcome == "created" and again.ticket_id != opened.ticket_id


def test_a_resolved_alarm_annotates_where_it_may_not_resolve(env: Env) -> None:
    stop = {"machine": "WR-07", "line": "weld_1", "text": "Robot 7 collision stop", "code": "C-17",
            "event": "raised"}  # fmt: skip
    opened = env.rt.receive_alarm(TENANT, "andon", stop)

    result = env.rt.receive_alarm(
        TENANT, "andon", {**stop, "event": "cleared", "text": "Restarted"}
    )

    assert (result.outcome, result.ticket_id) == ("annotated", opened.ticket_id)
    t = env.rt.get(opened.ticket_id or "", SYSTEM)
    assert (t.state, t.fields["asset"], t.fields["line_impact"]) == ("new", "WR-07", "line_down")
    notes = [e for e in env.rt.timeline(t.id, SYSTEM) if e.kind == "commented"]
    assert [(n.data["body"], n.visibility) for n in notes] == [
        ("Alarm 'andon' resolved: Restarted", "internal")
    ]


def test_a_resolved_alarm_annotates_when_the_transition_cannot_be_taken(env: Env) -> None:
    opened = env.rt.receive_alarm(TENANT, "monitoring", alarm("app-3"))
    env.rt.transition(opened.ticket_id or "", "cancel", DESK, comment="Planned maintenance")
    reopened = env.rt.receive_alarm(TENANT, "monitoring", alarm("app-3"))

    resolved = env.rt.receive_alarm(TENANT, "monitoring", alarm("app-3", "OK"))

    # The cancelled ticket is closed: the repeat opened a new one, which the recovery resolves.
    assert reopened.outcome == "created" and reopened.ticket_id != opened.ticket_id
    assert (resolved.outcome, resolved.ticket_id) == ("resolved", reopened.ticket_id)


def test_a_resolved_alarm_with_nothing_open_is_ignored(env: Env) -> None:
    result = env.rt.receive_alarm(TENANT, "monitoring", alarm("never-seen", "OK"))

    assert (result.outcome, result.ticket_id) == ("ignored", None)


def test_a_repeat_after_the_window_opens_a_new_ticket(env: Env) -> None:
    first = env.rt.receive_alarm(TENANT, "monitoring", alarm("mail-2"))
    env.clock.advance(timedelta(hours=3, minutes=59))
    inside = env.rt.receive_alarm(TENANT, "monitoring", alarm("mail-2"))
    env.clock.advance(timedelta(hours=4, minutes=1))  # 4 h since the previous occurrence

    after = env.rt.receive_alarm(TENANT, "monitoring", alarm("mail-2"))

    assert (inside.outcome, inside.ticket_id, inside.occurrences) == (
        "attached",
        first.ticket_id,
        2,
    )
    assert after.outcome == "created" and after.ticket_id != first.ticket_id
    assert after.occurrences == 1


def test_bad_alarms_are_refused_and_store_nothing(env: Env) -> None:
    with pytest.raises(InvalidCommand, match="the payload has no service"):
        env.rt.receive_alarm(TENANT, "monitoring", {"host": "x1", "state": "CRITICAL"}, key="bad-1")
    with pytest.raises(
        NotFound,
        match="no alarm source 'monitorin' for tenant 'default'; did you mean 'monitoring'",
    ):
        env.rt.receive_alarm(TENANT, "monitorin", alarm("x1"))
    with pytest.raises(InvalidCommand, match="the limit is 65,536"):
        env.rt.receive_alarm(TENANT, "monitoring", alarm("x1", output="x" * 70_000))
    with env.rt.store.read() as tx:
        assert tx.intake(TENANT, "alarm:bad-1") is None
        assert tx.alarm(TENANT, 'monitoring:["x1","disk"]') is None


def test_occurrences_are_shown_only_to_who_may_see_the_ticket(env: Env) -> None:
    opened = env.rt.receive_alarm(TENANT, "monitoring", alarm("files-1"))
    employee = Actor.of("someone", ["employee"], TENANT)

    with pytest.raises(NotFound):
        env.rt.occurrences(opened.ticket_id or "", employee)


# -- configuration --------------------------------------------------------------------------------


def headlines(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.headline() for d in diagnostics]


def test_the_example_config_fits_the_shipped_packs(env: Env) -> None:
    assert env.rt.check_intake(TENANT) == []


def test_config_errors_are_located() -> None:
    text = (
        "tenants:\n"  # 1
        "  default:\n"
        "    alarm:\n"
        "      nagios:\n"
        "        template: incident\n"  # 5
        "        role: service_desk_agent\n"
        "        key: []\n"
        "        window: 4 hours\n"
        "    web: {role: resident, captha: true}\n"
        "  acme:\n"  # 10
        "    email:\n"
        "      routes:\n"
        "        - {to: desk@acme.example, template: incident, unknown_senders: guest}\n"
    )
    with pytest.raises(IntakeConfigError) as caught:
        IntakeConfig.from_text(text, "intake.yaml")

    assert [h.split(": ", 1)[0] + " " + h.split("[", 1)[1].split("]")[0] for h in
            headlines(caught.value.diagnostics)] == [
        "intake.yaml:7:14 too-few-items",
        "intake.yaml:8:17 invalid-duration",
        "intake.yaml:9:27 unknown-key",
        "intake.yaml:13:11 guest-role",
    ]  # fmt: skip


def test_a_catch_all_route_before_others_is_located() -> None:
    text = (
        "tenants:\n"
        "  default:\n"
        "    email:\n"
        "      routes:\n"
        "        - {to: '*', template: incident}\n"
        "        - {to: desk@example.com, template: incident}\n"
    )
    with pytest.raises(IntakeConfigError) as caught:
        IntakeConfig.from_text(text, "intake.yaml")

    [problem] = caught.value.diagnostics
    assert problem.headline() == (
        "intake.yaml:5:16: error[unreachable-route]: this route takes any address, so the "
        "routes after it never match"
    )


def test_config_is_checked_against_the_packs_with_locations(env: Env) -> None:
    text = (
        "tenants:\n"  # 1
        "  default:\n"
        "    email:\n"
        "      routes:\n"
        "        - to: complaints@example.com\n"  # 5
        "          template: complaint\n"
        "          fields: {detail: body}\n"
        "          unknown_senders: guest\n"
        "          guest_role: resident\n"
        "          defaults: {category: gossip, staff_notes: x}\n"  # 10
        "    alarm:\n"
        "      nagios:\n"
        "        template: incident\n"
        "        role: employee\n"
        "        key: [host]\n"  # 15
        "        on_resolved: {transition: finish}\n"
        "    web: {role: resident, templates: [follow_up_call, nope]}\n"
    )
    config = IntakeConfig.from_text(text, "intake.yaml")

    found = headlines(check_against(config, TENANT, env.rt.current(TENANT)))

    assert found == [
        "intake.yaml:7:20: error[unknown-field]: 'complaint' has no field 'detail'",
        "intake.yaml:10:32: error[invalid-default]: category: must be one of noise, neighbour, "
        "renovation, cleaning, security, parking, pets, facilities, management_fee, "
        "staff_conduct, other",
        "intake.yaml:9:23: error[may-not-write]: role 'resident' may not set staff_notes on a "
        "new complaint ticket",
        "intake.yaml:14:15: error[not-staff]: role 'employee' is not staff: it cannot write the "
        "internal notes alarms leave on their tickets",
        "intake.yaml:16:35: error[unknown-transition]: workflow 'incident' has no transition "
        "'finish'",
        "intake.yaml:17:39: error[channel-not-accepted]: follow_up_call tickets cannot come in "
        "over 'web'",
        "intake.yaml:17:39: error[may-not-create]: role 'resident' may not create "
        "follow_up_call tickets",
        "intake.yaml:17:55: error[unknown-template]: no template 'nope'",
    ]
    assert check_against(config, "acme", env.rt.current(TENANT)) == []  # not configured


# -- assets ---------------------------------------------------------------------------------------


def test_bad_assets_are_refused_whole_with_locations(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text(
        "assets:\n"
        "  - {code: OK-1, type: lift, template: common_area}\n"
        "  - {code: F-1, type: forklift, template: equipment_breakdown}\n"
        "  - {code: X-1, type: press, template: equipment_breakdwn}\n"
        "  - {code: R-1, type: room, template: room_issue, fields: {room_no: '1300'}}\n"
    )
    before = env.rt.assets(TENANT)

    with pytest.raises(AssetError) as caught:
        env.rt.import_assets(TENANT, path)

    found = headlines(caught.value.diagnostics)
    assert [h.split(": error")[0] for h in found] == [
        f"{path}:3:23", f"{path}:4:40", f"{path}:5:69"
    ]  # fmt: skip
    assert "type 'forklift' fits no asset field of equipment_breakdown" in found[0]
    assert "did you mean 'equipment_breakdown'" in found[1]
    assert env.rt.assets(TENANT) == before


def test_assets_csv_with_an_unknown_column_is_refused(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "assets.csv"
    path.write_text("code,typ,template\nA-1,lift,common_area\n")

    with pytest.raises(AssetError, match="unknown column 'typ'") as caught:
        env.rt.import_assets(TENANT, path)

    assert caught.value.diagnostics[0].hint == "did you mean 'type'?"
