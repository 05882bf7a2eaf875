"""`docker-compose.yml`: the production layout on one machine, checked without Docker.

The file is read as YAML, its `${...}` values are filled the way Compose fills them, and the result
is validated against the Compose Specification's own JSON schema (`tests/data/compose-spec.json`,
from the compose-spec repository, Apache-2.0). Then: the services and their commands, settings
that the bridge accepts and the README documents, `.env.example` naming every value the file asks
for, and health checks that agree with the Dockerfile and the code they probe.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from bridge.config import Settings
from bridge.queue import HEARTBEAT_PREFIX

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
GIVEN = {"AURAREELS_DB_PASSWORD": "db-pw", "JWT_AUTH_SECRET_KEY": "jwt-secret-for-the-check",
         "AURAREELS_WP_URL": "https://site.example"}


def interpolate(value, env: dict[str, str]):
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (the forms the file uses)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match):
        name, kind, word = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if kind in (":-", "-"):
            return current if current else word
        if kind in (":?", "?") and not current:
            raise KeyError(f"{name}: {word}")
        return current or ""

    return VARIABLE.sub(fill, value)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, GIVEN)


def command(service: dict) -> list[str]:
    return service["command"] if isinstance(service["command"], list) else shlex.split(service["command"])


def test_the_file_is_valid_against_the_compose_specification(compose):
    validator = jsonschema.Draft7Validator(json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text()))
    validator.validate(compose)
    typo = json.loads(json.dumps(compose))
    typo["services"]["worker"]["healthchek"] = typo["services"]["worker"].pop("healthcheck")
    assert not validator.is_valid(typo)  # the schema does refuse what Compose would refuse


def test_required_values_stop_compose_with_their_name(raw):
    for name in GIVEN:
        with pytest.raises(KeyError, match=name):
            interpolate(raw, {k: v for k, v in GIVEN.items() if k != name})


def test_the_services_are_the_production_layout(compose):
    services = compose["services"]
    assert set(services) == {"mariadb", "redis", "migrate", "sandbox", "api", "worker", "n8n"}
    assert command(services["api"])[0] == "gunicorn" and command(services["api"])[-1] == "wsgi:app"
    assert command(services["worker"]) == ["aurareels-bridge", "worker"]
    assert command(services["migrate"]) == ["aurareels-bridge", "migrate"]
    assert command(services["sandbox"])[:2] == ["aurareels-bridge", "sandbox"]
    for name in ("api", "worker", "migrate", "sandbox"):
        assert services[name]["build"] == "." and services[name]["image"] == "aurareels-bridge:local"
    assert services["n8n"]["profiles"] == ["n8n"]  # optional: only with --profile n8n
    assert all("profiles" not in s for n, s in services.items() if n != "n8n")
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["mariadb"]["condition"] == "service_healthy"
    assert services["api"]["ports"] == ["8080:8080"]


def test_every_bridge_process_gets_settings_the_bridge_accepts(compose):
    for name in ("api", "worker", "migrate", "sandbox"):
        settings = Settings.from_env(compose["services"][name]["environment"])
        assert settings.database_url == "mysql+pymysql://bridge:db-pw@mariadb:3306/wordpress"
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.sandbox and settings.sandbox_url == "http://sandbox:9100"
        assert (settings.public_url, settings.frontend_url) == ("http://127.0.0.1:8080", "http://127.0.0.1:8080")
    mariadb = compose["services"]["mariadb"]["environment"]
    assert (mariadb["MARIADB_USER"], mariadb["MARIADB_PASSWORD"], mariadb["MARIADB_DATABASE"]) == (
        "bridge", "db-pw", "wordpress")
    sandbox = command(compose["services"]["sandbox"])
    assert sandbox[sandbox.index("--port") + 1] == "9100" and sandbox[sandbox.index("--host") + 1] == "0.0.0.0"


def test_the_readme_documents_every_setting_and_the_example_names_every_value(raw):
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", readme, flags=re.M))
    documented |= {n for cell in re.findall(r"^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)+) \|", readme, flags=re.M)
                   for n in re.findall(r"`([A-Z0-9_]+)`", cell)}
    assert set(raw["x-bridge-env"]) - documented == set()
    asked = {match[0] for match in VARIABLE.findall(COMPOSE.read_text())}
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert asked - example - {"AURAREELS_TABLE_PREFIX", "AURAREELS_SOCIAL_ENCRYPTION_OLD_KEYS", "AURAREELS_TIMEZONE",
                              "N8N_PORT"} == set()
    assert example - asked == set()
    assert "docker compose up" in readme.split("## Commands", 1)[0]  # beside the quick start


def test_the_health_checks_probe_what_the_code_serves(compose):
    services = compose["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    api = services["api"]["healthcheck"]["test"]
    assert api[:2] == ["CMD", "python"] and f'CMD {api[1]} {api[2]} "{api[3]}"' in dockerfile.replace("\\\n  ", "")
    assert "'http://127.0.0.1:8080/health'" in api[3] and "--bind" in command(services["api"])
    bind = command(services["api"])[command(services["api"]).index("--bind") + 1]
    assert bind == "0.0.0.0:8080" and services["api"]["ports"][0].endswith(":8080")
    assert f"'{HEARTBEAT_PREFIX}%s.1'" in services["worker"]["healthcheck"]["test"][3]
    assert "http://127.0.0.1:9100/_sandbox/control/state/" in services["sandbox"]["healthcheck"]["test"][3]
    assert services["mariadb"]["healthcheck"]["test"][1] == "healthcheck.sh"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name, service in services.items():  # a dependency waited on as healthy has a health check
        for needed, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] == "service_healthy":
                assert "test" in services[needed]["healthcheck"], (name, needed)
