"""The runtime's shortcuts give the answers the long way would: the rule index against a
full scan, shared rule environments against fresh ones, remembered SLA points, option
labels and `sla.*` values against computing them again, and the reads and writes a
create leaves out."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_fixtures import START, STORE_KINDS, counter_ids, database_url

from conftest import EXAMPLES
from dsl.sources import PackSource
from engine.blueprint import Blueprint, RuleBp, compile_pack, index_rules
from engine.load import load_pack, load_pack_path
from runtime import commands, notify, sla
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.records import NotFound
from runtime.store.memory import MemoryTx
from runtime.unit import Tracked

EXAMPLE_PACKS = sorted(p for p in EXAMPLES.iterdir() if (p / "pack.yaml").is_file())
AGENT = Actor.of("a1", ["agent"])


@functools.cache
def example(path: Path) -> Blueprint:
    result = load_pack_path(path)
    assert result.ok and result.pack is not None, path
    return compile_pack(result.pack)


# -- the rule index ---------------------------------------------------------------------------


def scanned(rules: list[RuleBp], event: str, template: str) -> tuple[RuleBp, ...]:
    """What dispatch would run without an index: every rule, filtered, in rule order."""
    found = [
        r for r in rules if r.event == event and (r.templates is None or template in r.templates)
    ]
    return tuple(sorted(found, key=lambda r: r.order))


def event_keys(bp: Blueprint) -> set[str]:
    """Every key a command, timer or rule of the pack can signal, and those its rules name."""
    keys = {"created", "updated", "transitioned", "commented", "assigned", "schedule"}
    keys |= {"sla.warning", "sla.breached", "event:never-declared"}
    keys |= {r.event for r in bp.rules_by_name.values()}
    for tpl in bp.templates.values():
        keys |= {f"{kind}:{s}" for s in tpl.workflow.states for kind in ("entered", "left")}
        keys |= {f"transitioned:{name}" for name in tpl.workflow.names()}
    return keys


@pytest.mark.parametrize("path", EXAMPLE_PACKS, ids=lambda p: p.name)
def test_rule_index_gives_every_example_rule_a_full_scan_would(path: Path) -> None:
    bp = example(path)
    rules = list(bp.rules_by_name.values())
    assert rules, "every example pack has rules"
    for template in bp.templates:
        for event in event_keys(bp):
            assert bp.rules_for(event, template) == scanned(rules, event, template), (
                event,
                template,
            )


_rule = st.builds(
    lambda event, priority, templates: (event, priority, templates),
    st.sampled_from(["created", "updated", "entered:a", "entered:b", "sla.breached"]),
    st.integers(-3, 3),
    st.none() | st.frozensets(st.sampled_from(["t1", "t2", "t3"]), min_size=1),
)


@settings(max_examples=200, deadline=None)
@given(specs=st.lists(_rule, max_size=12))
def test_rule_index_equals_a_full_scan_of_any_rule_set(specs: list[Any]) -> None:
    rules = [
        RuleBp(f"r{i}", priority, event, frozenset(), None, None, None, None, tpls, None, ())
        for i, (event, priority, tpls) in enumerate(specs)
    ]
    index = index_rules(rules, ["t1", "t2", "t3"])
    for event in ("created", "updated", "entered:a", "entered:b", "sla.breached"):
        for template in ("t1", "t2", "t3"):
            assert index.get((event, template), ()) == scanned(rules, event, template)


# -- environments shared by the rules of one signal -------------------------------------------

PACK = """\
pack: caches
title: {en: Caches}
timezone: UTC
roles: [agent]
templates:
  job:
    title: {en: Job}
    ref: "J-{seq:04}"
    workflow: flow
    fields:
      flag: {type: choice, options: [a, b, c]}
      owner: {type: text}
workflows:
  flow:
    initial: open
    states:
      open: {}
      done: {final: true}
    transitions:
      finish: {from: open, to: done, roles: [agent]}
permissions:
  agent: {see: all, create: "*", write: "*"}
