"""The WordPress plugin in a real WordPress, in front of a real bridge (run with scripts/test-wordpress).

A copy of the Debian `wordpress` package is installed into a fresh MariaDB database with a PHP
script that calls wp_install() (no network), the plugin goes into wp-content/mu-plugins/, and
WordPress is served by `php -S` with a router that sends every path that is not a file to
index.php, so pretty permalinks (/wp-json/...) work. The bridge runs as `aurareels-bridge up`
(sandbox platforms) on the same database and on Redis database 10, with the WordPress URL as its
public URL, so OAuth redirects come back through WordPress. Everything below talks to the
WordPress URL, and compares with the bridge's direct answer where that says something.

The tables' side: in other fresh databases the plugin's activation function and the bridge's
`migrate` run in both orders, and on tables created by the original DDL.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pymysql
import pytest
import redis as redis_lib

from bridge.crypto import legacy_encrypt
from tests.conftest import JWT_SECRET, make_jwt, mysql_connect, mysql_url, wait_for

pytestmark = pytest.mark.wordpress

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "wordpress" / "aurareels-social-bridge.php"
WP_SOURCE = Path(os.environ.get("AURAREELS_TEST_WORDPRESS_DIR", "/usr/share/wordpress"))
REDIS_URL = os.environ.get("AURAREELS_TEST_WORDPRESS_REDIS_URL", "redis://127.0.0.1:6379/10")
NS = "/wp-json/aurareels/v1/social"
VAULT_KEY = "wp-test-vault-key-" + secrets.token_hex(8)
INTERNAL_KEY = "wp-test-internal-key-" + secrets.token_hex(8)
META_VERIFY = "wp-test-meta-verify-" + secrets.token_hex(4)
FRONTEND = "https://app.aurareels.test"
SANDBOX_VIDEO = "https://media.sandbox.aurareels.test/videos/clip.mp4?size=3000000&duration=20"
PLATFORMS = ("tiktok", "instagram", "facebook", "youtube", "twitter", "linkedin")


# ------------------------------------------------------------------------------------ helpers
def _php() -> str:
    php = shutil.which("php")
    if not php or not (WP_SOURCE / "wp-settings.php").is_file():
        pytest.fail("PHP and WordPress are needed for these tests: run scripts/test-wordpress "
                    "(it installs the Debian packages wordpress php-cli php-mysql php-curl)", False)
    return php


def _bridge_command() -> list[str]:
    script = ROOT / ".venv" / "bin" / "aurareels-bridge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bridge.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database() -> str:
    name = f"aurareels_wp_{uuid.uuid4().hex[:10]}"
    try:
        conn = mysql_connect()
    except pymysql.err.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"MariaDB is not reachable ({exc}); run scripts/services first", False)
    with conn:
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return name


def drop_database(name: str) -> None:
    with mysql_connect() as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def query(db: str, sql: str, args=None) -> list[tuple]:
    with mysql_connect(db) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return list(cur.fetchall())


def bridge_env(db: str, wp_url: str, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AURAREELS_DATABASE_URL": mysql_url(db),
        "AURAREELS_TABLE_PREFIX": "wp_",
        "AURAREELS_REDIS_URL": REDIS_URL,
        "AURAREELS_SANDBOX": "1",
        "AURAREELS_SOCIAL_ENCRYPTION_KEY": VAULT_KEY,
        "JWT_AUTH_SECRET_KEY": JWT_SECRET,
        "AURAREELS_WP_URL": wp_url,
        "AURAREELS_PUBLIC_URL": wp_url,
        "AURAREELS_FRONTEND_URL": FRONTEND,
        "N8N_API_KEY": INTERNAL_KEY,
        "META_WEBHOOK_VERIFY_TOKEN": META_VERIFY,
        "AURAREELS_STATE_DIR": str(tmp / "bridge-state"),
    })
    return env


def migrate(db: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_bridge_command() + ["migrate"], env=bridge_env(db, "http://127.0.0.1", tmp),
                          capture_output=True, text=True, timeout=120)


ROUTER = r"""<?php
// php -S router: real files are served as they are, everything else goes to WordPress's index.php
// (what Apache's or nginx's WordPress rewrite rules do), so /wp-json/... permalinks work.
$path = urldecode( parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
if ( '/' !== $path && is_file( __DIR__ . $path ) ) {
    return false;
}
$_SERVER['SCRIPT_NAME']     = '/index.php';
$_SERVER['PHP_SELF']        = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = __DIR__ . '/index.php';
require __DIR__ . '/index.php';
"""

INSTALL = r"""<?php
// Installs WordPress into the configured (empty) database without any network access.
define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST']       = parse_url( getenv( 'AURAREELS_TEST_WP_URL' ), PHP_URL_HOST );
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['REQUEST_METHOD']  = 'GET';
require __DIR__ . '/wp-load.php';
add_filter( 'pre_http_request', function () { return new WP_Error( 'offline', 'no network in tests' ); } );
function wp_new_blog_notification() {}  // pluggable: no mail
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$result = wp_install( 'AuraReels test site', 'admin', 'admin@example.com', true, '', wp_generate_password( 24 ) );
update_option( 'permalink_structure', '/%postname%/' );
delete_option( 'rewrite_rules' );  // rebuilt on the first request, with the REST rules
echo json_encode( array( 'user_id' => $result['user_id'], 'installed' => is_blog_installed() ) );
"""


class WordPress:
    """A copy of /usr/share/wordpress with its own wp-config.php, installed into `db`."""

    def __init__(self, root: Path, db: str, url: str, bridge_url: str | None, with_plugin: bool):
        self.root, self.db, self.url, self.bridge_url = root, db, url, bridge_url
        self.proc: subprocess.Popen | None = None
        shutil.copytree(WP_SOURCE, root, symlinks=True)
        (root / "wp-config.php").unlink(missing_ok=True)
        (root / ".htaccess").unlink(missing_ok=True)
        self.debug_log = root / "wp-content" / "debug.log"
        keys = "\n".join(
            f"define( '{k}', '{secrets.token_hex(24)}' );" for k in (
                "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
                "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
        bridge = ""
        if bridge_url:
            # The test sends X-Test-No-Bridge to see the site of an operator who forgot the constant.
            bridge = (f"if ( empty( $_SERVER['HTTP_X_TEST_NO_BRIDGE'] ) ) {{ "
                      f"define( 'AURAREELS_BRIDGE_URL', '{bridge_url}' ); define( 'AURAREELS_BRIDGE_TIMEOUT', 20 ); }}")
        (root / "wp-config.php").write_text(f"""<?php
define( 'DB_NAME', getenv( 'AURAREELS_TEST_DB' ) ?: '{db}' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', '127.0.0.1:3306' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
{keys}
$table_prefix = 'wp_';
define( 'WP_HOME', '{url}' );
define( 'WP_SITEURL', '{url}' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', '{self.debug_log}' );
define( 'DISABLE_WP_CRON', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
{bridge}
if ( ! defined( 'ABSPATH' ) ) {{ define( 'ABSPATH', __DIR__ . '/' ); }}
require_once ABSPATH . 'wp-settings.php';
""")
        (root / "router.php").write_text(ROUTER)
        (root / "aurareels-install.php").write_text(INSTALL)
        if with_plugin:
            self.add_plugin()

    def add_plugin(self) -> None:
        mu = self.root / "wp-content" / "mu-plugins"
        mu.mkdir(exist_ok=True)
        shutil.copy(PLUGIN, mu / PLUGIN.name)

    def php(self, script: str, db: str | None = None, *args: str) -> str:
        path = self.root / f"aurareels-run-{uuid.uuid4().hex[:8]}.php"
        path.write_text(script)
        env = dict(os.environ, AURAREELS_TEST_DB=db or self.db, AURAREELS_TEST_WP_URL=self.url)
        try:
            done = subprocess.run([_php(), str(path), *args], cwd=self.root, env=env, capture_output=True,
                                  text=True, timeout=120)
        finally:
            path.unlink(missing_ok=True)
        assert done.returncode == 0, f"php failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def install(self, db: str | None = None) -> dict:
        out = self.php(INSTALL, db)
        answer = json.loads(out[out.index("{"):])
        assert answer["installed"] is True, out
        return answer

    def start(self, port: int) -> None:
        self.log = open(self.root.parent / f"php-server-{port}.log", "ab")
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS="4")
        self.proc = subprocess.Popen([_php(), "-S", f"127.0.0.1:{port}", "-t", str(self.root),
                                      str(self.root / "router.php")], cwd=self.root, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        def up():
            try:
                return httpx.get(f"{self.url}/wp-json/", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, interval=0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        if self.proc:
            self.log.close()


class Bridge:
    """`aurareels-bridge up` on the site's database, sandbox platforms, Redis database 10."""

    def __init__(self, db: str, port: int, wp_url: str, tmp: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.port, self.env, self.tmp = port, bridge_env(db, wp_url, tmp), tmp
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log = open(self.tmp / f"bridge-{self.port}.log", "ab")
        self.proc = subprocess.Popen(_bridge_command() + ["up", "--host", "127.0.0.1", "--port", str(self.port)],
                                     cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            assert self.proc.poll() is None, f"the bridge exited; see {self.log.name}"
            try:
                return httpx.get(f"{self.url}{NS}/health", timeout=5).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=90, interval=0.3)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc:
            self.log.close()
        self.proc = None


class Site:
    def __init__(self, wp: WordPress, bridge: Bridge, db: str):
        self.wp, self.bridge, self.db = wp, bridge, db
        self.http = httpx.Client(timeout=60, follow_redirects=False)

    def via_wp(self, method: str, path: str, **kw) -> httpx.Response:
        return self.http.request(method, f"{self.wp.url}{NS}{path}", **kw)

    def direct(self, method: str, path: str, **kw) -> httpx.Response:
        return self.http.request(method, f"{self.bridge.url}{NS}{path}", **kw)

    def token(self, user_id: int, **kw) -> str:
        return make_jwt(user_id, iss=self.wp.url, **kw)

    def auth(self, user_id: int, **kw) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, **kw)}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _php()
    redis_client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        redis_client.ping()
    except redis_lib.exceptions.ConnectionError:  # pragma: no cover - environment problem
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; run scripts/services first", False)
    redis_client.flushdb()
    tmp = tmp_path_factory.mktemp("wordpress")
    db = create_database()
    wp_port, bridge_port = free_port(), free_port()
    wp_url = f"http://127.0.0.1:{wp_port}"
    wp = WordPress(tmp / "site", db, wp_url, f"http://127.0.0.1:{bridge_port}", with_plugin=False)
    bridge = Bridge(db, bridge_port, wp_url, tmp)
    try:
        wp.install()
        wp.add_plugin()  # as an operator does: into mu-plugins of an installed site
        bridge.start()   # `up` migrates the site's database first
        wp.start(wp_port)
        yield Site(wp, bridge, db)
    finally:
        wp.stop()
        bridge.stop()
        drop_database(db)
        redis_client.flushdb()


@pytest.fixture(scope="module")
def plain_wp(tmp_path_factory):
    """A WordPress copy without the plugin, for running the activation function from PHP in other
    fresh databases (DB_NAME comes from AURAREELS_TEST_DB)."""
    _php()
    tmp = tmp_path_factory.mktemp("wordpress-plain")
    made: list[str] = []
    wp = WordPress(tmp / "site", "unused", "http://127.0.0.1", None, with_plugin=False)

    def fresh_site() -> str:
        db = create_database()
        made.append(db)
        wp.install(db)
        return db

    wp.fresh_site = fresh_site
    wp.tmp = tmp
    yield wp
    for db in made:
        drop_database(db)


ACTIVATE = r"""<?php
// Loads WordPress, then the plugin file as WordPress would on activation, and runs the activation.
$_SERVER['HTTP_HOST'] = 'localhost'; $_SERVER['REQUEST_URI'] = '/'; $_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
require __DIR__ . '/wp-load.php';
require_once $argv[1];
$wpdb->show_errors( false );
$changes = aurareels_social_bridge_activate();
echo json_encode( array( 'changes' => $changes, 'last_error' => $wpdb->last_error,
    'option' => get_option( 'aurareels_social_bridge_schema' ) ) );
"""


def activate(wp: WordPress, db: str) -> dict:
    out = wp.php(ACTIVATE, db, str(PLUGIN))
    return json.loads(out[out.index("{"):])


def columns(db: str, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in query(db, f"SHOW COLUMNS FROM `{table}`")}


def foreign_keys(db: str) -> set[tuple[str, str, str]]:
    return set(query(db, "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE "
                         "WHERE TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME IS NOT NULL", (db,)))


EXPECTED_FKS = {("wp_aurareels_social_posts", "social_account_id", "wp_aurareels_social_accounts"),
                ("wp_aurareels_social_analytics", "social_post_id", "wp_aurareels_social_posts")}
# `migrate` adds the analytics history table (sql/mysql/0009), whose rows go with their post.
MIGRATED_FKS = EXPECTED_FKS | {("wp_aurareels_social_analytics_history", "social_post_id", "wp_aurareels_social_posts")}
SIX = "enum('tiktok','instagram','facebook','youtube','twitter','linkedin')"


def insert_account(db: str, user_id: int, platform: str = "tiktok", name: str | None = None) -> int:
    """An account row as the PHP plugin writes it (legacy AES-256-CBC token)."""
    with mysql_connect(db) as conn:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO wp_aurareels_social_accounts (wp_user_id, platform, account_id, account_name, account_username,"
            " access_token, refresh_token, token_expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, '2030-01-01 00:00:00')",
            (user_id, platform, f"{platform}-{user_id}-{uuid.uuid4().hex[:6]}", name or f"{platform} of {user_id}",
             f"@{platform}{user_id}", legacy_encrypt(VAULT_KEY, "act.legacy"), legacy_encrypt(VAULT_KEY, "rft.legacy")))
        return cur.lastrowid


def insert_video(db: str, user_id: int) -> str:
    job_id = f"job-{uuid.uuid4()}"
    query(db, "INSERT INTO wp_chavetas_video_uploader (job_id, wp_user_id, mp4_url, thumbnail_url) VALUES (%s, %s, %s, %s)",
          (job_id, user_id, SANDBOX_VIDEO, "https://media.sandbox.aurareels.test/images/t.jpg"))
    return job_id


def publish_platform() -> str:
    """TikTok; while its module is being written, whichever platform module exists."""
    folder = ROOT / "bridge" / "platforms"
    for name in ("tiktok", "youtube", "linkedin", "twitter", "instagram", "facebook"):
        if (folder / f"{name}.py").exists():
            return name
    pytest.fail("no platform module under bridge/platforms/")


def connect_through_wordpress(site: Site, user_id: int, platform: str) -> int:
    """The whole OAuth flow with WordPress in the middle: connect (through WordPress), the sandbox
    consent page (served by the bridge, as a platform's page would be), the platform's redirect to
    the WordPress callback URL, and WordPress passing the bridge's 302 to the browser."""
    started = site.via_wp("POST", f"/accounts/connect/{platform}", headers=site.auth(user_id))
    assert started.status_code == 200, started.text
    auth_url = started.json()["auth_url"]
    query_params = parse_qs(urlsplit(auth_url).query)
    redirect_uri = (query_params.get("redirect_uri") or query_params.get("redirect_url"))[0]
    assert redirect_uri == f"{site.wp.url}{NS}/callback/{platform}"
    # The consent page lives on the bridge (sandbox); the browser would be sent there.
    consent_url = auth_url.replace(site.wp.url, site.bridge.url, 1)
    page = site.http.get(consent_url)
    assert page.status_code == 200, page.text[:300]
    fields = {unescape(n): unescape(v) for n, v in re.findall(
        r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.text)}
    fields.update({"decision": "allow", "sandbox_user": f"creator{user_id}"})
    answer = site.http.post(consent_url, data=fields)
    assert answer.status_code == 302, answer.text[:300]
    back = answer.headers["Location"]
    assert back.startswith(f"{site.wp.url}{NS}/callback/{platform}?")
    final = site.http.get(back)  # the browser arriving at WordPress
    assert final.status_code == 302, final.text
    assert final.headers["Location"].startswith(f"{FRONTEND}/dashboard/social-accounts?")
    landed = parse_qs(urlsplit(final.headers["Location"]).query)
    assert landed["status"] == ["pending"], final.headers["Location"]
    # the dashboard confirms the pending link through WordPress with the user's token
    confirmed = site.via_wp("POST", f"/accounts/links/{landed['link'][0]}/confirm", headers=site.auth(user_id))
    assert confirmed.status_code == 200, confirmed.text
    listed = site.via_wp("GET", f"/accounts?platform={platform}", headers=site.auth(user_id)).json()["accounts"]
    assert len(listed) == 1
    return listed[0]["id"]


# ------------------------------------------------------------------------------------- the file
def test_plugin_passes_php_lint():
    done = subprocess.run([_php(), "-l", str(PLUGIN)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No syntax errors" in done.stdout


# --------------------------------------------------------------------------- through WordPress
def test_accounts_list_equals_the_bridge_answer(site):
    insert_account(site.db, 501, "tiktok", "Creator TikTok")
    insert_account(site.db, 501, "linkedin", "Creator LinkedIn")
    insert_account(site.db, 502, "youtube")
    headers = site.auth(501)  # sent only as `Authorization`: php -S hands it to PHP as HTTP_AUTHORIZATION
    through = site.via_wp("GET", "/accounts", headers=headers)
    direct = site.direct("GET", "/accounts", headers=headers)
    assert through.status_code == direct.status_code == 200, through.text
    assert through.content == direct.content  # byte for byte: WordPress did not re-encode the JSON
    assert through.headers["content-type"].startswith("application/json")
    body = through.json()
    assert body["success"] is True
    assert sorted(a["account_name"] for a in body["accounts"]) == ["Creator LinkedIn", "Creator TikTok"]
    # The query string goes along.
    only = site.via_wp("GET", "/accounts?platform=linkedin", headers=headers)
    assert only.content == site.direct("GET", "/accounts?platform=linkedin", headers=headers).content
    assert [a["platform"] for a in only.json()["accounts"]] == ["linkedin"]


def test_lower_case_authorization_header_reaches_the_bridge(site):
    answer = site.via_wp("GET", "/accounts", headers={"authorization": f"Bearer {site.token(777)}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "accounts": []}


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer not-a-jwt"},
    "wrong-secret",
    "wrong-issuer",
    {},
])
def test_a_bad_or_missing_token_gets_401_in_the_envelope(site, headers):
    if headers == "wrong-secret":
        headers = {"Authorization": f"Bearer {make_jwt(501, secret='another-secret-0123456789abcdef-0123456789', iss=site.wp.url)}"}
    elif headers == "wrong-issuer":
        headers = {"Authorization": f"Bearer {make_jwt(501, iss='https://elsewhere.example')}"}
    through = site.via_wp("GET", "/accounts", headers=headers)
    assert through.status_code == 401, through.text
    body = through.json()
    assert body["success"] is False and re.fullmatch(r"[a-z_]+", body["code"]) and body["message"]
    assert through.content == site.direct("GET", "/accounts", headers=headers).content
    assert through.headers.get("www-authenticate", "").lower().startswith("bearer")


def test_publish_round_trip(site):
    platform = publish_platform()
    user = 601
    account_id = connect_through_wordpress(site, user, platform)
    job = insert_video(site.db, user)
    payload = {"video_job_id": job, "accounts": [account_id], "caption": "Through WordPress",
               "hashtags": ["#wp"], "privacy_level": "PUBLIC",
               "allow_comments": True, "allow_duet": True, "allow_stitch": True}
    key = {"Idempotency-Key": f"wp-{uuid.uuid4().hex}"}
    raw = json.dumps(payload)
    started = site.via_wp("POST", "/publish", content=raw,
                          headers={**site.auth(user), **key, "Content-Type": "application/json"})
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["success"] is True and body["message"] == "Publishing initiated"
    assert [(p["platform"], p["status"]) for p in body["posts"]] == [(platform, "publishing")]
    post_id = body["posts"][0]["id"]
    # The same Idempotency-Key answers the first response: the header went through WordPress.
    again = site.via_wp("POST", "/publish", content=raw,
                        headers={**site.auth(user), **key, "Content-Type": "application/json"})
    assert again.status_code == 200 and again.content == started.content
    assert query(site.db, "SELECT COUNT(*) FROM wp_aurareels_social_posts WHERE wp_user_id = %s", (user,))[0][0] == 1

    def published():
        post = site.via_wp("GET", f"/posts/{post_id}", headers=site.auth(user)).json()["post"]
        assert post["status"] in ("publishing", "published"), post
        return post if post["status"] == "published" else None

    post = wait_for(published, timeout=180, interval=1.0)
    assert post["platform_post_id"] and post["account"]["id"] == account_id
    assert site.via_wp("GET", f"/posts/{post_id}", headers=site.auth(user)).content == \
        site.direct("GET", f"/posts/{post_id}", headers=site.auth(user)).content
    # Not yours: the bridge's 404 in its envelope.
    other = site.via_wp("GET", f"/posts/{post_id}", headers=site.auth(user + 1))
    assert other.status_code == 404 and other.json()["success"] is False


def test_schedule_reschedule_cancel_round_trip(site):
    user = 701
    account_id = insert_account(site.db, user, publish_platform())
    job = insert_video(site.db, user)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 86400))
    scheduled = site.via_wp("POST", "/schedule", headers=site.auth(user), json={
        "video_job_id": job, "accounts": [account_id], "scheduled_at": when, "caption": "Later",
        "privacy_level": "PUBLIC"})
    assert scheduled.status_code == 200, scheduled.text
    body = scheduled.json()
    assert body["message"] == "Posts scheduled successfully"
    post = body["posts"][0]
    assert post["status"] == "scheduled"
    assert post["scheduled_at"] == when.replace("T", " ").rstrip("Z")

    listed = site.via_wp("GET", "/posts?status=scheduled", headers=site.auth(user))
    assert listed.status_code == 200 and [p["id"] for p in listed.json()["posts"]] == [post["id"]]
    assert listed.content == site.direct("GET", "/posts?status=scheduled", headers=site.auth(user)).content

    later = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 4 * 86400))
    moved = site.via_wp("PATCH", f"/posts/{post['id']}/reschedule", headers=site.auth(user),
                        json={"scheduled_at": later})
    assert moved.status_code == 200, moved.text
    assert moved.json()["post"] == {"id": post["id"], "scheduled_at": later}

    bad = site.via_wp("PATCH", f"/posts/{post['id']}/reschedule", headers=site.auth(user),
                      json={"scheduled_at": "not a time"})
    assert bad.status_code in (400, 422) and bad.json()["success"] is False and bad.json()["code"]

    cancelled = site.via_wp("DELETE", f"/posts/{post['id']}", headers=site.auth(user))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["success"] is True
    state = site.via_wp("GET", f"/posts/{post['id']}", headers=site.auth(user)).json()["post"]["status"]
    assert state == "cancelled"
    retry = site.via_wp("POST", f"/posts/{post['id']}/retry", headers=site.auth(user))
    assert retry.status_code == 409 and retry.json()["success"] is False


def test_malformed_json_gets_the_bridge_envelope(site):
    answer = site.via_wp("POST", "/publish", content=b'{"video_job_id": ',
                         headers={**site.auth(501), "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.content == site.direct("POST", "/publish", content=b'{"video_job_id": ',
                                         headers={**site.auth(501), "Content-Type": "application/json"}).content


def test_oauth_callback_redirect_passes_through(site):
    through = site.via_wp("GET", "/callback/tiktok?state=bogus&code=abc")
    assert through.status_code == 302, through.text
    location = through.headers["location"]
    assert location.startswith(f"{FRONTEND}/dashboard/social-accounts?")
    params = parse_qs(urlsplit(location).query)
    assert params["status"] == ["error"] and params["message"][0]
    assert location == site.direct("GET", "/callback/tiktok?state=bogus&code=abc").headers["location"]


def test_connect_gives_a_redirect_uri_on_the_wordpress_site(site):
    answer = site.via_wp("POST", "/accounts/connect/linkedin", headers=site.auth(501))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["state"]
    redirect_uri = parse_qs(urlsplit(body["auth_url"]).query)["redirect_uri"][0]
    assert redirect_uri == f"{site.wp.url}{NS}/callback/linkedin"
    unknown = site.via_wp("POST", "/accounts/connect/myspace", headers=site.auth(501))
    assert unknown.status_code == 404 and unknown.json()["success"] is False


def test_internal_routes_are_not_reachable_through_wordpress(site):
    headers = {"X-API-Key": INTERNAL_KEY, "Content-Type": "application/json"}
    body = {"post_id": 1, "scheduled_at": "2030-01-01 00:00:00"}
    through = site.via_wp("POST", "/internal/publish-scheduled", headers=headers, json=body)
    assert through.status_code == 404, through.text
    assert through.json()["code"] == "rest_no_route"  # WordPress's own answer: never forwarded
    # The bridge itself serves the route (to n8n), so the 404 above is WordPress's doing.
    assert site.direct("POST", "/internal/publish-scheduled", headers=headers, json=body).status_code != 404
    index = site.http.get(f"{site.wp.url}/wp-json/aurareels/v1/social").json()
    assert index["namespace"] == "aurareels/v1/social"
    assert not [r for r in index["routes"] if "internal" in r]


def test_jsonp_is_refused_on_the_bridge_routes_only(site):
    """`?_jsonp=cb` would make WordPress wrap an answer in `cb(...)`, a script any site can load with
    the visitor's cookies. On the plugin's routes WordPress refuses it; its own routes keep JSONP."""
    for path in ("/accounts?_jsonp=steal", "/health?_jsonp=steal", "/posts/1?_jsonp=steal"):
        answer = site.via_wp("GET", path, headers=site.auth(5))
        assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])
        assert answer.json()["code"] == "rest_callback_disabled" and "steal(" not in answer.text
    upper = site.http.get(f"{site.wp.url}/wp-json/AuraReels/V1/Social/health?_jsonp=steal")
    assert upper.status_code in (400, 404) and "steal(" not in upper.text
    core = site.http.get(f"{site.wp.url}/wp-json/?_jsonp=steal")
    assert core.status_code == 200 and "steal(" in core.text  # the site's setting elsewhere


