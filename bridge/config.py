"""Settings: every environment variable of the outer interface, read once.

`Settings.from_env()` is the only place that reads the environment. A missing or malformed
required value raises `ConfigError` whose message is one line naming the variable; the CLI
prints that line and exits.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.platforms.registry import PLATFORMS  # the one list of platforms

DEFAULT_STATE_DIR = Path(os.path.expanduser("~")) / ".aurareels-bridge"
DEFAULT_MEDIA_MAX_BYTES = 4 * 1024 ** 3
DEFAULT_CONCURRENCY = 20


class ConfigError(Exception):
    """A configuration value is missing or malformed. The message names the variable."""


@dataclass(frozen=True)
class AppCredentials:
    client_id: str | None
    client_secret: str | None = field(repr=False)
    config_id: str | None = None  # Facebook Login for Business configuration


@dataclass(frozen=True)
class Settings:
    database_url: str
    table_prefix: str
    redis_url: str | None
    encryption_key: str = field(repr=False)
    encryption_old_keys: tuple[str, ...] = field(repr=False)
    jwt_secret: str = field(repr=False)
    jwt_algorithm: str
    jwt_leeway: int
    wp_url: str
    n8n_api_key: str | None = field(repr=False)
    n8n_scheduler_webhook: str | None
    scheduler: str
    public_url: str
    frontend_url: str
    timezone: str
    sandbox: bool
    host_map: Mapping[str, str]
    media_hosts_allowed: tuple[str, ...]
    credentials: Mapping[str, AppCredentials] = field(repr=False)
    meta_webhook_verify_token: str | None = field(repr=False)
    # the platforms' own settings (each client declares its `env_settings`), by variable name
    platform_env: Mapping[str, str] = field(default_factory=dict)
    http_timeout: float = 60.0
    max_body_bytes: int = 1_048_576
    # the shared sandbox server every process of a sandbox deployment talks to (None: found in Redis)
    sandbox_url: str | None = None
    # the largest media file read, per file (a platform's own limit applies below it)
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES
    # create requests per user per minute; 0 turns the limit off
    rate_limit: int = 60
    # a connect is attached only once the dashboard confirms it (see bridge.services.oauth)
    oauth_confirm: bool = True
    # The publishing engine (see the README's "Publishing engine").
    sweep_seconds: float = 30.0
    lease_seconds: int = 90
    prearm_seconds: float = 60.0
    missed_after_hours: float = 24.0
    quota_limits: Mapping[str, int] = field(default_factory=dict)  # posts per 24 h, where set
    concurrency_caps: Mapping[str, int] = field(default_factory=dict)  # uploads in flight, where set
    failpoint: str | None = None  # crash tests only

    @property
    def missed_after(self) -> timedelta:
        return timedelta(hours=self.missed_after_hours)

    def concurrency_cap(self, platform: str) -> int:
        """The fleet-wide number of `platform` uploads in flight at once."""
        return self.concurrency_caps.get(platform, DEFAULT_CONCURRENCY)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def redirect_base(self) -> str:
        return f"{self.public_url}/wp-json/aurareels/v1/social/callback"

    def redirect_uri(self, platform: str) -> str:
        return f"{self.redirect_base}/{platform}"

    def table(self, name: str) -> str:
        return f"{self.table_prefix}{name}"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, embedded: bool = False) -> "Settings":
        """Read the environment. `embedded` (the `up` command) fills unset URLs and secrets with
        local defaults so that a newcomer can run the system with nothing configured."""
        env = dict(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            value = value.strip()
            return value or None

        sandbox = _bool(get("AURAREELS_SANDBOX"), "AURAREELS_SANDBOX", default=embedded)
        state_dir = Path(get("AURAREELS_STATE_DIR") or DEFAULT_STATE_DIR)

        database_url = get("AURAREELS_DATABASE_URL")
        if not database_url:
            state_dir.mkdir(parents=True, exist_ok=True)
            database_url = f"sqlite:///{state_dir / 'bridge.sqlite3'}"
        _check_database_url(database_url)

        prefix = get("AURAREELS_TABLE_PREFIX") or "wp_"
        if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", prefix):
            raise ConfigError("AURAREELS_TABLE_PREFIX must be letters, digits and underscores")

        redis_url = get("AURAREELS_REDIS_URL")
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("AURAREELS_REDIS_URL must be a redis:// or rediss:// URL")

        jwt_secret = get("JWT_AUTH_SECRET_KEY")
        wp_url = get("AURAREELS_WP_URL")
        encryption_key = get("AURAREELS_SOCIAL_ENCRYPTION_KEY")
        n8n_api_key = get("N8N_API_KEY")
        if embedded:
            secrets = _embedded_secrets(state_dir)
            jwt_secret = jwt_secret or secrets["jwt"]
            encryption_key = encryption_key or secrets["vault"]
            n8n_api_key = n8n_api_key or secrets["internal"]
        if not jwt_secret:
            raise ConfigError("JWT_AUTH_SECRET_KEY is required (the WordPress JWT plugin's secret)")
        public_url = _url(get("AURAREELS_PUBLIC_URL") or "http://127.0.0.1:8080", "AURAREELS_PUBLIC_URL")
        if not wp_url:
            if not embedded:
                raise ConfigError("AURAREELS_WP_URL is required (the WordPress home URL)")
            wp_url = public_url
        wp_url = _url(wp_url, "AURAREELS_WP_URL")
        if not encryption_key:
            if not sandbox:
                raise ConfigError("AURAREELS_SOCIAL_ENCRYPTION_KEY is required outside sandbox mode")
            encryption_key = "aurareels-sandbox-only-key"
        old_keys = tuple(k.strip() for k in (get("AURAREELS_SOCIAL_ENCRYPTION_OLD_KEYS") or "").split(",") if k.strip())

        scheduler = (get("AURAREELS_SCHEDULER") or "rq").lower()
        if scheduler not in ("rq", "n8n"):
            raise ConfigError("AURAREELS_SCHEDULER must be 'rq' or 'n8n'")
        webhook = get("N8N_SCHEDULER_WEBHOOK")
        if webhook:
            webhook = _url(webhook, "N8N_SCHEDULER_WEBHOOK")

        timezone = get("AURAREELS_TIMEZONE") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"AURAREELS_TIMEZONE is not an IANA time zone name: {timezone!r}") from None

        host_map_raw = get("AURAREELS_HOST_MAP") or "{}"
        try:
            host_map = json.loads(host_map_raw)
        except json.JSONDecodeError:
            raise ConfigError("AURAREELS_HOST_MAP must be a JSON object of host -> base URL") from None
        if not isinstance(host_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in host_map.items()
        ):
            raise ConfigError("AURAREELS_HOST_MAP must be a JSON object of host -> base URL")
        host_map = {k.lower(): _url(v, "AURAREELS_HOST_MAP") for k, v in host_map.items()}

        media_hosts = tuple(
            h.strip().lower() for h in (get("AURAREELS_MEDIA_HOSTS_ALLOWED") or "").split(",") if h.strip()
        )
        credentials, platform_env = _platform_values(get)
        leeway_raw = get("AURAREELS_JWT_LEEWAY") or "60"
        if not leeway_raw.isdigit():
            raise ConfigError("AURAREELS_JWT_LEEWAY must be a whole number of seconds")
        algorithm = get("AURAREELS_JWT_ALGORITHM") or "HS256"
        if algorithm not in ("HS256", "HS384", "HS512"):
            raise ConfigError("AURAREELS_JWT_ALGORITHM must be HS256, HS384 or HS512")

        timeout_raw = get("AURAREELS_HTTP_TIMEOUT") or "60"
        try:
            http_timeout = float(timeout_raw)
            if http_timeout <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError("AURAREELS_HTTP_TIMEOUT must be a positive number of seconds") from None

        sandbox_url = get("AURAREELS_SANDBOX_URL")
        media_max_bytes = _count(get("AURAREELS_MEDIA_MAX_BYTES"), "AURAREELS_MEDIA_MAX_BYTES",
                                 default=DEFAULT_MEDIA_MAX_BYTES, minimum=1)
        rate_limit = _count(get("AURAREELS_RATE_LIMIT"), "AURAREELS_RATE_LIMIT", default=60, minimum=0)
        oauth_confirm = _bool(get("AURAREELS_OAUTH_CONFIRM"), "AURAREELS_OAUTH_CONFIRM", default=True)

        return cls(
            media_max_bytes=media_max_bytes,
            rate_limit=rate_limit,
            oauth_confirm=oauth_confirm,
            http_timeout=http_timeout,
            sandbox_url=_url(sandbox_url, "AURAREELS_SANDBOX_URL") if sandbox_url else None,
            sweep_seconds=_number(get("AURAREELS_SWEEP_SECONDS"), "AURAREELS_SWEEP_SECONDS", 30.0, minimum=0.5),
            lease_seconds=int(_number(get("AURAREELS_LEASE_SECONDS"), "AURAREELS_LEASE_SECONDS", 90, minimum=3)),
            prearm_seconds=_number(get("AURAREELS_PREARM_SECONDS"), "AURAREELS_PREARM_SECONDS", 60.0, minimum=0),
            missed_after_hours=_number(get("AURAREELS_MISSED_AFTER_HOURS"), "AURAREELS_MISSED_AFTER_HOURS", 24.0,
                                       minimum=0.01),
            quota_limits=_per_platform(get, "AURAREELS_QUOTA_", minimum=0),
            concurrency_caps=_per_platform(get, "AURAREELS_CONCURRENCY_", minimum=1),
            failpoint=get("AURAREELS_FAILPOINT"),
            database_url=database_url,
            table_prefix=prefix,
            redis_url=redis_url,
            encryption_key=encryption_key,
            encryption_old_keys=old_keys,
            jwt_secret=jwt_secret,
            jwt_algorithm=algorithm,
            jwt_leeway=int(leeway_raw),
            wp_url=wp_url,
            n8n_api_key=n8n_api_key,
            n8n_scheduler_webhook=webhook,
            scheduler=scheduler,
            public_url=public_url,
            frontend_url=_url(get("AURAREELS_FRONTEND_URL") or public_url, "AURAREELS_FRONTEND_URL"),
            timezone=timezone,
            sandbox=sandbox,
            host_map=host_map,
            media_hosts_allowed=media_hosts,
            credentials=credentials,
            meta_webhook_verify_token=get("META_WEBHOOK_VERIFY_TOKEN"),
            platform_env=platform_env,
        )


def shared_sandbox_settings(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(AURAREELS_REDIS_URL, AURAREELS_SANDBOX_URL) for the `sandbox` command, which needs nothing
    else (no secret, no database): the Redis it registers in and the address it advertises."""
    env = os.environ if environ is None else environ
    redis_url = (env.get("AURAREELS_REDIS_URL") or "").strip() or None
    if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("AURAREELS_REDIS_URL must be a redis:// or rediss:// URL")
    sandbox_url = (env.get("AURAREELS_SANDBOX_URL") or "").strip() or None
    return redis_url, _url(sandbox_url, "AURAREELS_SANDBOX_URL") if sandbox_url else None


