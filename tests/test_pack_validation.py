"""Loading packs: the model, semantic checks, multi-file packs, located diagnostics."""

from __future__ import annotations

from pathlib import Path

from conftest import MINIMAL
from dsl.diagnostics import Severity
from engine.fields import ChoiceField
from engine.load import load_pack_path


def write(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors(path: Path) -> list[tuple[str, int, int, str]]:
    result = load_pack_path(path)
    return [
        (d.code, d.span.line, d.span.column, d.message)
        for d in result.diagnostics
        if d.is_error and d.span
    ]


def test_minimal_pack_builds_a_typed_model(tmp_path: Path) -> None:
    result = load_pack_path(write(tmp_path, MINIMAL))
    assert result.ok and result.diagnostics == []
    pack = result.pack
    assert pack is not None
    field = pack.templates["repair"].fields["priority"]
    assert isinstance(field, ChoiceField) and field.default == "P3"
    assert pack.workflows["basic"].transitions["finish"].from_ == "open"


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("workflow: basic", "workflow: basik")
        .replace("default: P3", "default: P4")
        .replace("roles: [agent]", "roles: [agnet]")
    )
    found = errors(write(tmp_path, text))
    assert [(c, line) for c, line, _, _ in found] == [
        ("unknown-reference", 10),
        ("unknown-option", 12),
        ("unknown-reference", 20),
    ]


def test_unknown_reference_suggests_the_close_name(tmp_path: Path) -> None:
    result = load_pack_path(write(tmp_path, MINIMAL.replace("workflow: basic", "workflow: basik")))
    (diag,) = [d for d in result.diagnostics if d.is_error]
    assert diag.message == "unknown workflow 'basik'"
    assert diag.hint == "did you mean 'basic'?"
    assert diag.span is not None and (diag.span.line, diag.span.column) == (10, 15)
    assert diag.pointer == "/templates/repair/workflow"


def test_unknown_key_suggests_the_real_key(tmp_path: Path) -> None:
    text = MINIMAL.replace("default: P3}", "default: P3, requird: true}")
    result = load_pack_path(write(tmp_path, text))
    (diag,) = result.diagnostics
    assert (diag.code, diag.hint) == ("unknown-key", "did you mean 'required'?")
    assert diag.span is not None and (diag.span.line, diag.span.column) == (12, 68)


def test_unreachable_and_dead_end_states(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "      done: {final: true}\n", "      done: {final: true}\n      limbo: {}\n"
    )
    found = errors(write(tmp_path, text))
    assert [(c, line) for c, line, *_ in found] == [
        ("dead-end-state", 19),
        ("unreachable-state", 19),
    ]


def test_star_from_covers_every_non_final_state(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "      finish: {from: open, to: done, roles: [agent]}\n",
        "      finish: {from: open, to: done, roles: [agent]}\n"
        "      hold: {from: open, to: waiting}\n"
        "      cancel: {from: '*', to: done}\n",
    ).replace("      done: {final: true}\n", "      done: {final: true}\n      waiting: {}\n")
    assert errors(write(tmp_path, text)) == []


def test_final_state_with_outgoing_transition(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "      finish: {from: open, to: done, roles: [agent]}\n",
        "      finish: {from: open, to: done, roles: [agent]}\n"
        "      reopen: {from: done, to: open}\n",
    )
    found = errors(write(tmp_path, text))
    assert [(c, line) for c, line, *_ in found] == [("final-state-exit", 21)]


def test_transition_requires_a_field_the_template_lacks(tmp_path: Path) -> None:
    text = MINIMAL.replace("roles: [agent]}", "roles: [agent], requires: [signatur]}")
    found = errors(write(tmp_path, text))
    assert found[0][0] == "unknown-reference"
    assert "template 'repair' has no such field" in found[0][3]


def test_builtin_attributes_count_as_fields(tmp_path: Path) -> None:
    text = MINIMAL.replace("roles: [agent]}", "roles: [agent], requires: [assignee]}")
    assert errors(write(tmp_path, text)) == []


def test_missing_translation_is_a_warning_only(tmp_path: Path) -> None:
    text = MINIMAL.replace("title: {en: Repair, zh: 报修}", "title: {en: Repair}")
    result = load_pack_path(write(tmp_path, text))
    assert result.ok
    (diag,) = result.diagnostics
    assert diag.severity is Severity.WARNING and diag.code == "missing-translation"
    assert diag.span is not None and diag.span.line == 8


def test_invalid_time_zone_has_a_suggestion(tmp_path: Path) -> None:
    result = load_pack_path(write(tmp_path, MINIMAL.replace("Asia/Shanghai", "Asia/Shangai")))
    (diag,) = result.diagnostics
    assert diag.code == "unknown-timezone" and diag.hint == "did you mean 'Asia/Shanghai'?"


def test_multi_file_pack_merges_sections(tmp_path: Path) -> None:
    head, _, tail = MINIMAL.partition("workflows:\n")
    write(tmp_path, head, "a.yaml")
    write(tmp_path, "workflows:\n" + tail, "b.yaml")
    result = load_pack_path(tmp_path)
    assert result.ok and result.pack is not None
    assert set(result.pack.workflows) == {"basic"}