def test_health_openapi_and_docs_pass_through(site):
    health = site.via_wp("GET", "/health")
    assert health.status_code in (200, 503) and health.json()["status"] in ("ok", "degraded")
    spec = site.via_wp("GET", "/openapi.json")
    assert spec.status_code == 200 and spec.content == site.direct("GET", "/openapi.json").content
    docs = site.via_wp("GET", "/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert docs.content == site.direct("GET", "/docs").content
    css = re.search(r'href="(docs/static/[^"]+)"', docs.text).group(1)
    asset = site.http.get(f"{site.wp.url}{NS}/{css}")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/css")
    assert asset.content == site.direct("GET", "/" + css).content


def test_meta_handshake_is_plain_text(site):
    query_string = f"?hub.mode=subscribe&hub.verify_token={META_VERIFY}&hub.challenge=1158201444"
    answer = site.via_wp("GET", "/webhooks/meta" + query_string)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.content == b"1158201444"
    wrong = site.via_wp("GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
    assert wrong.status_code == 403 and wrong.json()["success"] is False


def test_webhook_signatures_reach_the_bridge(site):
    body = json.dumps({"event": "post.publish.complete", "client_key": "sandbox", "create_time": int(time.time()),
                       "user_openid": "nobody", "content": json.dumps({"publish_id": "v_pub_unknown"})}).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(b"sandbox-tiktok-secret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    ok = site.via_wp("POST", "/webhooks/tiktok", content=body,
                     headers={"Content-Type": "application/json", "TikTok-Signature": f"t={stamp},s={signature}"})
    assert ok.status_code == 200, ok.text
    bad = site.via_wp("POST", "/webhooks/tiktok", content=body,
                      headers={"Content-Type": "application/json", "TikTok-Signature": f"t={stamp},s={'0' * 64}"})
    assert bad.status_code == 401 and bad.json()["success"] is False

    meta = json.dumps({"object": "instagram", "entry": []}).encode()
    sig = "sha256=" + hmac.new(b"sandbox-instagram-secret", meta, hashlib.sha256).hexdigest()
    ok = site.via_wp("POST", "/webhooks/meta", content=meta,
                     headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig})
    assert ok.status_code == 200, ok.text
    bad = site.via_wp("POST", "/webhooks/meta", content=meta,
                      headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert bad.status_code == 401


def test_site_without_the_constant_answers_503_not_configured(site):
    answer = site.via_wp("GET", "/accounts", headers={**site.auth(501), "X-Test-No-Bridge": "1"})
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["success"] is False and body["code"] == "bridge_not_configured" and body["message"]


def test_bridge_down_answers_503_in_the_envelope(site):
    site.bridge.stop()
    try:
        answer = site.via_wp("GET", "/accounts", headers=site.auth(501))
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["success"] is False and body["code"] == "bridge_unavailable" and body["message"]
        assert site.bridge.url not in answer.text and "127.0.0.1" not in answer.text
    finally:
        site.bridge.start()
    assert site.via_wp("GET", "/accounts", headers=site.auth(501)).status_code == 200


def test_must_use_plugin_completed_the_tables_once_and_kept_the_bridge_columns(site):
    # The site's first request ran the plugin's schema step (a must-use plugin is never activated)
    # on the tables `up` had just migrated.
    assert query(site.db, "SELECT option_value FROM wp_options WHERE option_name = 'aurareels_social_bridge_schema'")
    assert "needs_reconnect" in columns(site.db, "wp_aurareels_social_accounts")
    assert {"error_code", "lease_until"} <= set(columns(site.db, "wp_aurareels_social_posts"))
    assert foreign_keys(site.db) == MIGRATED_FKS
    preflight = site.http.options(f"{site.wp.url}{NS}/publish", headers={
        "Origin": "https://dashboard.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"})
    assert "idempotency-key" in preflight.headers.get("access-control-allow-headers", "").lower()


def test_the_plugin_left_no_php_warning(site):
    log = site.wp.debug_log.read_text() if site.wp.debug_log.exists() else ""
    ours = [line for line in log.splitlines() if "aurareels-social-bridge" in line and "unreachable" not in line]
    assert ours == []


# ------------------------------------------------------------------------------------ the tables
def test_activation_then_migrate(plain_wp):
    db = plain_wp.fresh_site()
    first = activate(plain_wp, db)
    assert first["last_error"] == "" and first["option"]
    assert {f"wp_aurareels_social_{t}" for t in ("accounts", "posts", "analytics", "templates", "hashtag_groups")} <= {
        r[0] for r in query(db, "SHOW TABLES")}
    assert columns(db, "wp_aurareels_social_accounts")["platform"] == SIX
    assert columns(db, "wp_aurareels_social_posts")["platform"] == SIX
    assert foreign_keys(db) == EXPECTED_FKS
    # Running it again (an update of the plugin) changes nothing.
    assert activate(plain_wp, db)["changes"] == []

    done = migrate(db, plain_wp.tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    applied = {r[0] for r in query(db, "SELECT version FROM wp_aurareels_bridge_migrations")}
    assert {"0000", "0001", "0002", "0003", "0004", "0009"} <= applied
    query(db, "INSERT INTO wp_aurareels_social_templates (wp_user_id, name, hashtags) VALUES (9, 'T', '[\"#a\"]')")
    account = insert_account(db, 9, "linkedin")
    query(db, "INSERT INTO wp_aurareels_social_posts (wp_user_id, video_job_id, social_account_id, platform, video_url)"
              " VALUES (9, 'job-li', %s, 'linkedin', 'https://cdn.example/v.mp4')", (account,))
    assert query(db, "SELECT platform, needs_reconnect FROM wp_aurareels_social_accounts") == [("linkedin", 0)]
    assert query(db, "SELECT platform, status, error_code FROM wp_aurareels_social_posts") == [
        ("linkedin", "draft", None)]
    assert migrate(db, plain_wp.tmp).returncode == 0  # and again: idempotent


def test_migrate_then_activation_keeps_the_bridge_columns(plain_wp):
    db = plain_wp.fresh_site()
    done = migrate(db, plain_wp.tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    before = {t: columns(db, f"wp_aurareels_social_{t}") for t in ("accounts", "posts", "analytics", "templates",
                                                                    "hashtag_groups")}
    indexes_before = set(query(db, "SELECT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS "
                                   "WHERE TABLE_SCHEMA = %s", (db,)))
    account = insert_account(db, 9, "twitter")
    query(db, "UPDATE wp_aurareels_social_accounts SET needs_reconnect = 1, reconnect_reason = 'revoked'")
    query(db, "INSERT INTO wp_aurareels_social_posts (wp_user_id, video_job_id, social_account_id, platform, status,"
              " video_url, error_code, lease_owner) VALUES (9, 'job-x', %s, 'twitter', 'failed', 'https://cdn.example/v.mp4',"
              " 'rate_limited', 'worker-1')", (account,))

    result = activate(plain_wp, db)
    assert result["last_error"] == "", result
    assert result["changes"] == [], result  # dbDelta found the bridge's tables already complete
    after = {t: columns(db, f"wp_aurareels_social_{t}") for t in ("accounts", "posts", "analytics", "templates",
                                                                   "hashtag_groups")}
    assert after == before
    for column in ("needs_reconnect", "reconnect_reason"):
        assert column in after["accounts"]
    for column in ("error_code", "next_attempt_at", "lease_owner", "lease_until"):
        assert column in after["posts"]
    assert set(query(db, "SELECT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s",
                     (db,))) == indexes_before
    assert foreign_keys(db) == MIGRATED_FKS
    assert query(db, "SELECT needs_reconnect, reconnect_reason FROM wp_aurareels_social_accounts") == [(1, "revoked")]
    assert query(db, "SELECT error_code, lease_owner FROM wp_aurareels_social_posts") == [("rate_limited", "worker-1")]
    assert migrate(db, plain_wp.tmp).returncode == 0


def seed_ddl() -> list[str]:
    """The three CREATE TABLE statements of the original DDL (seed 000; the bridge keeps the same text
    in sql/mysql/0000_wordpress_tables.sql), for the `wp_` prefix."""
    text = (ROOT / "sql" / "mysql" / "0000_wordpress_tables.sql").read_text().replace("{prefix}", "wp_")
    blocks = re.findall(r"CREATE TABLE `wp_aurareels_social_[a-z]+` \(.*?\) ENGINE=InnoDB[^;]*;", text, re.S)
    assert len(blocks) == 3
    return blocks


def test_activation_on_tables_of_the_original_ddl_appends_the_new_platforms(plain_wp):
    db = plain_wp.fresh_site()
    with mysql_connect(db) as conn:
        for statement in seed_ddl():
            conn.cursor().execute(statement)
    account = insert_account(db, 5, "instagram")
    query(db, "INSERT INTO wp_aurareels_social_posts (wp_user_id, video_job_id, social_account_id, platform, status,"
              " video_url) VALUES (5, 'job-1', %s, 'instagram', 'scheduled', 'https://cdn.example/v.mp4')", (account,))
    result = activate(plain_wp, db)
    assert result["last_error"] == "", result
    assert columns(db, "wp_aurareels_social_accounts")["platform"] == SIX
    assert columns(db, "wp_aurareels_social_posts")["platform"] == SIX
    assert foreign_keys(db) == EXPECTED_FKS  # the DDL's own, not doubled
    assert query(db, "SELECT platform FROM wp_aurareels_social_accounts") == [("instagram",)]
    assert query(db, "SELECT platform, status FROM wp_aurareels_social_posts") == [("instagram", "scheduled")]
    assert migrate(db, plain_wp.tmp).returncode == 0
    insert_account(db, 5, "linkedin")


def test_php_helpers_find_the_authorization_header_where_servers_put_it(plain_wp):
    """Apache setups that rewrite the header leave it in REDIRECT_HTTP_AUTHORIZATION only."""
    db = plain_wp.fresh_site()
    out = plain_wp.php(r"""<?php
$_SERVER['HTTP_HOST'] = 'localhost'; $_SERVER['REQUEST_URI'] = '/';
require __DIR__ . '/wp-load.php';
require_once $argv[1];
$found = array();
$request = new WP_REST_Request( 'GET', '/aurareels/v1/social/accounts' );
$request->set_header( 'Authorization', 'Bearer from-header' );
$found[] = aurareels_social_bridge_authorization( $request );
$bare = new WP_REST_Request( 'GET', '/aurareels/v1/social/accounts' );
$_SERVER['REDIRECT_HTTP_AUTHORIZATION'] = 'Bearer from-redirect';
$found[] = aurareels_social_bridge_authorization( $bare );
$_SERVER['HTTP_AUTHORIZATION'] = 'Bearer from-server';
$found[] = aurareels_social_bridge_authorization( $bare );
unset( $_SERVER['HTTP_AUTHORIZATION'], $_SERVER['REDIRECT_HTTP_AUTHORIZATION'] );
$found[] = aurareels_social_bridge_authorization( $bare );
$_SERVER['QUERY_STRING'] = 'rest_route=%2Faurareels%2Fv1%2Fsocial%2Fposts&status=scheduled&page=2';
$found[] = aurareels_social_bridge_target_url( 'http://bridge:8080/', new WP_REST_Request( 'GET', '/aurareels/v1/social/posts' ) );
echo json_encode( $found );
""", db, str(PLUGIN))
    assert json.loads(out[out.index("["):]) == [
        "Bearer from-header", "Bearer from-redirect", "Bearer from-server", "",
        "http://bridge:8080/wp-json/aurareels/v1/social/posts?status=scheduled&page=2"]


def test_as_a_regular_plugin_activation_creates_the_tables(plain_wp):
    """Activated the way wp-admin activates a plugin: register_activation_hook does the work."""
    db = plain_wp.fresh_site()
    plugins = plain_wp.root / "wp-content" / "plugins"
    shutil.copy(PLUGIN, plugins / PLUGIN.name)
    try:
        out = plain_wp.php(r"""<?php
$_SERVER['HTTP_HOST'] = 'localhost'; $_SERVER['REQUEST_URI'] = '/';
require __DIR__ . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
$result = activate_plugin( 'aurareels-social-bridge.php' );
echo json_encode( array( 'error' => is_wp_error( $result ) ? $result->get_error_message() : null,
    'active' => is_plugin_active( 'aurareels-social-bridge.php' ),
    'schema' => get_option( 'aurareels_social_bridge_schema' ) ) );
""", db)
    finally:
        (plugins / PLUGIN.name).unlink()
    answer = json.loads(out[out.index("{"):])
    assert answer["error"] is None and answer["active"] is True and answer["schema"], answer
    assert columns(db, "wp_aurareels_social_posts")["platform"] == SIX
    assert foreign_keys(db) == EXPECTED_FKS