def _platform_values(get) -> tuple[dict[str, AppCredentials], dict[str, str]]:
    """Each platform's app credentials and settings, from the variables its client declares."""
    from bridge.platforms.registry import client_classes

    credentials: dict[str, AppCredentials] = {}
    values: dict[str, str] = {}
    for platform, cls in client_classes().items():
        names = cls.credential_vars
        credentials[platform] = AppCredentials(get(names.client_id), get(names.client_secret),
                                               get(names.config_id) if names.config_id else None)
        for setting in cls.env_settings:
            raw = get(setting.name)
            if raw is None or setting.name in values:
                continue
            if not re.fullmatch(setting.pattern, raw):
                raise ConfigError(f"{setting.name} must be {setting.meaning}")
            values[setting.name] = raw
    return credentials, values


def _bool(raw: str | None, name: str, *, default: bool) -> bool:
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0")


def _count(raw: str | None, name: str, *, default: int, minimum: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}")
    return int(raw)
def _number(raw: str | None, name: str, default: float, *, minimum: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if not value >= minimum:
        raise ConfigError(f"{name} must be a number of at least {minimum:g}")
    return value


def _per_platform(get, prefix: str, *, minimum: int) -> dict[str, int]:
    """`{prefix}{PLATFORM}` for each platform where it is set, as whole numbers."""
    found = {}
    for platform in PLATFORMS:
        name = f"{prefix}{platform.upper()}"
        raw = get(name)
        if raw is None:
            continue
        if not raw.isdigit() or int(raw) < minimum:
            raise ConfigError(f"{name} must be a whole number of at least {minimum}")
        found[platform] = int(raw)
    return found


def _url(raw: str, name: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL")
    return raw.rstrip("/")


def _check_database_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if not (scheme.startswith("mysql") or scheme.startswith("mariadb") or scheme.startswith("sqlite")):
        raise ConfigError("AURAREELS_DATABASE_URL must be a mysql+pymysql:// or sqlite:/// URL")


def _embedded_secrets(state_dir: Path) -> dict[str, str]:
    """Secrets for the all-in-one `up` run: generated once and kept in the state folder, so a
    restart keeps decrypting its tokens and accepting the demo login."""
    import secrets as _secrets

    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "embedded-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {key: _secrets.token_urlsafe(32) for key in ("jwt", "vault", "internal")}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values
