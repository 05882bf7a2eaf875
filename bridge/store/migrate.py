"""`aurareels-bridge migrate`: apply the numbered files of `sql/<dialect>/` that are missing.

What was applied is recorded in `{prefix}aurareels_bridge_migrations`. Every file is additive
(new tables, columns with defaults, indexes, appended ENUM values), and the seed tables are
created with IF NOT EXISTS, so running it on a database where the WordPress plugin already
created the tables and holds rows changes no row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from bridge.store.db import utcnow

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    def statements(self, prefix: str, dialect: str) -> list[str]:
        body = "\n".join(line for line in self.path.read_text().splitlines() if not line.lstrip().startswith("--"))
        body = body.replace("{prefix}", prefix)
        if dialect == "mysql":
            body = re.sub(r"CREATE TABLE `", "CREATE TABLE IF NOT EXISTS `", body)
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def _dialect_dir(engine: Engine) -> str:
    return "sqlite" if engine.dialect.name == "sqlite" else "mysql"


def available(engine: Engine) -> list[Migration]:
    folder = SQL_DIR / _dialect_dir(engine)
    found = []
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), path))
    return found


def _ledger(prefix: str) -> str:
    return f"{prefix}aurareels_bridge_migrations"


def applied_versions(engine: Engine, prefix: str) -> set[str]:
    with engine.connect() as conn:
        _ensure_ledger(conn, prefix, engine.dialect.name)
        conn.commit()
        rows = conn.execute(text(f"SELECT version FROM {_q(engine, _ledger(prefix))}"))
        return {r[0] for r in rows}


def _q(engine: Engine, name: str) -> str:
    return f"`{name}`" if engine.dialect.name != "sqlite" else f'"{name}"'


def _ensure_ledger(conn, prefix: str, dialect: str) -> None:
    if dialect == "sqlite":
        conn.execute(text(
            f'CREATE TABLE IF NOT EXISTS "{_ledger(prefix)}" '
            '("version" VARCHAR(16) PRIMARY KEY, "name" VARCHAR(128) NOT NULL, "applied_at" DATETIME NOT NULL)'
        ))
    else:
        conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS `{_ledger(prefix)}` (`version` VARCHAR(16) NOT NULL PRIMARY KEY, "
            "`name` VARCHAR(128) NOT NULL, `applied_at` DATETIME NOT NULL) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        ))


def migrate(engine: Engine, prefix: str) -> list[str]:
    """Apply what is missing; return the versions applied now (empty when up to date)."""
    dialect = engine.dialect.name
    done_now: list[str] = []
    with engine.connect() as conn:
        if dialect != "sqlite":
            # Two `migrate` runs at once (several deploys) take turns.
            got = conn.execute(text("SELECT GET_LOCK(:n, 60)"), {"n": _ledger(prefix)}).scalar()
            if got != 1:
                raise RuntimeError("another migrate holds the migration lock; try again")
        try:
            _ensure_ledger(conn, prefix, dialect)
            conn.commit()
            done = {r[0] for r in conn.execute(text(f"SELECT version FROM {_q(engine, _ledger(prefix))}"))}
            for migration in available(engine):
                if migration.version in done:
                    continue
                for statement in migration.statements(prefix, "sqlite" if dialect == "sqlite" else "mysql"):
                    conn.exec_driver_sql(statement)
                conn.execute(
                    text(f"INSERT INTO {_q(engine, _ledger(prefix))} (version, name, applied_at) VALUES (:v, :n, :t)"),
                    {"v": migration.version, "n": migration.name, "t": utcnow()},
                )
                conn.commit()
                done_now.append(migration.version)
        finally:
            if dialect != "sqlite":
                conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _ledger(prefix)})
                conn.commit()
    return done_now