rules:
RULES
"""


def runtime_with(rules: dict[str, str], tmp_path: Path) -> Runtime:
    body = "".join(f"  {name}:\n{spec}\n" for name, spec in rules.items())
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("RULES\n", body), encoding="utf-8")
    result = load_pack(PackSource(path, [path]))
    assert result.ok, result.diagnostics
    rt = Runtime.open((), database_url="memory", clock=ManualClock(START), new_id=counter_ids())
    rt.publish(result)
    return rt


def fired(rt: Runtime, ticket_id: str) -> list[str]:
    return [e.data["rule"] for e in rt.timeline(ticket_id, AGENT) if e.kind == "rule"]


def test_a_rule_reads_what_an_earlier_rule_of_the_same_event_changed(tmp_path: Path) -> None:
    # `probe` reads the ticket before `first` changes it; `second` must read it after.
    rules = {
        "probe": '    on: created\n    priority: 20\n    if: flag == "c"\n    do: [{set: {owner: probe}}]',
        "first": "    on: created\n    priority: 10\n    do: [{set: {flag: b}}]",
        "second": '    on: created\n    if: flag == "b"\n    do: [{set: {owner: second}}]',
    }
    rt = runtime_with(rules, tmp_path)
    t = rt.create("job", {}, AGENT)
    assert fired(rt, t.id) == ["first", "second"]
    assert t.fields == {"flag": "b", "owner": "second"}


def test_rules_whose_conditions_fail_share_one_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = {
        f"never_{n}": f'    on: created\n    if: flag == "{v}"\n    do: [{{set: {{owner: x}}}}]'
        for n, v in enumerate("abcab")
    }
    rt = runtime_with(rules, tmp_path)
    built: list[str] = []
    original = commands.ticket_env

    def counting(unit: Any, t: Tracked, actor: Actor | None) -> dict[str, Any]:
        built.append(t.row.id)
        return original(unit, t, actor)

    monkeypatch.setattr(commands, "ticket_env", counting)
    t = rt.create("job", {}, AGENT)
    assert fired(rt, t.id) == []
    assert built == [t.id]  # five conditions read, one environment built


# -- SLA --------------------------------------------------------------------------------------

IT_DESK = EXAMPLES / "it_service_desk"
EMPLOYEE = Actor.of("olivia", ["employee"])
LEAD = Actor.of("tl1", ["team_lead"])
INCIDENT = {
    "site": "new_york",
    "category": "network",
    "affected_service": "office_network",
    "impact": "medium",
    "urgency": "low",
    "description": "Laptops lose the Wi-Fi every few minutes.",
}


def test_remembered_sla_points_are_the_computed_ones_and_callers_own_their_list() -> None:
    bp = example(IT_DESK)
    for tpl in bp.templates.values():
        for policy in sla.policies_of(bp, tpl):
            for metric in policy.model.targets:
                for priority in ("P1", "P2", "P3", "P4", None, "P9"):
                    target = policy.target(metric, priority)
                    if target is None:
                        continue
                    expected = policy._points(metric, target)
                    got = policy.points(metric, target)
                    assert got == expected
                    got.clear()  # a caller may do what it likes with its list
                    assert policy.points(metric, target) == expected


def reference_env_values(t: Tracked, now: Any) -> dict[str, Any]:
    """`sla.env_values` as it was: every clock's view, then the one expressions read."""
    found = list(sla.views(t, now))
    if not found:
        return {}
    clock = next((c for c in found if c.metric == "resolution"), found[0])
    progress = clock.elapsed / clock.target if clock.target else 0.0
    return {
        "sla.remaining": clock.remaining,
        "sla.elapsed": clock.elapsed,
        "sla.progress": round(progress * 100, 1),
        "sla.due": clock.due,
        "sla.state": clock.state,
    }


@pytest.fixture
def it_desk() -> Iterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock(START)
    rt = Runtime.open([IT_DESK], database_url="memory", clock=clock, new_id=counter_ids())
    try:
        yield rt, clock
    finally:
        rt.close()


def tracked(rt: Runtime, ticket_id: str) -> tuple[Any, Tracked]:
    with rt.store.read() as tx:
        unit = rt._unit(tx, "default", rt.clock.now())
        return unit, unit.load(ticket_id)


