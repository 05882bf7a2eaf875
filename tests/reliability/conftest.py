"""Fixtures of the reliability runs (`scripts/reliability`): their own Redis and MariaDB servers.

AURAREELS_RELIABILITY_MODE=quick|full picks the sizes (tests/reliability/harness.py `scale`).
"""
from __future__ import annotations

import os

import pytest

from tests.reliability.harness import RESULTS, OwnMariaDB, OwnRedis


def mode() -> str:
    return os.environ.get("AURAREELS_RELIABILITY_MODE", "quick")


@pytest.fixture(scope="session")
def own_redis():
    server = OwnRedis().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def own_mariadb():
    if not OwnMariaDB.available():
        pytest.skip("mariadbd and mariadb-install-db are needed for the reliability runs")
    server = OwnMariaDB(RESULTS / "mariadb" / "data").start()
    yield server
    server.stop()


def assert_no_secret_in(paths, watch) -> None:
    """The run's worker logs hold no fake secret and no token the emulators issued."""
    before = len(watch.leaks)
    for path in paths:
        watch.scan_file(str(path))
    leaks = watch.leaks[before:]
    assert not leaks, [str(leak) for leak in leaks[:10]]
