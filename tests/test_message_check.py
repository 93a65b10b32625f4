"""Message templates are checked when a pack is validated (engine/message_check.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import Environment, nodes

from conftest import MINIMAL
from engine.load import load_pack_path
from engine.message_check import MAX_TEMPLATE, NO_TICKET, TicketScope, template_problems

REPAIR = TicketScope(frozenset({"store_no", "priority", "parts"}), "template 'repair'")


def codes(text: str, scope: TicketScope = REPAIR) -> list[str]:
    return [p.code for p in template_problems(text, scope)]


@pytest.mark.parametrize(
    "text",
    [
        "P1 at store {{ ticket.store_no }}: {{ ticket.title }} ({{ ticket.ref }})",
        "no placeholders at all",
        "{% for i in range(3) %}{{ i }}/{{ loop.length }} {% endfor %}",
        "{% set who = ticket.assignee|default('nobody') %}{{ who|upper }}",
        "{{ ticket.title|upper }} {{ ticket.team|default('-') }} {{ ticket.parts|join(', ') }}",
        "{% for row in ticket.parts %}{{ row.part_no }} x{{ row.qty }}{% endfor %}",
        "{{ ticket.parts|map(attribute='qty')|sum }} {{ ticket.parts|sort(attribute='qty') }}",
        "{% for a, b in ticket.parts|dictsort %}{{ a }}={{ b }}{% endfor %}",
        "{{ ticket.store_no|replace('_', ' ') }} {{ ticket.parts|join('_') }}",
        "{% if ticket.priority == 'P1' %}urgent{% elif ticket.state %}ok{% else %}-{% endif %}",
        "{% if ticket.priority %}{% set note = 'x' %}{% endif %}{{ note }}",
        "{% with total = ticket.parts|length %}{{ total }}{% endwith %}",
        "{{ ticket['store_no'] }} {{ ticket.parts[0].qty }} {{ ticket.parts[1:] }}",
        "Dear {{ recipient.name }} ({{ recipient.locale }}), {{ actor.name }} wrote",
        "{{ ticket.store_no if ticket.store_no is defined else 'n/a' }}",
        "{% raw %}{{ not parsed }}{% endraw %}",
        "{{ 9**(9**7) }}",  # bounded at run time; never folded here
        "{% filter upper %}{{ ticket.ref }}{% endfilter %}",
        "{% set body %}{{ ticket.ref }}{% endset %}{{ body }}",
    ],
)
def test_allowed(text: str) -> None:
    assert template_problems(text, REPAIR) == []


@pytest.mark.parametrize(
    "text",
    [
        "{{ ticket.__class__.__mro__ }}",
        "{{ ticket['__class__'] }}",
        "{{ x['__globals__'] }}",
        "{{ ''|attr('__class__') }}",
        "{{ ticket|attr('ref') }}",
        "{{ ticket.parts|map('attr', '__class__')|list }}",
        "{{ ticket.parts|map(attribute='__class__')|list }}",
        "{{ ticket.parts|selectattr('__class__') }}",
        "{{ ticket.parts|sum(attribute='qty.__class__') }}",
        "{{ ticket.parts|map(*ticket.parts) }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% call f() %}x{% endcall %}",
        "{% include 'footer.txt' %}",
        "{% import 'macros.txt' as m %}",
        "{% from 'macros.txt' import m %}",
        "{% extends 'base.txt' %}",
        "{% block body %}x{% endblock %}",
        "{{ self }}",
        "{{ cycler('a', 'b') }}",
        "{{ joiner() }}",
        "{% set ns = namespace(x=1) %}",
        "{{ lipsum() }}",
        "{{ config }}",
        "{{ request }}",
        "{{ dict(a=1) }}",
        "{{ _private }}",
        "{{ ticket.title.upper() }}",
        "{{ '{0.__class__}'.format(ticket) }}",
        "{% for x in ticket.parts recursive %}{{ loop(x) }}{% endfor %}",
        "{% for x in ticket.parts %}{% set loop.x = 1 %}{% endfor %}",
        "{{ '%.2f'|format(ticket.cost) }}",
    ],
)
def test_refused_as_unsafe(text: str) -> None:
    assert "template-unsafe" in codes(text)


def test_unsafe_message_says_why() -> None:
    (problem,) = template_problems("{{ ticket.__class__.__mro__ }}", REPAIR)
    assert problem.message.startswith("'ticket.__class__' is not allowed")
    assert "message templates may read ticket fields only" in problem.message


def test_a_self_calling_macro_is_reported_once() -> None:
    assert codes("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}") == ["template-unsafe"]


def test_unknown_field_with_did_you_mean() -> None:
    (problem,) = template_problems("{{ ticket.store_numer }}", REPAIR)
    assert problem.code == "unknown-field"
    assert (
        problem.message == "ticket.store_numer: 'store_numer' is not a field of template 'repair'"
    )
    assert problem.hint == "did you mean 'store_no'?"


def test_built_in_ticket_attributes_are_known() -> None:
    text = " ".join(
        f"{{{{ ticket.{a} }}}}"
        for a in ("id", "ref", "title", "state", "template", "requester", "assignee", "team")
    )
    assert template_problems(text + " {{ ticket.channel }}", REPAIR) == []
    assert codes("{{ ticket.description }}") == ["unknown-field"]  # not in the render context


def test_unknown_recipient_attribute() -> None:
    (problem,) = template_problems("{{ recipient.nam }}", REPAIR)
    assert (problem.code, problem.hint) == ("unknown-field", "did you mean 'name'?")


def test_without_a_ticket_no_ticket_field_is_available() -> None:
    (problem,) = template_problems("Weekly check of {{ ticket.ref }}", NO_TICKET)
    assert problem.code == "unknown-field"
    assert "without a ticket" in problem.message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("{{ tiket.ref }}", "did you mean 'ticket'?"),
        ("{{ store_no }}", "did you mean 'ticket.store_no'? fields are read as ticket.<field>"),
        ("{{ ticket.title|uper }}", "did you mean 'upper'?"),
        ("{% if ticket.parts is defind %}-{% endif %}", "did you mean 'defined'?"),
    ],
)
def test_unknown_names(text: str, hint: str) -> None:
    (problem,) = template_problems(text, REPAIR)
    assert (problem.code, problem.hint) == ("unknown-name", hint)


@pytest.mark.parametrize(
    "text",
    [
        "{% for row in ticket.parts %}{% endfor %}{{ row.qty }}",  # the loop variable is gone
        "{% with a = 1 %}{% endwith %}{{ a }}",
        "{{ loop.index }}",
        "{{ later }}{% set later = 1 %}",
    ],
)
def test_variables_are_scoped(text: str) -> None:
    assert codes(text) == ["unknown-name"]


def test_unknown_roots_are_listed() -> None:
    (problem,) = template_problems("{{ shop.name }}", REPAIR)
    assert (
        problem.hint
        == "a template reads ticket, labels, recipient, actor, range and the variables it sets "
        "itself"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("{{ ticket.ref }", 1),
        ("Ticket {{ ticket.ref }}\n{% if ticket.priority %}\nurgent\n", 2),
        ("a\nb\n{% for x in %}{% endfor %}", 3),
    ],
)
def test_syntax_errors_name_the_line_in_the_template(text: str, line: int) -> None:
    (problem,) = template_problems(text, REPAIR)
    assert problem.code == "template-syntax"
    assert f"(line {line} of the template)" in problem.message
    assert problem.line == line


def test_other_problems_name_the_line_when_the_template_has_several() -> None:
    (problem,) = template_problems("Hello\n\n{{ ticket.nope }}", REPAIR)
    assert problem.message.endswith("(line 3 of the template)")


def test_too_deeply_nested_is_a_syntax_error() -> None:
    text = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
    assert codes(text) == ["template-syntax"]


def test_too_long() -> None:
    assert codes("x" * MAX_TEMPLATE) == []
    (problem,) = template_problems("{{ ticket.__class__ }}" + "x" * MAX_TEMPLATE, REPAIR)
    assert problem.code == "template-too-long"


def test_templates_are_parsed_never_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling constant-folds (`9**(9**7)`, `'x'|center(10**10)`): it must not happen."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("compiled or folded at validation time")

    monkeypatch.setattr(Environment, "compile", refuse)
    monkeypatch.setattr(nodes.Expr, "as_const", refuse)
    text = "{{ 9**(9**7) }} {{ 'x'|center(10000000000) }} {{ ticket.ref|upper }}"
    assert template_problems(text, REPAIR) == []


# -- in a pack: every place a template is written, located at its path ----------------------

PACK = (
    MINIMAL.replace(
        "      finish: {from: open, to: done, roles: [agent]}\n",
        "      finish:\n"
        "        from: open\n"
        "        to: done\n"
        "        roles: [agent]\n"
        "        do:\n"
        "          - create_ticket: {template: repair, fields: {note: '{{ ticket.__class__ }}'}}\n",
    ).replace(
        "      priority: {type: choice, options: [P1, P2, P3], default: P3}\n",
        "      priority: {type: choice, options: [P1, P2, P3], default: P3}\n"
        "      note: {type: text}\n"
        "  visit:\n"
        "    title: {en: Visit, zh: 上门}\n"
        "    workflow: basic\n"
        "    fields:\n"
        "      address: {type: text}\n",
    )
    + """\
