"""Load + validate + model of the example packs and of generated packs 10x and 100x larger.

Run: .venv/bin/python benchmarks/bench_load.py [--repeat N]
Reports ms per pack and ms per 1,000 lines; the per-line cost should stay flat as packs grow.
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsl.sources import PackSource, discover_packs, load_pack_source  # noqa: E402
from engine.load import SECTIONS, load_pack  # noqa: E402

EXAMPLES = ROOT / "examples" / "workflows"


def _rename(data: dict[str, Any], k: int) -> dict[str, Any]:
    """Copy k of a pack's templates, workflows, SLA policies and rules, references renamed."""
    sfx = f"_c{k}"
    out: dict[str, Any] = {}
    templates = data.get("templates", {})
    for name, tpl in templates.items():
        tpl = copy.deepcopy(tpl)
        tpl["workflow"] = tpl["workflow"] + sfx
        tpl["sla"] = [s + sfx for s in tpl.get("sla", [])]
        out.setdefault("templates", {})[name + sfx] = tpl
    for name, wf in data.get("workflows", {}).items():
        out.setdefault("workflows", {})[name + sfx] = copy.deepcopy(wf)
    for name, policy in data.get("sla", {}).items():
        out.setdefault("sla", {})[name + sfx] = copy.deepcopy(policy)
    for name, rule in data.get("rules", {}).items():
        rule = copy.deepcopy(rule)
        scope = rule.get("templates") or list(templates)
        rule["templates"] = [t + sfx for t in scope]
        for action in rule.get("do", []):
            if "create_ticket" in action:
                action["create_ticket"]["template"] += sfx
        out.setdefault("rules", {})[name + sfx] = rule
    return out


def generate(pack: PackSource, factor: int, into: Path) -> tuple[PackSource, int]:
    """Write a pack `factor` times the size of `pack` (as one extra file per copy)."""
    merged, diags = load_pack_source(pack, SECTIONS)
    assert merged is not None and not diags, diags
    yaml = YAML()
    yaml.width = 120
    files: list[Path] = []
    lines = 0
    for src in pack.files:
        target = into / src.name
        target.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
        files.append(target)
    for k in range(1, factor):
        buf = io.StringIO()
        yaml.dump(_rename(merged.data, k), buf)
        target = into / f"copy_{k:03d}.yaml"
        target.write_text(buf.getvalue(), encoding="utf-8")
        files.append(target)
    lines = sum(f.read_text(encoding="utf-8").count("\n") for f in files)
    return PackSource(into, files), lines


def measure(pack: PackSource, repeat: int) -> float:
    """Median wall time in ms of loading, validating and modelling the pack."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = load_pack(pack)
        times.append((time.perf_counter() - started) * 1000)
        assert result.ok, [d.headline() for d in result.diagnostics if d.is_error][:5]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'pack':<28}{'lines':>8}{'ms':>10}{'ms/1k lines':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for pack in discover_packs([EXAMPLES]):
            for factor in (1, 10, 100):
                if factor == 1:
                    source = pack
                    lines = sum(f.read_text(encoding="utf-8").count("\n") for f in pack.files)
                else:
                    into = Path(tmp) / f"{pack.root.name}_x{factor}"
                    into.mkdir()
                    source, lines = generate(pack, factor, into)
                repeat = args.repeat if factor < 100 else max(1, args.repeat // 2)
                ms = measure(source, repeat)
                label = f"{pack.root.name} x{factor}"
                print(f"{label:<28}{lines:>8}{ms:>10.1f}{ms / lines * 1000:>14.1f}")


if __name__ == "__main__":
    main()
