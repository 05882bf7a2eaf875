"""Key rotation: `aurareels-bridge reencrypt-tokens` rewrites legacy and old-key values."""
from __future__ import annotations

import subprocess
import sys

from sqlalchemy import select

from bridge.crypto import TokenVault, legacy_encrypt
from tests.conftest import VAULT_KEY, base_env
from tests.factories import add_account


def test_reencrypt_command_rotates_every_token(rt, database_url):
    old_key = "retired-vault-key-0001"
    legacy = add_account(rt, 1, "tiktok", account_id="a")
    old = add_account(rt, 1, "instagram", account_id="b")
    current = add_account(rt, 1, "youtube", account_id="c", refresh_token=None)
    a = rt.tables.accounts
    old_vault = TokenVault(old_key)
    with rt.engine.begin() as conn:
        conn.execute(a.update().where(a.c.id == legacy).values(access_token=legacy_encrypt(VAULT_KEY, "act.legacy"),
                                                               refresh_token=legacy_encrypt(VAULT_KEY, "rft.legacy")))
        conn.execute(a.update().where(a.c.id == old).values(access_token=old_vault.encrypt("act.old"),
                                                            refresh_token=old_vault.encrypt("rft.old")))
    env = base_env(AURAREELS_DATABASE_URL=database_url, AURAREELS_SOCIAL_ENCRYPTION_OLD_KEYS=old_key)
    done = subprocess.run([sys.executable, "-m", "bridge.cli", "reencrypt-tokens"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 4 of 5" in done.stdout
    fresh = TokenVault(VAULT_KEY)  # the current key alone now reads everything
    with rt.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(a.c.id, a.c.access_token, a.c.refresh_token))}
    assert fresh.decrypt(rows[legacy].access_token) == "act.legacy"
    assert fresh.decrypt(rows[old].refresh_token) == "rft.old"
    assert all(r.access_token.startswith("ar2:") for r in rows.values())
    assert not fresh.needs_reencrypt(rows[current].access_token)
    assert VAULT_KEY not in done.stdout + done.stderr and "act.legacy" not in done.stdout + done.stderr
