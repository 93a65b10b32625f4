"""The YAML loader: positions for every node, and hostile input refused fast and located."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from dsl.yaml_loader import LoadLimits, load_yaml_file, load_yaml_text


def codes(text: str, limits: LoadLimits | None = None) -> list[tuple[str, int, int]]:
    doc, diags = load_yaml_text(text, "t.yaml", limits)
    assert doc is None or not diags
    return [(d.code, d.span.line, d.span.column) for d in diags if d.span]


def test_keeps_line_and_column_of_keys_values_and_items() -> None:
    doc, diags = load_yaml_text("a:\n  b: [x, {c: 1}]\n  d:\n    - e\n", "t.yaml")
    assert not diags and doc is not None
    src = doc.source
    assert src.key(("a", "b")) is not None and (
        src.key(("a", "b")).line,
        src.key(("a", "b")).column,
    ) == (2, 3)
    value = src.value(("a", "b", 1, "c"))
    assert value is not None and (value.line, value.column) == (2, 14)
    item = src.value(("a", "d", 0))
    assert item is not None and (item.line, item.column) == (4, 7)


def test_yaml_1_2_scalars_no_norway_problem() -> None:
    doc, _ = load_yaml_text(
        "a: NO\nb: yes\nc: 09:00\nd: 2026-01-01\ne: 1_000\nf: true\ng: 0x1f\nh: ~\n"
    )
    assert doc is not None
    assert doc.data == {
        "a": "NO",
        "b": "yes",
        "c": "09:00",
        "d": "2026-01-01",
        "e": "1_000",
        "f": True,
        "g": 31,
        "h": None,
    }


def test_quoted_scalars_stay_strings() -> None:
    doc, _ = load_yaml_text("a: '5'\nb: \"true\"\n")
    assert doc is not None and doc.data == {"a": "5", "b": "true"}


def test_duplicate_key_names_both_lines() -> None:
    doc, diags = load_yaml_text("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "t.yaml")
    assert doc is None
    assert [(d.code, d.span.line, d.related[0].line) for d in diags if d.span] == [
        ("yaml-duplicate-key", 4, 3),
        ("yaml-duplicate-key", 5, 1),
    ]
    assert "first defined at line 3" in diags[0].message


def test_tab_indentation_is_located() -> None:
    assert codes("a:\n\tb: 1\n") == [("yaml-tab", 2, 1)]


def test_syntax_error_is_located() -> None:
    assert codes("a: [1, 2\nb: 3\n") == [("yaml-syntax", 2, 2)]


def test_unterminated_quote_points_at_its_start() -> None:
    assert codes("x: 1\ny: 'open\n") == [("yaml-syntax", 2, 4)]


def test_tags_are_refused() -> None:
    assert codes("a: !!python/object/apply:os.system ['ls']\n") == [("yaml-tag", 1, 4)]
    assert codes("a: !custom x\n") == [("yaml-tag", 1, 4)]


def test_second_document_is_refused() -> None:
    assert codes("a: 1\n---\nb: 2\n") == [("yaml-multiple-documents", 2, 1)]


def test_merge_keys_and_aliases_share_data() -> None:
    doc, diags = load_yaml_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n")
    assert not diags and doc is not None
    assert doc.data["d"] == {"x": 1, "y": 3}


def test_error_inside_alias_points_at_anchor() -> None:
    doc, _ = load_yaml_text("a: &x {k: v}\nb: *x\n")
    assert doc is not None
    span = doc.source.value(("b", "k"))
    assert span is not None and (span.line, span.column) == (1, 11)


def _bomb(levels: int) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join(f"*l{i - 1}" for _ in range(9))
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast_and_small() -> None:
    text = _bomb(12)  # 9**12 nodes if expanded
    tracemalloc.start()
    started = time.perf_counter()
    doc, diags = load_yaml_text(text, "bomb.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert doc is None and diags[0].code == "yaml-alias-limit"
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024


def test_alias_limit_is_configurable() -> None:
    text = _bomb(3)  # 9 + 81 + 729 nodes
    assert load_yaml_text(text)[0] is not None
    doc, diags = load_yaml_text(text, limits=LoadLimits(max_expanded_nodes=50))
    assert doc is None and diags[0].code == "yaml-alias-limit"


def test_too_many_aliases_is_refused() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    doc, diags = load_yaml_text(text, limits=LoadLimits(max_aliases=10))
    assert doc is None and diags[0].code == "yaml-alias-limit"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000,
        "{a: " * 10_000 + "}" * 10_000,
        "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    ],
    ids=["flow-seq", "flow-map", "flow-value", "block"],
)
def test_deep_nesting_is_refused_fast(text: str) -> None:
    started = time.perf_counter()
    doc, diags = load_yaml_text(text, "deep.yaml")
    assert time.perf_counter() - started < 1.0
    assert doc is None and diags[0].code == "yaml-too-deep"
    assert diags[0].span is not None and diags[0].span.line >= 1


def test_brackets_in_quotes_comments_and_plain_text_do_not_count_as_nesting() -> None:
    text = "a: '" + "[" * 100 + "'\n# " + "{" * 100 + "\nb: it's [not a list\nc: x[[[[\n"
    doc, diags = load_yaml_text(text, limits=LoadLimits(max_depth=5))
    assert not diags and doc is not None
    assert doc.data["b"] == "it's [not a list"


def test_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MiB without writing them
    started = time.perf_counter()
    doc, diags = load_yaml_file(big)
    assert time.perf_counter() - started < 1.0
    assert doc is None and diags[0].code == "file-too-large"
    assert "52,428,800 bytes" in diags[0].message


def test_size_limit_is_configurable() -> None:
    doc, diags = load_yaml_text("a: " + "x" * 200 + "\n", limits=LoadLimits(max_bytes=100))
    assert doc is None and diags[0].code == "file-too-large"


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: 1\nb: caf\xe9\n".encode("latin-1"))
    doc, diags = load_yaml_file(path)
    assert doc is None
    assert [(d.code, d.span.line, d.span.column) for d in diags if d.span] == [
        ("yaml-encoding", 2, 7)
    ]


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    doc, diags = load_yaml_file(path)
    assert not diags and doc is not None and doc.data == {"a": 1}
