"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "workflows"


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT


MINIMAL = """\
pack: demo
title: {en: Demo, zh: 演示}
timezone: Asia/Shanghai
locales: [en, zh]
roles: [agent, customer]
templates:
  repair:
    title: {en: Repair, zh: 报修}
    ref: "R-{seq:05}"
    workflow: basic
    fields:
      priority: {type: choice, options: [P1, P2, P3], default: P3}
workflows:
  basic:
    initial: open
    states:
      open: {}
      done: {final: true}
    transitions:
      finish: {from: open, to: done, roles: [agent]}
"""
