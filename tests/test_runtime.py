"""The runtime contract: the same tests on the in-memory store, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from runtime_fixtures import SERVICE, STORE_KINDS, make_runtime

from engine.load import load_pack_path
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.audit import verify
from runtime.clock import ManualClock
from runtime.records import (
    Conflict,
    InvalidCommand,
    InvalidFields,
    NotFound,
    PermissionDenied,
    PublishRefused,
    TransitionUnavailable,
)

CUSTOMER = Actor.of("c1", ["customer"])
OTHER_CUSTOMER = Actor.of("c2", ["customer"])
AGENT = Actor.of("a1", ["agent"])
DISPATCHER = Actor.of("d1", ["dispatcher"])
ENGINEER = Actor.of("e1", ["engineer"], teams=["field"])
OTHER_ENGINEER = Actor.of("e2", ["engineer"])
MANAGER = Actor.of("m1", ["manager"], attributes={"sites": ["S001"]})
WAREHOUSE = Actor.of("w1", ["warehouse"])
SIGNATURE = {"image": "data:image/png;base64,AAAA", "signed_by": "c1"}


@pytest.fixture(params=STORE_KINDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Runtime, ManualClock]]:
    with make_runtime(request.param, tmp_path) as pair:
        yield pair


def new_repair(rt: Runtime, **fields: Any) -> Any:
    values = {"site": "S001", **fields}
    return rt.create("repair", values, CUSTOMER, channel="web", title="Fridge warm")


def to_in_progress(rt: Runtime, **fields: Any) -> Any:
    t = new_repair(rt)
    rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": ENGINEER.id})
    t = rt.transition(t.id, "start", ENGINEER)
    return rt.update(t.id, fields, ENGINEER) if fields else t


# -- lifecycle ----------------------------------------------------------------------------


def test_full_lifecycle(env: tuple[Runtime, ManualClock]) -> None:
    rt, clock = env
    t = new_repair(rt)
    assert (t.ref, t.state, t.version, t.requester) == ("RP-2026-0001", "new", 1, "c1")
    assert t.fields["priority"] == "P3" and t.fields["parts_approved"] is False
    t = rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": "e1"})
    assert (t.state, t.assignee, t.version) == ("assigned", "e1", 2)
    t = rt.transition(t.id, "start", ENGINEER)
    clock.advance(timedelta(hours=2))
    t = rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1.5})
    assert t.state == "resolved" and t.fields["labour"] == 60.0
    t = rt.transition(t.id, "confirm", CUSTOMER, fields={"rating": 5})
    assert (t.state, t.closed, t.fields["rating"]) == ("closed", True, 5)
    kinds = [e.kind for e in rt.timeline(t.id, AGENT)]
    assert kinds == [
        "created",
        "transitioned",
        "transitioned",
        "transitioned",
        "rule.delayed",
        "transitioned",
    ]
    assert verify(rt.store, "default") == []


def test_second_ticket_gets_next_reference(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    assert [new_repair(rt).ref for _ in range(3)] == [
        "RP-2026-0001",
        "RP-2026-0002",
        "RP-2026-0003",
    ]


# -- values -------------------------------------------------------------------------------


def test_every_bad_field_is_named(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(InvalidFields) as err:
        rt.create("repair", {"site": "X1", "priority": "P9", "parts": [{"qty": 0}]}, AGENT)
    fields = {p.field for p in err.value.problems}
    assert {"site", "priority"} <= fields
    assert any(f.startswith("parts[0]") for f in fields)
    assert query_all(rt, AGENT) == []


def test_missing_required_field(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(InvalidFields) as err:
        rt.create("repair", {}, CUSTOMER)
    assert [(p.field, p.code) for p in err.value.problems] == [("site", "required")]


def test_unknown_field_gets_a_hint(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(InvalidFields) as err:
        rt.create("repair", {"site": "S001", "categroy": "hvac"}, CUSTOMER)
    assert "did you mean 'category'" in err.value.problems[0].message


def test_unknown_template_gets_a_hint(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(NotFound, match="did you mean 'repair'"):
        rt.create("repiar", {"site": "S001"}, CUSTOMER)


def test_channel_not_offered(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(InvalidCommand, match="cannot come in over 'email'"):
        rt.create("repair", {"site": "S001"}, CUSTOMER, channel="email")


def test_required_in_state_and_validation_message(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt)
    with pytest.raises(InvalidFields) as err:
        rt.transition(t.id, "resolve", ENGINEER, fields={"hours": 1})
    assert [(p.field, p.code) for p in err.value.problems] == [("signature", "required")]
    with pytest.raises(InvalidFields, match="Book the hours you worked"):
        rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 0})
    assert rt.get(t.id, AGENT).state == "in_progress"
    assert rt.get(t.id, AGENT).fields.get("hours") is None


def test_comment_required(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt)
    rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1})
    with pytest.raises(InvalidFields, match="needs a comment"):
        rt.transition(t.id, "reopen", CUSTOMER)


# -- permissions --------------------------------------------------------------------------


def test_transition_needs_role(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    with pytest.raises(PermissionDenied, match="may be taken by dispatcher; you act as customer"):
        rt.transition(t.id, "assign", CUSTOMER, fields={"assignee": "e1"})
    assert rt.get(t.id, CUSTOMER).version == 1


def test_only_assignee(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": "e1"})
    # e2 is no assignee and sees neither assigned nor team tickets: the ticket is not there.
    with pytest.raises(NotFound):
        rt.transition(t.id, "start", OTHER_ENGINEER)
    team_mate = Actor.of("e3", ["engineer"], teams=["field"])
    rt.assign(t.id, "team:field", DISPATCHER)
    with pytest.raises(PermissionDenied, match="only the ticket's assignee"):
        rt.transition(t.id, "start", team_mate)


def test_transition_from_wrong_state(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    with pytest.raises(
        TransitionUnavailable, match="cannot be taken from state 'new'; from here: assign, cancel"
    ):
        rt.transition(t.id, "start", DISPATCHER)
    with pytest.raises(TransitionUnavailable, match="did you mean 'assign'"):
        rt.transition(t.id, "asign", DISPATCHER)


def test_hidden_fields_absent_for_customer(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt)
    rt.update(t.id, {"notes": "compressor noisy"}, AGENT)
    mine = rt.get(t.id, CUSTOMER)
    assert "notes" not in mine.fields and "cost" not in mine.fields
    assert rt.get(t.id, AGENT).fields["notes"] == "compressor noisy"
    for entry in rt.timeline(t.id, CUSTOMER):
        assert "notes" not in entry.data.get("changes", {})


def test_customer_may_not_write_hidden_field(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(PermissionDenied, match="cost"):
        rt.create("repair", {"site": "S001", "cost": 5}, CUSTOMER)
    t = new_repair(rt)
    with pytest.raises(
        PermissionDenied, match="you may not change parts_approved of repair tickets in state 'new'"
    ):
        rt.update(t.id, {"parts_approved": True}, CUSTOMER)


def test_state_override_removes_write(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": "e1"})
    rt.update(t.id, {"notes": "on my way"}, ENGINEER)
    rt.transition(t.id, "cancel", Actor.of("m2", ["manager"], attributes={"sites": ["S001"]}))
    with pytest.raises(PermissionDenied, match="notes"):
        rt.update(t.id, {"notes": "late edit"}, ENGINEER)


def test_visibility_scopes(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    mine = new_repair(rt)
    theirs = rt.create("repair", {"site": "S002"}, OTHER_CUSTOMER)
    assert [t.id for t in query_all(rt, CUSTOMER)] == [mine.id]
    with pytest.raises(NotFound):
        rt.get(theirs.id, CUSTOMER)
    # The manager sees tickets of its sites only (a condition scope).
    assert [t.id for t in query_all(rt, MANAGER)] == [mine.id]
    with pytest.raises(NotFound):
        rt.get(theirs.id, MANAGER)
    assert {t.id for t in query_all(rt, AGENT)} == {mine.id, theirs.id}


def test_internal_notes_are_staff_only(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    rt.comment(t.id, "customer sounds upset", AGENT, internal=True)
    rt.comment(t.id, "we are on it @e1", AGENT)
    with pytest.raises(PermissionDenied, match="internal"):
        rt.comment(t.id, "secret", CUSTOMER, internal=True)
    seen = [e.data["body"] for e in rt.timeline(t.id, CUSTOMER) if e.kind == "commented"]
    assert seen == ["we are on it @e1"]
    staff = [e.data for e in rt.timeline(t.id, AGENT) if e.kind == "commented"]
    assert [d["body"] for d in staff] == ["customer sounds upset", "we are on it @e1"]
    assert staff[1]["mentions"] == ["e1"]


def test_other_tenant_sees_nothing(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    rt.publish(SERVICE, tenant="acme")
    outsider = Actor.of("a1", ["agent"], tenant="acme")
    with pytest.raises(NotFound):
        rt.get(t.id, outsider)
    with pytest.raises(NotFound):
        rt.transition(
            t.id, "assign", Actor.of("d1", ["dispatcher"], tenant="acme"), fields={"assignee": "e1"}
        )
    with pytest.raises(NotFound):
        rt.timeline(t.id, outsider)
    assert query_all(rt, outsider) == []
    assert (
        rt.create("repair", {"site": "S001"}, Actor.of("c1", ["customer"], tenant="acme")).ref
        == "RP-2026-0001"
    )


# -- rules --------------------------------------------------------------------------------


def test_rule_notifies_on_p1(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    rt.put_people("default", [{"id": "m1", "roles": ["manager"], "email": "m1@example.com"},
                              {"id": "m2", "roles": ["manager"], "active": False}])  # fmt: skip
    t = new_repair(rt, priority="P1")
    new_repair(rt, priority="P2")
    with rt.store.read() as tx:
        outbox = tx.outbox("default")
    # One row per active manager and channel; the inactive one is left out.
    assert [
        (o.kind, o.ticket_id, o.payload["message"], o.recipient, o.channel) for o in outbox
    ] == [
        ("notify", t.id, "p1", "m1", "sms"),
        ("notify", t.id, "p1", "m1", "email"),
    ]
    assert outbox[1].payload["to"] == {"id": "m1", "email": "m1@example.com"}


def test_entering_a_state_creates_linked_ticket(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt)
    parts = [{"part_no": "C-220", "qty": 2}]
    rt.transition(t.id, "need_parts", ENGINEER, fields={"parts": parts})
    issues = query_all(rt, WAREHOUSE, templates=["stock_issue"])
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.ref, issue.parent_id, issue.link) == ("SI-0001", t.id, "child")
    assert issue.fields == {"parts": parts, "for_ticket": t.ref}
    # The warehouse sees the repair now that it waits for parts, and can move it on.
    assert rt.transition(t.id, "parts_in", WAREHOUSE).state == "in_progress"
    with pytest.raises(NotFound):
        rt.get(t.id, WAREHOUSE)


def test_guard_hides_transition_until_parts_approved(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt, parts=[{"part_no": "C-220", "qty": 1}])
    names = [a.name for a in rt.available_transitions(t.id, ENGINEER)]
    assert names == ["need_parts"]
    with pytest.raises(TransitionUnavailable, match="len\\(parts\\) == 0 or parts_approved"):
        rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1})
    rt.update(t.id, {"parts_approved": True}, MANAGER)
    avail = {a.name: a for a in rt.available_transitions(t.id, ENGINEER)}
    assert avail["resolve"].allowed
    assert not rt.available_transitions(t.id, CUSTOMER)[0].allowed


def test_reopen_raises_priority_and_notes_it(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt)
    rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1})
    t = rt.transition(t.id, "reopen", CUSTOMER, comment="still warm")
    assert (t.state, t.fields["priority"]) == ("in_progress", "P2")
    notes = [e for e in rt.timeline(t.id, AGENT) if e.kind == "commented"]
    assert notes[0].data == {"body": "Reopened by the customer", "internal": True, "mentions": []}
    assert not [e for e in rt.timeline(t.id, CUSTOMER) if e.kind == "commented"]


def test_delayed_rule_fires_once_and_is_void_after_leaving(
    env: tuple[Runtime, ManualClock],
) -> None:
    rt, clock = env
    t = to_in_progress(rt)
    rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1})
    clock.advance(timedelta(hours=71))
    assert rt.run_due() == 0
    clock.advance(timedelta(hours=1))
    assert rt.run_due() == 1
    assert rt.get(t.id, AGENT).fields["notes"] == "closed automatically after 72h"
    assert rt.run_due() == 0
    clock.advance(timedelta(hours=1))
    assert rt.run_due() == 1
    with rt.store.read() as tx:
        assert [o.payload["message"] for o in tx.outbox("default")] == ["survey"]
    # A second ticket reopened within the 72 hours: its timer fires and does nothing.
    u = to_in_progress(rt)
    rt.transition(u.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1})
    rt.transition(u.id, "reopen", AGENT, comment="not fixed")
    clock.advance(timedelta(hours=73))
    version = rt.get(u.id, AGENT).version
    rt.run_due()
    assert rt.get(u.id, AGENT).version == version


def test_failed_rule_action_is_recorded_not_fatal(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = to_in_progress(rt)
    rt.transition(t.id, "resolve", ENGINEER, fields={"signature": SIGNATURE, "hours": 1})
    rt.transition(t.id, "reopen", AGENT, comment="again")
    rt.transition(t.id, "resolve", ENGINEER)
    t = rt.transition(t.id, "reopen", AGENT, comment="and again")
    # P3 → P2 → P1: raising stops at the top without failing.
    assert t.fields["priority"] == "P1"


# -- concurrency, idempotency, atomicity --------------------------------------------------


def test_stale_version_is_a_conflict(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    rt.update(t.id, {"priority": "P2"}, AGENT, expected_version=1)
    with pytest.raises(Conflict, match="version 2, not 1"):
        rt.update(t.id, {"priority": "P1"}, AGENT, expected_version=1)
    assert rt.get(t.id, AGENT).fields["priority"] == "P2"


def test_idempotency_key_creates_one_ticket(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    first = rt.create("repair", {"site": "S001"}, CUSTOMER, idempotency_key="mail-42")
    again = rt.create("repair", {"site": "S001"}, CUSTOMER, idempotency_key="mail-42")
    assert again.id == first.id
    assert len(query_all(rt, AGENT)) == 1


def test_failure_mid_command_leaves_nothing(
    env: tuple[Runtime, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, _ = env
    t = new_repair(rt, priority="P1")
    before = snapshot_db(rt, t.id)
    real = rt.store.transaction

    class Boom(Exception):
        pass

    def failing_transaction() -> Any:
        cm = real()

        class Wrapped:
            def __enter__(self) -> Any:
                tx = cm.__enter__()

                def add_audit(*args: Any, **kw: Any) -> Any:
                    raise Boom("injected after the ticket row, before the audit row")

                tx_proxy = _Proxy(tx, add_audit=add_audit)
                return tx_proxy

            def __exit__(self, *exc: Any) -> Any:
                return cm.__exit__(*exc)

        return Wrapped()

    monkeypatch.setattr(rt.store, "transaction", failing_transaction)
    with pytest.raises(Boom):
        rt.transition(t.id, "assign", DISPATCHER, fields={"assignee": "e1"})
    monkeypatch.undo()
    assert snapshot_db(rt, t.id) == before


class _Proxy:
    def __init__(self, target: Any, **overrides: Any) -> None:
        self._target = target
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._target, name)


def snapshot_db(rt: Runtime, ticket_id: str) -> Any:
    with rt.store.read() as tx:
        row = tx.get_ticket("default", ticket_id)
        return (
            row,
            tx.events("default", ticket_id),
            tx.audit("default"),
            tx.outbox("default"),
            tx.timers("default"),
        )


# -- bulk, queries ------------------------------------------------------------------------


def test_bulk_transition_reports_each_item(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    a, b = new_repair(rt), new_repair(rt)
    rt.transition(b.id, "assign", DISPATCHER, fields={"assignee": "e1"})
    results = rt.bulk_assign([a.id, b.id, "nope"], "e2", DISPATCHER)
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[2].error, NotFound)
    results = rt.bulk_transition([a.id, b.id], "assign", DISPATCHER)
    assert [r.ok for r in results] == [True, False]
    assert isinstance(results[1].error, TransitionUnavailable)


def test_bulk_create(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    results = rt.bulk_create(
        [{"template": "repair", "fields": {"site": "S001"}}, {"template": "repair", "fields": {}}],
        AGENT,
    )
    assert [r.ok for r in results] == [True, False]
    assert isinstance(results[1].error, InvalidFields)


def test_query_filters_and_pages(env: tuple[Runtime, ManualClock]) -> None:
    rt, clock = env
    made = []
    for i in range(7):
        made.append(rt.create("repair", {"site": f"S00{i}", "notes": f"Walk-in fridge {i}"}, AGENT))
        clock.advance(timedelta(minutes=1))
    rt.transition(made[2].id, "assign", DISPATCHER, fields={"assignee": "e1"})
    assert [t.id for t in query_all(rt, AGENT, states=["assigned"])] == [made[2].id]
    assert [t.id for t in query_all(rt, AGENT, assignee="e1")] == [made[2].id]
    assert [t.ref for t in query_all(rt, AGENT, text="s003")] == [made[3].ref]
    assert [t.ref for t in query_all(rt, AGENT, text="FRIDGE 5")] == [made[5].ref]
    page = rt.query(AGENT, limit=3)
    seen = [t.id for t in page.items]
    while page.cursor:
        page = rt.query(AGENT, limit=3, cursor=page.cursor)
        seen += [t.id for t in page.items]
    assert seen == [t.id for t in made]
    with pytest.raises(InvalidCommand, match="cursor"):
        rt.query(AGENT, cursor="garbage!")


def query_all(rt: Runtime, actor: Actor, **filters: Any) -> list[Any]:
    return rt.query(actor, limit=500, **filters).items


# -- pack versions ------------------------------------------------------------------------


def test_publishing_same_pack_twice_is_one_version(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    assert rt.publish(SERVICE).version == 1
    assert [v.version for v in rt.versions("default", "service")] == [1]


def _variant(change: Any) -> Any:
    pack = load_pack_path(SERVICE).pack
    assert pack is not None
    data = pack.model_dump(mode="json", by_alias=True, exclude_unset=True)
    change(data)
    return type(pack).model_validate(data)


def _drop_waiting_parts(data: dict[str, Any]) -> None:
    wf = data["workflows"]["repair"]
    del wf["states"]["waiting_parts"]
    del wf["transitions"]["need_parts"]
    del wf["transitions"]["parts_in"]
    data["rules"]["parts_request"]["on"] = {"entered": "in_progress"}


def test_removing_a_state_in_use_needs_a_map(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    waiting = to_in_progress(rt)
    rt.transition(
        waiting.id, "need_parts", ENGINEER, fields={"parts": [{"part_no": "X", "qty": 1}]}
    )
    other = new_repair(rt)
    smaller = _variant(_drop_waiting_parts)
    with pytest.raises(
        PublishRefused, match="1 open repair ticket\\(s\\) in state 'waiting_parts'"
    ):
        rt.publish(smaller)
    assert [v.version for v in rt.versions("default", "service")] == [1]
    row = rt.publish(smaller, migrate={"waiting_parts": "in_progress"})
    assert row.version == 2
    moved = rt.get(waiting.id, AGENT)
    assert (moved.state, moved.pack_version) == ("in_progress", 2)
    assert rt.get(other.id, AGENT).pack_version == 2
    assert rt.timeline(waiting.id, AGENT)[-1].kind == "migrated"


def test_running_tickets_keep_their_version(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    old = new_repair(rt)

    def extra_state(data: dict[str, Any]) -> None:
        data["workflows"]["repair"]["states"]["on_hold"] = {}
        data["workflows"]["repair"]["transitions"]["hold"] = {
            "from": "new",
            "to": "on_hold",
            "roles": ["agent"],
        }
        data["workflows"]["repair"]["transitions"]["unhold"] = {
            "from": "on_hold",
            "to": "new",
            "roles": ["agent"],
        }

    rt.publish(_variant(extra_state))
    new = new_repair(rt)
    assert (old.pack_version, rt.get(new.id, AGENT).pack_version) == (1, 2)
    with pytest.raises(TransitionUnavailable):
        rt.transition(old.id, "hold", AGENT)
    assert rt.transition(new.id, "hold", AGENT).state == "on_hold"


def test_audit_chain_covers_commands_and_publishes(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = new_repair(rt)
    rt.update(t.id, {"priority": "P1"}, AGENT)
    with rt.store.read() as tx:
        rows = tx.audit("default")
    assert [(r.action, r.actor) for r in rows] == [
        ("publish", "system"),
        ("create", "c1"),
        ("update", "a1"),
    ]
    assert rows[2].before == {"priority": "P3"} and rows[2].after == {"priority": "P1"}
    assert verify(rt.store, "default") == []


def test_form_schema_follows_the_role(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    mine = rt.form_schema("repair", CUSTOMER)
    assert "cost" not in mine["properties"] and "notes" not in mine["properties"]
    assert mine["required"] == ["site"]
    assert mine["properties"]["site"].get("readOnly") is not True
    assert mine["properties"]["parts_approved"]["readOnly"] is True
    resolved = rt.form_schema("repair", ENGINEER, state="resolved")
    assert "signature" in resolved["required"] and "cost" in resolved["properties"]
    with pytest.raises(InvalidCommand, match="no state 'limbo'"):
        rt.form_schema("repair", ENGINEER, state="limbo")


def test_a_user_called_system_is_an_ordinary_user(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    t = rt.create("repair", {"site": "S002"}, OTHER_CUSTOMER)
    impostor = Actor.of("system", ["customer"])
    with pytest.raises(NotFound):
        rt.get(t.id, impostor)
    # An agent whose id looks like a rule's role actor still needs the transition's role.
    with pytest.raises(PermissionDenied, match="may be taken by dispatcher"):
        rt.transition(
            t.id, "assign", Actor.of("system:dispatcher", ["agent"]), fields={"assignee": "e1"}
        )


def test_nul_characters_are_refused_everywhere(env: tuple[Runtime, ManualClock]) -> None:
    rt, _ = env
    with pytest.raises(InvalidFields) as err:
        rt.create("repair", {"site": "S001", "notes": "a\x00b"}, AGENT)
    assert [(p.field, p.code) for p in err.value.problems] == [("notes", "invalid-character")]


def test_now_in_conditions_is_the_packs_local_time() -> None:
    """At 01:00 in Shanghai it is still yesterday in UTC: conditions read `now` in the
    pack's time zone, so a date compares with the local date (the same instant)."""
    from datetime import UTC, datetime

    from engine.blueprint import compile_pack
    from runtime.tickets import build_env

    pack = load_pack_path(SERVICE).pack
    assert pack is not None
    tpl = compile_pack(pack.model_copy(update={"timezone": "Asia/Shanghai"}), 1).templates["repair"]
    rt = Runtime.open([SERVICE], database_url="memory")
    try:
        t = rt.create("repair", {"site": "S001"}, CUSTOMER)
        with rt.store.read() as tx:
            ticket = tx.get_ticket("default", t.id)
    finally:
        rt.close()
    assert ticket is not None
    at = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    now = build_env(ticket, tpl, None, at)["now"]
    assert (now.date().isoformat(), now) == ("2026-03-02", at)
