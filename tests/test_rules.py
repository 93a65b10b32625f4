"""Rule ordering, chain depth and statically visible cycles."""

from __future__ import annotations

from typing import Any

import pytest
from runtime_fixtures import START, counter_ids

from dsl.sources import PackSource
from engine.load import load_pack
from runtime.actors import Actor
from runtime.api import Runtime
from runtime.clock import ManualClock
from runtime.rules import MAX_DEPTH, MAX_FIRINGS

AGENT = Actor.of("a1", ["agent"])

PACK = """\
pack: rules_demo
title: {en: Rules}
timezone: UTC
roles: [agent]
templates:
  job:
    title: {en: Job}
    workflow: flow
    fields:
      flag: {type: choice, options: [a, b, c]}
      owner: {type: text}
      trail: {type: text}
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

# Two rules of equal priority on the same event write the same field: the one that runs
# last wins, so the outcome shows the order. Higher priority runs first.
ORDERED_RULES = {
    "zeta": "    on: created\n    do: [{set: {owner: zeta}}]",
    "alpha": "    on: created\n    do: [{set: {owner: alpha}}]",
    "mid": "    on: created\n    priority: 5\n    do: [{set: {trail: mid}}]",
}


def pack_text(rules: dict[str, str]) -> str:
    body = "".join(f"  {name}:\n{spec}\n" for name, spec in rules.items())
    return PACK.replace("RULES\n", body)


def runtime_for(text: str, tmp_path: Any) -> Runtime:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    result = load_pack(PackSource(path, [path]))
    assert result.ok, result.diagnostics
    rt = Runtime.open((), database_url="memory", clock=ManualClock(START), new_id=counter_ids())
    rt.publish(result)
    return rt


def outcome(rt: Runtime) -> tuple[Any, list[Any]]:
    t = rt.create("job", {}, AGENT)
    rules = [e.data["rule"] for e in rt.timeline(t.id, AGENT) if e.kind == "rule"]
    return t.fields, rules


@pytest.mark.parametrize(
    "order", [["zeta", "alpha", "mid"], ["alpha", "mid", "zeta"], ["mid", "zeta", "alpha"]]
)
def test_declaration_order_does_not_matter(order: list[str], tmp_path: Any) -> None:
    rt = runtime_for(pack_text({name: ORDERED_RULES[name] for name in order}), tmp_path)
    fields, fired = outcome(rt)
    # priority 5 first, then equal priorities by name: alpha, zeta (zeta's value stays).
    assert fired == ["mid", "alpha", "zeta"]
    assert fields == {"owner": "zeta", "trail": "mid"}


def test_chain_stops_at_depth_limit(tmp_path: Any) -> None:
    # Each rule undoes the other: conditions keep the validator from seeing a sure loop,
    # so the runtime bound has to stop it.
    ping_pong = {
        "to_b": '    on: {updated: [flag]}\n    if: flag == "a"\n    do: [{set: {flag: b}}]',
        "to_a": '    on: {updated: [flag]}\n    if: flag == "b"\n    do: [{set: {flag: a}}]',
    }
    rt = runtime_for(pack_text(ping_pong), tmp_path)
    t = rt.create("job", {}, AGENT)
    t = rt.update(t.id, {"flag": "a"}, AGENT)
    kinds = [e.kind for e in rt.timeline(t.id, AGENT)]
    # Each change fires both rules' checks again, so the chain doubles at every level; the
    # per-command cap stops it before the depth bound would.
    assert kinds.count("rule") == MAX_FIRINGS
    assert kinds[-1] == "rule.limit"
    assert t.version == 2  # create, then one command: every change in one version


def test_linear_chain_stops_at_depth(tmp_path: Any) -> None:
    # Every job opens another job: one rule per level, so the depth bound stops it.
    spawn = {
        "spawn": '    on: created\n    if: flag != "c"\n    do: [{create_ticket: {template: job}}]'
    }
    rt = runtime_for(pack_text(spawn), tmp_path)
    rt.create("job", {}, AGENT)
    jobs = rt.query(AGENT, limit=100).items
    assert len(jobs) == 1 + MAX_DEPTH
    last = rt.timeline(jobs[-1].id, AGENT)
    assert last[-1].kind == "rule.depth_limit"


def test_unconditional_cycle_is_refused_at_validation(tmp_path: Any) -> None:
    loop = {
        "one": "    on: {updated: [flag]}\n    do: [{set: {owner: x}}]",
        "two": "    on: {updated: [owner]}\n    do: [{set: {flag: a}}]",
    }
    path = tmp_path / "pack.yaml"
    path.write_text(pack_text(loop), encoding="utf-8")
    result = load_pack(PackSource(path, [path]))
    errors = [d for d in result.diagnostics if d.is_error]
    assert [(d.code, d.message) for d in errors] == [
        ("rule-cycle", "rules set each other off without end: one → two → one")
    ]
    assert errors[0].span.line == 24


def test_delayed_rule_is_not_a_cycle(tmp_path: Any) -> None:
    loop = {
        "one": "    on: {updated: [flag]}\n    do: [{set: {owner: x}}]",
        "two": "    on: {updated: [owner]}\n    do: [{schedule: {event: again, after: 1h}}]",
        "three": "    on: {event: again}\n    do: [{set: {flag: a}}]",
    }
    path = tmp_path / "pack.yaml"
    path.write_text(pack_text(loop), encoding="utf-8")
    assert load_pack(PackSource(path, [path])).ok


def test_a_refused_set_leaves_nothing_in_the_search_text(tmp_path: Any) -> None:
    # Setting flag to b makes `reason` required, so the rule's set is refused: the ticket
    # must keep neither the values nor text built from them (searching would find it).
    text = pack_text({"tag": "    on: created\n    do: [{set: {trail: hushword, flag: b}}]"})
    text = text.replace(
        "      trail: {type: text}\n",
        "      trail: {type: text}\n      reason: {type: text, required_if: 'flag == \"b\"'}\n",
    )
    rt = runtime_for(text, tmp_path)
    t = rt.create("job", {}, AGENT)
    assert "trail" not in t.fields
    assert [e.kind for e in rt.timeline(t.id, AGENT)].count("rule.failed") == 1
    assert rt.query(AGENT, text="hushword").items == []
    with rt.store.read() as tx:
        row = tx.get_ticket("default", t.id)
    assert row is not None and "hushword" not in row.search_text
