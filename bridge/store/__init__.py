"""Tables and queries. MySQL (MariaDB) is the source of truth; SQLite serves the embedded run."""
