"""The JSON Schema of the pack format, generated from the model, for editors and tools.

Kept to draft-07 keywords because the YAML language server (VS Code and others) does not
understand newer ones such as `unevaluatedProperties`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.model import Pack

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "pack.schema.json"
SCHEMA_ID = "https://ticketflow.dev/schemas/pack.schema.json"


def clean(node: Any, draft07: bool = True) -> Any:
    """A pydantic-generated schema as editors and UIs want it: no generated titles or
    discriminators, an optional value as its non-null type, locale-text mappings closed.
    `draft07` (this file's dialect) also points $refs at `definitions` and wraps a $ref
    that has siblings in `allOf`; 2020-12 (the builder palette's) allows siblings."""
    if isinstance(node, list):
        return [clean(n, draft07) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            clean(v, draft07)
            if k != "properties"
            else {name: clean(p, draft07) for name, p in v.items()}
        )
        for k, v in node.items()
        if k != "discriminator" and not (k == "title" and isinstance(v, str))
    }
    if draft07 and isinstance(out.get("$ref"), str):
        out["$ref"] = str(out["$ref"]).replace("#/$defs/", "#/definitions/")
        if len(out) > 1:
            # draft-07 ignores keywords beside $ref; wrap it so descriptions still show.
            ref = out.pop("$ref")
            out["allOf"] = [{"$ref": ref}]
    if "patternProperties" in out:
        out.setdefault("additionalProperties", False)
    for key in ("anyOf", "oneOf"):
        if key in out:
            branches = [b for b in out[key] if b != {"type": "null"}]
            if len(branches) < len(out[key]) and out.get("default", 0) is None:
                out.pop("default")
            if len(branches) == 1:
                out.pop(key)
                merged = branches[0]
                if draft07 and "$ref" in merged and out:
                    out["allOf"] = [merged]
                else:
                    out = {**merged, **out}
            else:
                out[key] = branches
    return out


def pack_schema() -> dict[str, Any]:
    """The schema as a dict."""
    raw = Pack.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "ticketflow definition pack",
    }
    body = clean(raw)
    # A pack may span several files and each file is checked on its own by editors, so
    # the root keys are not required here; `ticketflow validate` reports missing ones.
    body.pop("required", None)
    body["description"] = (
        "A ticketflow definition pack (or one file of a pack spread over several files). "
        "A complete pack needs `pack`, `title` and `timezone`."
    )
    schema.update(body)
    schema["definitions"] = {name: clean(d) for name, d in sorted(defs.items())}
    return schema


def render_schema() -> str:
    """The schema as the text committed to `schemas/pack.schema.json`."""
    return json.dumps(pack_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH, check_only: bool = False) -> bool:
    """Write the schema file; True when its content changed (or would change)."""
    text = render_schema()
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return False
    if not check_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return True