rules:
  p1:
    on: created
    templates: [repair]
    do: [{notify: {to: "role:agent", message: p1}}]
sla:
  fast:
    targets: {resolution: 4h}
    escalations:
      - at: breach
        do: [{webhook: {url: "https://example.com/x", body: "{{ ticket.ref }"}}]
messages:
  p1: {en: "P1 {{ ticket.ref }}", zh: "P1 {{ ticket.address }}"}
  anywhere: "{{ ticket.address }} {{ ticket.note }}"
canned_replies:
  thanks:
    title: {en: Thanks, zh: 谢谢}
    body: {en: "Thanks {{ ticket.adress }}", zh: "谢谢"}
    templates: [visit]
"""
)


def test_every_template_of_a_pack_is_checked_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    found = {
        (d.code, d.pointer)
        for d in load_pack_path(path).diagnostics
        if d.code.startswith(("template-", "unknown-field", "unknown-name"))
    }
    assert found == {
        # the rule sends p1 on repair tickets only, which have no address
        ("unknown-field", "/messages/p1/zh"),
        # offered on visit tickets: a typo of address
        ("unknown-field", "/canned_replies/thanks/body/en"),
        ("template-syntax", "/sla/fast/escalations/0/do/0/webhook/body"),
        (
            "template-unsafe",
            "/workflows/basic/transitions/finish/do/0/create_ticket/fields/note",
        ),
    }


def test_example_packs_have_no_template_problems(root: Path) -> None:
    for pack in sorted((root / "examples" / "workflows").iterdir()):
        if pack.is_dir():
            result = load_pack_path(pack)
            assert result.ok, [d.headline() for d in result.diagnostics if d.is_error]


def test_labels_read_fields_of_the_template() -> None:
    assert codes("{{ labels.priority }} {{ labels.store_no }}") == []
    problems = template_problems("{{ labels.prority }} {{ labels.ref }}", REPAIR)
    assert [p.code for p in problems] == ["unknown-field", "unknown-field"]
    assert "did you mean 'priority'?" in (problems[0].hint or "")
