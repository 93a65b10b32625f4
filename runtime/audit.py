"""The audit log's hash chain: each row's hash covers its content and the previous hash,
so changing or deleting a row breaks every hash after it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from typing import Any

from runtime.records import AuditRow

GENESIS = "0" * 64


def json_encoder(**options: Any) -> Callable[[Any], str]:
    """`json.JSONEncoder(**options).encode`, built once: `encode` makes a new C encoder on
    every call, which costs more than encoding a small value. Same output, except that
    a circular value is refused by the recursion limit rather than a ValueError."""
    encoder = json.JSONEncoder(check_circular=False, **options)
    if c_make_encoder is None or encoder.indent is not None:  # no C accelerator
        return encoder.encode
    strings = json.encoder.encode_basestring_ascii if encoder.ensure_ascii else (
        json.encoder.encode_basestring
    )
    make = c_make_encoder(
        None, encoder.default, strings, None, encoder.key_separator, encoder.item_separator,
        encoder.sort_keys, encoder.skipkeys, encoder.allow_nan,
    )

    def encode(value: Any) -> str:
        return "".join(make(value, 0))

    return encode


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# The canonical form's encoder, built once (`json.dumps` with options builds one per call).
_canonical = json_encoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
)


def canonical(row: AuditRow) -> bytes:
    """The bytes a row's hash covers: every field but the hash itself, in a fixed form."""
    body = [
        row.tenant_id,
        row.seq,
        row.at.isoformat(),
        row.actor,
        row.action,
        row.subject,
        row.before,
        row.after,
        row.prev_hash,
    ]
    return _canonical(body).encode()


def chain(row: AuditRow) -> str:
    """The hash `row` must carry given its content and `row.prev_hash`."""
    return hashlib.sha256(canonical(row)).hexdigest()


def verify(store: Any, tenant_id: str) -> list[str]:
    """Every break in a tenant's chain: a changed row (its hash no longer matches), a
    deleted or inserted row (numbering or links broken), a removed tail (the head, kept
    apart from the rows, points past the last row). Empty when the log is intact."""
    from runtime.store.base import iter_audit

    problems: list[str] = []
    expected_prev, expected_seq = GENESIS, 1
    for row in iter_audit(store, tenant_id):
        if row.seq != expected_seq:
            problems.append(
                f"row {expected_seq}"
                + (f"–{row.seq - 1}" if row.seq - 1 > expected_seq else "")
                + " missing"
            )
        if row.prev_hash != expected_prev:
            problems.append(f"row {row.seq}: does not follow the row before it")
        if chain(row) != row.hash:
            problems.append(f"row {row.seq}: content changed since it was written")
        expected_prev, expected_seq = row.hash, row.seq + 1
    with store.read() as tx:
        head_seq, head_hash = tx.audit_head(tenant_id)
    if head_seq != expected_seq - 1 or head_hash != expected_prev:
        problems.append(
            f"the log ends at row {expected_seq - 1} but its head records row {head_seq}"
            if head_seq != expected_seq - 1
            else f"row {head_seq}: differs from the hash recorded in the head"
        )
    return problems
