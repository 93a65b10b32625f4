"""Publishing pack versions: immutable, numbered per tenant and pack; running tickets keep
their version unless a migration map moves them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.blueprint import Blueprint, compile_pack
from engine.model import Pack
from runtime.actors import Actor
from runtime.records import AuditDraft, EventRow, PackVersionRow, PublishRefused
from runtime.store.base import Tx
from runtime.unit import snapshot


def document_of(pack: Pack) -> dict[str, Any]:
    """The stored form of a validated pack: re-validating it gives an equal model."""
    doc: dict[str, Any] = pack.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return doc


def digest_of(document: Mapping[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def blueprint_of(row: PackVersionRow) -> Blueprint:
    return compile_pack(Pack.model_validate(row.document), row.version)


def publish(
    tx: Tx,
    tenant: str,
    pack: Pack,
    actor: Actor,
    now: datetime,
    migrate: Mapping[str, str] | None = None,
) -> tuple[PackVersionRow, Blueprint | None]:
    """Store `pack` as the next version; (row, its compiled blueprint). Publishing what is
    already the latest version is a no-op: (that row, None). Refused when open tickets sit
    in states the new version lacks and `migrate` does not say where they go."""
    document = document_of(pack)
    digest = digest_of(document)
    head = tx.pack_heads(tenant).get(pack.pack)
    latest = tx.pack_version(tenant, pack.pack, head) if head is not None else None
    if latest is not None and latest.digest == digest and not migrate:
        return latest, None
    version = (latest.version if latest else 0) + 1
    bp = compile_pack(pack, version)
    _check_states_in_use(tx, tenant, bp, migrate or {})
    row = PackVersionRow(tenant, pack.pack, version, now, actor.id, document, digest)
    tx.add_pack_version(row)
    moved = _migrate(tx, tenant, bp, actor, now, migrate) if migrate else 0
    before = {"version": latest.version, "digest": latest.digest} if latest else None
    after = {"version": version, "digest": digest, "migrated": moved}
    tx.add_audit(tenant, [_publish_audit(actor, now, pack.pack, before, after)])
    return row, bp


def _publish_audit(
    actor: Actor, now: datetime, pack: str, before: dict[str, Any] | None, after: dict[str, Any]
) -> AuditDraft:
    return AuditDraft(now, actor.id, "publish", f"pack:{pack}", before, after)


def _check_states_in_use(tx: Tx, tenant: str, bp: Blueprint, migrate: Mapping[str, str]) -> None:
    problems: list[str] = []
    for (_, template, state), count in sorted(tx.count_open_by_state(tenant, bp.pack).items()):
        tpl = bp.templates.get(template)
        if tpl is None:
            problems.append(f"{count} open {template} ticket(s), but the template is gone")
            continue
        states = tpl.workflow.states
        target = migrate.get(state, state)
        if target not in states:
            where = f"'{state}'" if state == target else f"'{state}' → '{target}'"
            problems.append(
                f"{count} open {template} ticket(s) in state {where}, which version "
                f"{bp.version} does not have; map it to one of: {', '.join(states)}"
            )
    if problems:
        raise PublishRefused(
            "publishing would strand open tickets:\n  " + "\n  ".join(dict.fromkeys(problems)),
            problems=problems,
        )


def _migrate(
    tx: Tx, tenant: str, bp: Blueprint, actor: Actor, now: datetime, migrate: Mapping[str, str]
) -> int:
    """Move every open ticket of the pack onto the new version, renaming mapped states."""
    drafts = []
    moved = 0
    for row in tx.open_tickets_of_pack(tenant, bp.pack):
        before = snapshot(row)
        expected = row.version
        old_version, old_state = row.pack_version, row.state
        row.pack_version = bp.version
        row.state = migrate.get(row.state, row.state)
        if row.state != old_state:
            row.state_entered_at = now
        row.closed = row.state in bp.templates[row.template].workflow.finals
        row.event_seq += 1
        row.updated_at = now
        tx.update_ticket(row, expected)
        data: dict[str, Any] = {"from_version": old_version, "to_version": bp.version}
        if row.state != old_state:
            data.update({"from": old_state, "to": row.state})
        tx.add_events([EventRow(tenant, row.id, row.event_seq, now, "migrated", actor.id, data)])
        drafts.append(AuditDraft(now, actor.id, "migrate", row.id, before, snapshot(row)))
        moved += 1
    if drafts:
        tx.add_audit(tenant, drafts)
    return moved