def test_name_defined_in_two_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "a.yaml")
    write(
        tmp_path,
        "# more\nworkflows:\n  basic:\n    initial: x\n    states: {x: {final: true}}\n",
        "b.yaml",
    )
    result = load_pack_path(tmp_path)
    (diag,) = [d for d in result.diagnostics if d.is_error]
    assert diag.code == "duplicate-definition"
    assert diag.span is not None and diag.span.file.endswith("b.yaml") and diag.span.line == 3
    assert diag.related and diag.related[0].file.endswith("a.yaml") and diag.related[0].line == 14
    assert "workflows.basic is defined twice" in diag.message


def test_sla_target_for_unknown_priority(tmp_path: Path) -> None:
    text = MINIMAL.replace("    workflow: basic\n", "    workflow: basic\n    sla: [std]\n") + (
        "sla:\n  std:\n    targets:\n      resolution: {P1: 4h, P2: 1d, P3: 3d, P9: 5d}\n"
    )
    found = errors(write(tmp_path, text))
    assert [(c, line, col) for c, line, col, _ in found] == [("unknown-option", 25, 44)]


def test_calendar_hours_days_and_holidays(tmp_path: Path) -> None:
    text = MINIMAL + (
        "calendars:\n"
        "  office:\n"
        "    week: {mon-fri: '09:00-18:00', fri: '10:00-12:00', sat: '25:00-26:00'}\n"
        "    holidays: {country: US, subdivision: XX}\n"
        "  night:\n"
        "    week: {mon-sun: '22:00-06:00'}\n"
        "    holidays: CN\n"
    )
    found = errors(write(tmp_path, text))
    assert [c for c, *_ in found] == ["invalid-hours"]
    fixed = text.replace("sat: '25:00-26:00'", "sat: closed")
    found = errors(write(tmp_path, fixed))
    assert [c for c, *_ in found] == ["duplicate-day", "unknown-subdivision"]


def test_empty_pack_is_an_error(tmp_path: Path) -> None:
    result = load_pack_path(write(tmp_path, "# nothing yet\n"))
    assert [d.code for d in result.diagnostics] == ["empty-pack"]
    assert result.pack is None


def test_error_in_a_trigger_points_at_the_bad_key(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "rules:\n  r:\n    on: {entered: done, after: 30}\n    do: [{notify: {to: requester}}]\n"
    )
    (diag,) = load_pack_path(write(tmp_path, text)).diagnostics
    assert diag.pointer == "/rules/r/on/after"
    assert diag.message.startswith("'after' must be a duration")
    assert diag.hint == "add a unit, e.g. 30m, 30h or 30d"


def test_field_names_used_by_conditions_are_reserved(tmp_path: Path) -> None:
    text = MINIMAL.replace("    fields:\n", "    fields:\n      state: {type: text}\n")
    found = errors(write(tmp_path, text))
    assert [(c, line) for c, line, *_ in found] == [("reserved-name", 12)]


def test_money_column_needs_a_currency(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    fields:\n", "    fields:\n      parts: {type: table, columns: {cost: money}}\n"
    )
    found = errors(write(tmp_path, text))
    assert [c for c, *_ in found] == ["missing-key"]
    assert "needs a currency" in found[0][3]


def test_a_ticket_is_not_assigned_to_watchers(tmp_path: Path) -> None:
    text = MINIMAL + "rules:\n  r:\n    on: created\n    do: [{assign: {to: watchers}}]\n"
    assert [c for c, *_ in errors(write(tmp_path, text))] == ["invalid-assignee"]


def test_empty_text_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL.replace("title: {en: Repair, zh: 报修}", "title: {}")
    assert [c for c, *_ in errors(write(tmp_path, text))] == ["empty-text"]


def test_computed_field_result_type_and_self_reference(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    fields:\n",
        "    fields:\n      qty: {type: integer}\n"
        "      total: {type: computed, expr: 'qty > 5', result: number}\n"
        "      again: {type: computed, expr: 'again + qty', result: number}\n",
    )
    found = errors(write(tmp_path, text))
    assert [(c, line) for c, line, *_ in found] == [("expr-type", 13), ("expr-self-reference", 14)]


def test_builtin_actor_attributes_cannot_be_redefined(tmp_path: Path) -> None:
    text = MINIMAL + "actor_attributes: {roles: number, stores: list}\n"
    found = errors(write(tmp_path, text))
    assert [c for c, *_ in found] == ["reserved-name"]


def test_several_missing_keys_are_reported_one_by_one(tmp_path: Path) -> None:
    text = MINIMAL.replace("templates:\n", "templates:\n  empty: {ref: 'E-{seq}'}\n")
    found = errors(write(tmp_path, text))
    assert [(c, m) for c, _, _, m in found] == [
        ("missing-key", "missing required key 'title'"),
        ("missing-key", "missing required key 'workflow'"),
    ]


def test_ticket_attributes_with_known_values_are_checked(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace(
            "roles: [agent]}", "roles: [agent], when: 'ticket.channel == \"fax\"'}"
        ).replace("    workflow: basic\n", "    workflow: basic\n    channels: [web, email]\n")
        + "teams: {facilities: {}}\n"
        + 'rules:\n  r:\n    on: created\n    if: ticket.team == "facilties" and ticket.template == "repair"\n'
        + "    do: [{notify: {to: requester}}]\n"
    )
    found = errors(write(tmp_path, text))
    assert [(c, m) for c, _, _, m in found] == [
        ("expr-unknown-option", "'fax' is not one of the options (email, web)"),
        ("expr-unknown-option", "'facilties' is not one of the options (facilities)"),
    ]