def test_sla_values_in_expressions_are_those_of_the_clock_views(
    it_desk: tuple[Runtime, ManualClock],
) -> None:
    rt, clock = it_desk
    running = rt.create("incident", INCIDENT, EMPLOYEE, channel="api").id
    resolved = rt.create("incident", INCIDENT, EMPLOYEE, channel="api").id
    clock.advance(timedelta(hours=3))
    rt.transition(
        resolved,
        "resolve",
        LEAD,
        {"resolution_code": "config_change", "resolution_notes": "Fixed."},
    )
    for hours in (0, 7, 30, 200):
        clock.advance(timedelta(hours=hours))
        for ticket_id in (running, resolved):
            unit, t = tracked(rt, ticket_id)
            assert t.row.sla, "the incident has clocks"
            assert sla.env_values(t, unit.now) == reference_env_values(t, unit.now)
    unit, t = tracked(rt, running)
    t.row.sla = None
    assert sla.env_values(t, unit.now) == {} == reference_env_values(t, unit.now)


# -- notifications ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_PACKS, ids=lambda p: p.name)
def test_remembered_option_labels_label_values_as_before(path: Path) -> None:
    bp = example(path)
    for tpl in bp.templates.values():
        fields = tpl.model.fields
        values: dict[str, Any] = {}
        for name, spec in fields.items():
            options = getattr(spec, "options", None)
            if options:
                first = options[0] if isinstance(options[0], str) else options[0].value
                values[name] = [first, "unknown"] if spec.type == "multi_choice" else first
            else:
                values[name] = f"value of {name}"
        tables = notify.label_tables(fields)
        for locale in (*bp.model.locales, "xx"):
            fallback = bp.model.locales[0]
            assert notify.option_labels(fields, values, locale, fallback, tables) == (
                notify.option_labels(fields, values, locale, fallback)
            )


# -- reads and writes a create leaves out ---------------------------------------------------


def test_a_create_cancels_no_stored_timers_and_a_transition_still_does(
    it_desk: tuple[Runtime, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, _ = it_desk
    cancelled: list[tuple[str, str]] = []
    original = MemoryTx.cancel_timers

    def spy(self: MemoryTx, tenant_id: str, ticket_id: str, key: str) -> int:
        cancelled.append((ticket_id, key))
        return original(self, tenant_id, ticket_id, key)

    monkeypatch.setattr(MemoryTx, "cancel_timers", spy)
    t = rt.create("incident", INCIDENT, EMPLOYEE, channel="api")
    assert cancelled == []  # a new ticket has no stored timers
    with rt.store.read() as tx:
        keys = {x.key for x in tx.timers("default", t.id) if x.status == "waiting"}
    assert keys == {"sla:first_response", "sla:resolution"}  # the create did set clocks
    rt.transition(
        t.id, "resolve", LEAD, {"resolution_code": "config_change", "resolution_notes": "Fixed."}
    )
    assert (t.id, "sla:resolution") in cancelled  # the stored clock's timers go


def noting(opened: list[str], name: str, method: Callable[[], Any]) -> Callable[[], Any]:
    def noted() -> Any:
        opened.append(name)
        return method()

    return noted


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_create_is_one_transaction_and_reads_the_packs_in_it(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database_url(kind, tmp_path) as url:
        rt = Runtime.open([IT_DESK], database_url=url, clock=ManualClock(START))
        try:
            rt.create("incident", INCIDENT, EMPLOYEE)  # the directory is read on first use
            opened: list[str] = []
            for name in ("transaction", "read"):
                monkeypatch.setattr(rt.store, name, noting(opened, name, getattr(rt.store, name)))
            t = rt.create("incident", INCIDENT, EMPLOYEE, channel="api")
            assert opened == ["transaction"]
            assert t.ref == "INC0000002"
            with pytest.raises(NotFound, match="no template 'incidnet'"):
                rt.create("incidnet", INCIDENT, EMPLOYEE)
        finally:
            rt.close()
