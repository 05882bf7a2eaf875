"""Key rotation: re-encrypt every stored token under the current key."""
from __future__ import annotations

import logging

from sqlalchemy import select, update

from bridge.crypto import VaultError
from bridge.runtime import Runtime
from bridge.store.db import utcnow

log = logging.getLogger(__name__)


def reencrypt_all(rt: Runtime) -> dict:
    """Rewrite each legacy-format or old-key token value; returns counts. A value that no
    configured key can decrypt is left untouched and counted as failed."""
    t = rt.tables.accounts
    seen = updated = failed = 0
    with rt.engine.begin() as conn:
        rows = conn.execute(select(t.c.id, t.c.access_token, t.c.refresh_token).with_for_update()).all()
        for row in rows:
            changes = {}
            for column in ("access_token", "refresh_token"):
                value = getattr(row, column)
                if not value:
                    continue
                seen += 1
                try:
                    if rt.vault.needs_reencrypt(value):
                        changes[column] = rt.vault.reencrypt(value)
                except VaultError:
                    failed += 1
                    log.warning("account %s: %s cannot be decrypted with any configured key", row.id, column)
            if changes:
                conn.execute(update(t).where(t.c.id == row.id).values(**changes, updated_at=utcnow()))
                updated += len(changes)
    return {"seen": seen, "updated": updated, "failed": failed}
