"""The runtime sandbox of message templates: what validation cannot see (values, loops
over data, filter arguments computed at run time) is stopped at render with a clear error,
in bounded time and memory."""

from __future__ import annotations

import time

import pytest

from runtime.render import MAX_OUTPUT, RenderError, render, render_value

TICKET = {"ticket": {"ref": "RP-0001", "title": "Fridge", "parts": [{"qty": 2}], "n": 10**6}}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ticket.__class__.__mro__ }}", "unsafe"),
        ("{{ ticket.ref.__class__.__base__.__subclasses__() }}", "unsafe"),
        ("{{ ''.__class__ }}", "unsafe"),
        ("{{ cycler.__init__.__globals__ }}", "unsafe"),
        ("{{ ticket.parts.append(1) }}", "unsafe"),
        ("{{ 9 ** 9 ** 9 }}", "** is limited"),
        ("{{ ticket.n ** 99 }}", "** is limited"),
        ("{{ 'x' * 1000000000 }}", "would build more than"),
        ("{{ 'x' * ticket.n }}", "would build more than"),
        ("{% for i in range(10000) %}x{% endfor %}", "range() is limited"),
        (
            "{% for a in range(1000) %}{% for b in range(1000) %}xx{% endfor %}{% endfor %}",
            "longer than",
        ),
        ("{{ 'x'|center(10000000000) }}", "center() is limited"),
        ("{{ 'x'|center(ticket.n * 1000) }}", "center() is limited"),
        ("{{ ('a' * 2000)|replace('a', 'bbbbbbbbbbb') }}", "replace() would build"),
        ("{{ '%99999999999s'|format(1) }}", "format filter is not available"),
        ("{{ range(10)|slice(100000000)|list }}", "slice() is limited"),
        ("{{ ticket.missing }}", "has no attribute 'missing'"),
        ("{% for x in %}", "does not compile"),
    ],
)
def test_stopped_with_a_clear_error(source: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render(source, TICKET)
    assert message in str(caught.value)
    assert time.monotonic() - started < 2  # bounded: nothing ran away first


def test_a_loop_over_time_is_cut_at_the_time_budget() -> None:
    # Cheap iterations, many of them: stopped by time or output, whichever comes first.
    loops = "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    source = loops + "{% endfor %}{% endfor %}{% endfor %}done"
    started = time.monotonic()
    with pytest.raises(RenderError, match="ran longer than"):
        render(source, TICKET)
    assert time.monotonic() - started < 2


def test_ordinary_templates_render() -> None:
    assert render("{{ ticket.ref }} {{ ticket.title|upper }}", TICKET) == "RP-0001 FRIDGE"
    assert render("{% for p in ticket.parts %}{{ p.qty }}{% endfor %}", TICKET) == "2"
    assert render("{{ 'x'|center(5) }}", TICKET) == "  x  "
    assert render("{{ 'a b'|replace(' ', '_') }}", TICKET) == "a_b"
    assert render("{{ 'hello world'|truncate(5) }}", TICKET) == "he..."
    assert len(render("{{ 'x' * 20000 }}", TICKET)) == MAX_OUTPUT


def test_a_lone_value_is_copied_not_rendered() -> None:
    assert render_value("{{ ticket.parts }}", TICKET) == [{"qty": 2}]
    assert render_value("parts: {{ ticket.parts|length }}", TICKET) == "parts: 1"
