"""Expression cost: parse + check, and evaluation by the compiled closure, the simpleeval
reference and a hand-written Python lambda, measured in the same run.

Run: .venv/bin/python benchmarks/bench_expressions.py
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsl.expressions import parse_expression
from engine.expr_check import check_expression
from engine.expr_eval import ReferenceProgram, compile_expression
from engine.expr_types import (
    BOOLEAN,
    DATETIME,
    NUMBER,
    TEXT,
    Scope,
    actor_attributes,
    choice,
    list_of,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SCOPE = Scope(
    {
        "priority": choice(["P1", "P2", "P3"]),
        "qty": NUMBER,
        "approved": BOOLEAN,
        "parts": list_of(TEXT),
        "store_no": TEXT,
        "reported_at": DATETIME,
    },
    frozenset({"new", "in_progress", "resolved"}),
    actor_attributes(["agent"], ["eng"], {"stores": list_of(TEXT)}),
)
ENV: dict[str, Any] = {
    "priority": "P1",
    "qty": 7,
    "approved": False,
    "parts": ["a"],
    "store_no": "S0001",
    "reported_at": NOW - timedelta(hours=3),
    "now": NOW,
    "state": "in_progress",
    "actor.stores": ["S0001", "S0002"],
}

GUARDS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    (
        'priority == "P1" and qty > 5 and not approved',
        lambda t: t["priority"] == "P1" and t["qty"] > 5 and not t["approved"],
    ),
    ("len(parts) == 0 or approved", lambda t: len(t["parts"]) == 0 or t["approved"]),
    (
        'state in ["in_progress", "resolved"] and store_no in actor.stores',
        lambda t: t["state"] in ["in_progress", "resolved"] and t["store_no"] in t["actor.stores"],
    ),
    (
        "hours_since(reported_at) > 2",
        lambda t: (t["now"] - t["reported_at"]).total_seconds() / 3600 > 2,
    ),
]


def per_call_us(func: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


def _parse_and_check(text: str) -> None:
    check_expression(parse_expression(text), SCOPE)


def main() -> None:
    print(
        f"{'guard':<62}{'parse+check':>12}{'closure':>9}{'simpleeval':>11}{'lambda':>8}"
        f"{'closure/λ':>10}{'simpleeval/λ':>13}"
    )
    for text, plain in GUARDS:
        parse_us = per_call_us(partial(_parse_and_check, text), 2000)
        tree = parse_expression(text)
        check_expression(tree, SCOPE)
        fast = compile_expression(tree, frozenset(SCOPE.fields))
        ref = ReferenceProgram(tree, frozenset(SCOPE.fields))
        assert fast(ENV) == ref.evaluate(ENV) == plain(ENV)
        closure_us = per_call_us(partial(fast, ENV), 200_000)
        reference_us = per_call_us(partial(ref.evaluate, ENV), 20_000)
        lambda_us = per_call_us(partial(plain, ENV), 200_000)
        print(
            f"{text[:60]:<62}{parse_us:>12.1f}{closure_us:>9.2f}{reference_us:>11.1f}"
            f"{lambda_us:>8.2f}{closure_us / lambda_us:>10.1f}{reference_us / lambda_us:>13.0f}"
        )


if __name__ == "__main__":
    main()
