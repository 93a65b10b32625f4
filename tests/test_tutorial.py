"""docs/tutorial.md, run as written: every `$ command` in a ```sh block runs (in order, in a
scratch directory beside a link to the repository's `examples/`), its exit code must be 0
(or the `# exit N` it states), and each line shown under it must appear in its output, in
order. The edits the tutorial asks for are applied from its markers:

- `<!-- edit: FILE after: "LINE" -->` then a ```yaml block: insert the block after the first
  line equal to LINE;
- `<!-- edit: FILE replace: "OLD" with: "NEW" -->`: replace the line OLD by NEW;
- `<!-- file: FILE -->` then a ```yaml block: write the block as FILE.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT

TUTORIAL = ROOT / "docs" / "tutorial.md"
MARKER = re.compile(
    r"<!-- (edit|file): (\S+)(?: (after|replace): \"(.*?)\"(?: with: \"(.*?)\")?)? -->"
)
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


@dataclass
class Command:
    line: str
    exit_code: int
    expected: list[str]


def _commands(block: str) -> list[Command]:
    out: list[Command] = []
    for raw in block.splitlines():
        if raw.startswith("$ "):
            text, _, comment = raw[2:].partition("   # exit ")
            out.append(Command(text.strip(), int(comment) if comment else 0, []))
        elif raw.strip() and out:
            out[-1].expected.append(raw.strip())
    return out


def _apply(kind: str, path: Path, how: str | None, anchor: str, new: str | None, body: str) -> None:
    if kind == "file":
        path.write_text(body, encoding="utf-8")
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    index = lines.index(anchor)  # the tutorial's anchor must exist exactly once or first
    if how == "after":
        lines[index + 1 : index + 1] = body.rstrip("\n").split("\n")
    else:
        assert new is not None
        lines[index] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def _run(command: Command, cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("TICKETFLOW_DATABASE_URL", None)
    done = subprocess.run(
        ["bash", "-c", command.line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == command.exit_code, f"$ {command.line}\n{output}"
    position = 0
    for expected in command.expected:
        found = output.find(expected, position)
        assert found >= 0, f"$ {command.line}: missing (in order) {expected!r} in:\n{output}"
        position = found + len(expected)


def test_every_step_of_the_tutorial_works(tmp_path: Path) -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    pending: re.Match[str] | None = None
    ran = edits = 0
    for piece in re.split(r"(<!-- .*? -->|```\w+\n.*?```)", text, flags=re.S):
        marker = MARKER.fullmatch(piece)
        fence = FENCE.fullmatch(piece)
        if marker is not None:
            kind, file, how, anchor, new = marker.groups()
            if how == "replace":
                _apply(kind, tmp_path / file, how, anchor, new, "")
                edits += 1
            else:
                pending = marker
        elif fence is not None and pending is not None:
            kind, file, how, anchor, new = pending.groups()
            _apply(kind, tmp_path / file, how, anchor, new, fence.group(2))
            pending, edits = None, edits + 1
        elif fence is not None and fence.group(1) == "sh":
            for command in _commands(fence.group(2)):
                _run(command, tmp_path)
                ran += 1
    assert (ran, edits) == (8, 7)  # the tutorial's steps, none skipped by a broken marker
