"""Parse and check a generated DSL pack of 2,000 rules (the retail example plus rules).

Run: .venv/bin/python benchmarks/bench_flow.py [--rules N] [--repeat N]
Prints the size of the file and the median time of parsing it (DSL text to data and source
map) and of checking it (the model and every semantic and expression check), in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsl.flow_parser import _parser, load_flow_text  # noqa: E402
from dsl.flow_writer import write_flow  # noqa: E402
from dsl.sources import MergedDocument, PackSource, discover_packs  # noqa: E402
from engine.load import load_pack, validate_document  # noqa: E402

EXAMPLE = ROOT / "examples" / "workflows" / "retail_store"

TRIGGERS = (
    "on created",
    "on updated priority, category",
    "on entered waiting_parts after 4h",
    "on transitioned resolve",
    "on sla.warning",
    'on schedule "0 8 * * MON" calendar office_hours',
)
CONDITIONS = (
    'priority == "P1"',
    'category in ["hvac", "refrigeration"] and not parts_approved',
    'len(parts) > 2 or priority != "P3"',
    'state == "waiting_parts"',
)
ACTIONS = (
    'notify "role:area_manager" via sms, wecom message p1_alert',
    "notify assignee via wecom message sla_warning then raise_priority",
    'assign "role:dispatcher"',
    "set parts_approved = false",
    'comment parts_needed internal then notify "team:facilities" message parts_needed',
)


def generate(rules: int) -> str:
    """The retail example as DSL text followed by `rules` generated rules."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic's union-serialisation warnings
        result = load_pack(discover_packs([EXAMPLE])[0])
        assert result.pack is not None and result.ok, result.diagnostics
        data = result.pack.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    lines = [write_flow(data)]
    for i in range(rules):
        trigger = TRIGGERS[i % len(TRIGGERS)]
        condition = CONDITIONS[i % len(CONDITIONS)]
        action = ACTIONS[i % len(ACTIONS)]
        head = f"rule generated_{i:04d} {trigger} for store_repair"
        lines.append(f"{head} if {condition} do {action}")
    return "\n".join(lines) + "\n"


def measure(text: str, repeat: int) -> tuple[float, float]:
    """Median ms of parsing, and of checking the parsed data."""
    parse_ms: list[float] = []
    check_ms: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        doc, diags = load_flow_text(text, "bench.flow")
        parsed = time.perf_counter()
        assert doc is not None and not diags, [d.headline() for d in diags][:3]
        merged = MergedDocument(doc.data, doc.source, {"bench.flow": text})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pack, problems = validate_document(merged)
        checked = time.perf_counter()
        errors = [d.headline() for d in problems if d.is_error]
        assert pack is not None and not errors, errors[:3]
        parse_ms.append((parsed - started) * 1000)
        check_ms.append((checked - parsed) * 1000)
    return statistics.median(parse_ms), statistics.median(check_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    _parser()
    build_ms = (time.perf_counter() - started) * 1000
    text = generate(args.rules)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.flow"
        path.write_text(text, encoding="utf-8")
        files = PackSource(path, [path])
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = load_pack(files)
        whole_ms = (time.perf_counter() - started) * 1000
        assert result.ok, [d.headline() for d in result.diagnostics if d.is_error][:3]
    parse_ms, check_ms = measure(text, args.repeat)
    lines = text.count("\n")
    print(f"grammar build (once per process): {build_ms:8.1f} ms")
    print(f"file: {args.rules} rules, {lines} lines, {len(text.encode()):,} bytes")
    print(f"parse  (DSL -> data + source map): {parse_ms:8.1f} ms")
    print(f"check  (model + semantic checks):  {check_ms:8.1f} ms")
    total = parse_ms + check_ms
    print(f"total  {total:8.1f} ms   ({total / args.rules:.2f} ms per rule)")
    print(f"load_pack from the file:            {whole_ms:8.1f} ms")


if __name__ == "__main__":
    main()
