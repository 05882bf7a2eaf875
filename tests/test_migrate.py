"""`migrate` on MariaDB: from nothing, on tables the WordPress plugin created, idempotent."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from bridge.config import Settings
from bridge.crypto import legacy_encrypt
from bridge.runtime import Runtime
from bridge.services.accounts import list_accounts
from bridge.store.db import make_engine
from bridge.store.migrate import migrate
from tests.conftest import VAULT_KEY, base_env, mysql_connect, mysql_url

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_b159ba74d43d93e1.txt"


def seed_ddl(prefix: str = "wp_") -> list[str]:
    """The three CREATE TABLE statements of seed 000, verbatim (prefix substituted)."""
    if SEED.exists():
        source = SEED.read_text()
        blocks = re.findall(
            r"CREATE TABLE `wp_aurareels_social_[a-z]+` \(.*?\) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
            r"COLLATE=utf8mb4_unicode_ci;", source, re.S)
    else:  # a clone without shared/ beside it: the copy kept in sql/ is the same text
        source = (Path(__file__).resolve().parents[1] / "sql/mysql/0000_wordpress_tables.sql").read_text()
        blocks = re.findall(r"CREATE TABLE `\{prefix\}aurareels_social_[a-z]+` \(.*?\) ENGINE=InnoDB[^;]*;", source, re.S)
        blocks = [b.replace("{prefix}", "wp_") for b in blocks]
    assert len(blocks) == 3
    return [b.replace("`wp_aurareels", f"`{prefix}aurareels") for b in blocks]


def test_sql_copy_is_the_seed_verbatim():
    if not SEED.exists():
        pytest.skip("shared/seeds is not beside this clone")
    ours = (Path(__file__).resolve().parents[1] / "sql/mysql/0000_wordpress_tables.sql").read_text()
    for block in seed_ddl("{prefix}"):
        assert block in ours


def test_migrate_on_plugin_created_tables_keeps_rows_and_lists_account(fresh_database, redis_client):
    db = fresh_database()
    with mysql_connect(db) as conn:
        cur = conn.cursor()
        for statement in seed_ddl():
            cur.execute(statement)
        # An account written the way the PHP plugin writes it: CBC token, naive local DATETIMEs.
        cur.execute(
            "INSERT INTO wp_aurareels_social_accounts (wp_user_id, platform, account_id, account_name, "
            "account_username, access_token, refresh_token, token_expires_at) VALUES "
            "(42, 'tiktok', 'open-id-1', 'Creator', '@creator', %s, %s, '2030-01-01 00:00:00')",
            (legacy_encrypt(VAULT_KEY, "act.plugin-token"), legacy_encrypt(VAULT_KEY, "rft.plugin-refresh")),
        )
        cur.execute(
            "INSERT INTO wp_aurareels_social_posts (wp_user_id, video_job_id, social_account_id, platform, status, "
            "video_url) VALUES (42, 'job-1', LAST_INSERT_ID(), 'tiktok', 'scheduled', 'https://cdn.example/v.mp4')"
        )

    url = mysql_url(db)
    engine = make_engine(url)
    first = migrate(engine, "wp_")
    assert first == ["0000", "0001", "0002", "0003", "0004", "0006", "0008", "0009"]
    assert migrate(engine, "wp_") == []  # idempotent

    rt = Runtime.from_settings(Settings.from_env(base_env(AURAREELS_DATABASE_URL=url)), engine=engine)
    accounts = list_accounts(rt, 42)
    assert [a["account_name"] for a in accounts] == ["Creator"]
    assert accounts[0]["token_expires_at"] == "2030-01-01 00:00:00"
    assert list_accounts(rt, 43) == []
    with engine.connect() as conn:
        row = conn.execute(text("SELECT access_token, refresh_token FROM wp_aurareels_social_accounts")).one()
        assert conn.execute(text("SELECT COUNT(*) FROM wp_aurareels_social_posts")).scalar() == 1
        # The ENUMs now take the two new platforms, and old values still read back.
        conn.execute(text(
            "INSERT INTO wp_aurareels_social_accounts (wp_user_id, platform, account_id, account_name, access_token)"
            " VALUES (42, 'linkedin', 'urn', 'LI', 'x')"))
        platforms = {r[0] for r in conn.execute(text("SELECT platform FROM wp_aurareels_social_accounts"))}
        assert platforms == {"tiktok", "linkedin"}
    assert rt.vault.decrypt(row.access_token) == "act.plugin-token"
    assert rt.vault.decrypt(row.refresh_token) == "rft.plugin-refresh"
    engine.dispose()


def test_migrate_from_empty_database_matches_the_mappings(fresh_database):
    url = mysql_url(fresh_database())
    engine = make_engine(url)
    migrate(engine, "xy_")
    insp = inspect(engine)
    from bridge.store.tables import Tables

    tables = Tables("xy_")
    for table in (tables.accounts, tables.posts, tables.analytics, tables.videos, tables.analytics_history,
                  tables.templates, tables.hashtag_groups, tables.first_comments):
        db_columns = {c["name"] for c in insp.get_columns(table.name)}
        assert {c.name for c in table.columns} <= db_columns, table.name
    indexes = {i["name"] for i in insp.get_indexes("xy_aurareels_social_posts")}
    assert {"user_posts", "scheduled_posts", "video_job", "social_account", "platform_status", "bridge_user_created",
            "bridge_user_published", "bridge_published", "bridge_group"} <= indexes
    assert {"bridge_history_post"} <= {i["name"] for i in insp.get_indexes("xy_aurareels_social_analytics_history")}
    assert {"bridge_next_sync"} <= {i["name"] for i in insp.get_indexes("xy_aurareels_social_analytics")}
    columns = {c["name"]: c for c in insp.get_columns("xy_aurareels_social_posts")}
    assert "enum" in str(columns["status"]["type"]).lower()
    engine.dispose()


def test_migrate_sqlite_embedded(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    assert migrate(engine, "wp_") == ["0000", "0001", "0002", "0003", "0004", "0006", "0008", "0009"]
    assert migrate(engine, "wp_") == []
    assert "wp_aurareels_social_posts" in inspect(engine).get_table_names()


def test_mysql_sessions_run_in_utc(shared_engine):
    with shared_engine.connect() as conn:
        assert conn.execute(text("SELECT @@session.time_zone")).scalar() == "+00:00"
