"""The WordPress plugin file, read as text (no PHP or WordPress needed; the real run is
tests/wordpress/test_real_wordpress.py under scripts/test-wordpress, which also runs `php -l`)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "wordpress" / "aurareels-social-bridge.php"
INTERFACE = ROOT.parent / "shared" / "interface.md"

# The interface's route table (shared/interface.md, "HTTP API"), as (method, path) pairs.
INTERFACE_ROUTES = {
    ("GET", "/accounts"),
    ("POST", "/accounts/connect/{platform}"),
    ("GET", "/callback/{platform}"),
    ("POST", "/accounts/{id}/refresh"),
    ("DELETE", "/accounts/{id}"),
    ("GET", "/accounts/{id}/quota"),
    ("POST", "/publish"),
    ("POST", "/schedule"),
    ("GET", "/posts"),
    ("GET", "/posts/{id}"),
    ("PATCH", "/posts/{id}/reschedule"),
    ("DELETE", "/posts/{id}"),
    ("POST", "/posts/{id}/retry"),
    ("POST", "/internal/publish-scheduled"),
    ("POST", "/webhooks/tiktok"),
    ("GET", "/webhooks/meta"),
    ("POST", "/webhooks/meta"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
}


# Routes of the interface's "Second wave" section (shared/interface.md), proxied the same way.
SECOND_WAVE_ROUTES = {
    ("POST", "/accounts/links/{link}/confirm"),
    ("PATCH", "/posts/{id}"),
    ("POST", "/drafts"),
    ("POST", "/posts/{id}/publish"),
    ("POST", "/posts/{id}/schedule"),
    ("POST", "/validate"),
    ("GET", "/platforms"),
    ("GET", "/accounts/{id}/options"),
    ("GET", "/posts/{id}/analytics"),
    ("POST", "/posts/{id}/analytics/refresh"),
    ("GET", "/analytics/summary"),
    ("GET", "/analytics/best-times"),
    ("GET", "/templates"),
    ("POST", "/templates"),
    ("PATCH", "/templates/{id}"),
    ("DELETE", "/templates/{id}"),
    ("GET", "/hashtag-groups"),
    ("POST", "/hashtag-groups"),
    ("PATCH", "/hashtag-groups/{id}"),
    ("DELETE", "/hashtag-groups/{id}"),
}


@pytest.fixture(scope="module")
def source() -> str:
    return PLUGIN.read_text()


def _normalise(path: str) -> str:
    path = path.split("?", 1)[0]
    return re.sub(r"\{[a-z_]*id\}", "{id}", path)


def interface_routes_from_doc() -> set[tuple[str, str]]:
    text = INTERFACE.read_text()
    section = text.split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    routes = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for spec in re.findall(r"`([^`]+)`", first_cell):
            match = re.fullmatch(r"([A-Z, ]+?) (/\S+)", spec.strip())
            if match:
                for method in match.group(1).split(","):
                    routes.add((method.strip(), _normalise(match.group(2))))
    return routes


def plugin_routes(source: str) -> set[tuple[str, str]]:
    """(method, path) from aurareels_social_bridge_routes(): regex parameters become {name}."""
    body = source.split("function aurareels_social_bridge_routes()", 1)[1].split("\n\t}", 1)[0]
    routes = set()
    for route, methods in re.findall(r"'(/[^']*)'\s*=>\s*array\(([^)]*)\)", body):
        path = re.sub(r"\(\?P<([a-z_]+)>[^)]*\)", r"{\1}", route).replace("\\.", ".")
        for method in re.findall(r"'([A-Z]+)'", methods):
            routes.add((method, path))
    return routes


def test_the_route_list_here_is_the_interface_one():
    if not INTERFACE.exists():
        pytest.skip("shared/ is not beside this clone")
    assert interface_routes_from_doc() == INTERFACE_ROUTES


def test_every_interface_route_but_the_internal_ones_is_registered(source):
    registered = plugin_routes(source)
    wanted = {r for r in INTERFACE_ROUTES | SECOND_WAVE_ROUTES if not r[1].startswith("/internal")}
    assert wanted - registered == set()
    # Nothing else than the interface, except the docs page's own assets.
    assert registered - wanted == {("GET", "/docs/static/{file}")}
    assert "register_rest_route(" in source and "AURAREELS_SOCIAL_BRIDGE_NAMESPACE" in source
    assert "'aurareels/v1/social'" in source
    assert "'permission_callback' => '__return_true'" in source


def test_no_internal_route_is_defined(source):
    assert not [r for r in plugin_routes(source) if "internal" in r[1]]
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("*", "//", "/*")))
    assert "/internal" not in code


def test_reads_the_bridge_url_constant_and_answers_in_the_envelope(source):
    assert "defined( 'AURAREELS_BRIDGE_URL' )" in source
    assert "constant( 'AURAREELS_BRIDGE_URL' )" in source
    for code in ("bridge_not_configured", "bridge_unavailable"):
        assert f"'{code}'" in source
    assert "'success' => false" in source
    assert "wp_remote_request(" in source and "'redirection' => 0" in re.sub(r"\s+", " ", source)
    assert "rest_pre_serve_request" in source


def test_forwards_the_headers_the_bridge_reads(source):
    for header in ("Authorization", "Content-Type", "Idempotency-Key", "TikTok-Signature", "X-Hub-Signature-256"):
        assert f"'{header}'" in source, header
    for where in ("get_header( 'authorization' )", "'HTTP_AUTHORIZATION'", "'REDIRECT_HTTP_AUTHORIZATION'",
                  "getallheaders()"):
        assert where in source, where
    for header in ("content-type", "location"):
        assert f"'{header}'" in source


def test_creates_the_tables_with_dbdelta_and_six_platforms(source):
    assert "register_activation_hook( __FILE__," in source
    assert "dbDelta(" in source
    for table in ("aurareels_social_accounts", "aurareels_social_posts", "aurareels_social_analytics",
                  "aurareels_social_templates", "aurareels_social_hashtag_groups"):
        assert f"$wpdb->prefix . '{table}'" in source
    assert "array( 'tiktok', 'instagram', 'facebook', 'youtube', 'twitter', 'linkedin' )" in source
    assert "PRIMARY KEY  (`id`)" in source  # dbDelta's two spaces
    assert not re.search(r"(?i)\b(DROP|TRUNCATE)\s+(TABLE|COLUMN|INDEX|KEY|FOREIGN)\b", source)
    assert not re.search(r"(?i)\bDELETE\s+FROM\b", source)


def test_contains_no_secret(source):
    # No constant that holds a secret is given a value here (the example define is the bridge URL).
    assert not re.search(r"define\(\s*'[A-Z0-9_]*(SECRET|KEY|TOKEN|PASSWORD|SALT)[A-Z0-9_]*'", source)
    assert "JWT_AUTH_SECRET_KEY" not in source and "N8N_API_KEY" not in source
    assert "eyJ" not in source  # no JWT
    # No long random-looking literal (a key, a token, a password).
    for literal in re.findall(r"[A-Za-z0-9+/=_-]{20,}", source):
        mixed = [len(re.findall(pattern, literal)) >= 3 for pattern in (r"\d", r"[A-Z]", r"[a-z]")]
        assert not all(mixed), literal
    assert not re.search(r"(?i)(password|passwd|secret|api[_-]?key)\s*=>?\s*'[^']+'", source)


def _columns(statement: str) -> list[str]:
    return [line.strip().rstrip(",") for line in statement.splitlines() if line.strip().startswith("`")]


def test_template_tables_are_the_bridge_migrations_column_for_column(source):
    """dbDelta after `migrate` (and `migrate` after dbDelta) must find nothing to change: the
    plugin spells the new tables exactly as sql/mysql/0009 does."""
    migration = (ROOT / "sql" / "mysql" / "0009_analytics_templates.sql").read_text()
    for table in ("templates", "hashtag_groups"):
        ours = re.search(rf"CREATE TABLE `\{{prefix\}}aurareels_social_{table}` \((.*?)\n\) ENGINE", migration, re.S)
        theirs = re.search(rf"CREATE TABLE \${'groups' if table == 'hashtag_groups' else table} \((.*?)\n\$tail", source,
                           re.S)
        assert ours and theirs, table
        assert _columns(ours.group(1)) == _columns(theirs.group(1)), table
        keys = [line.strip().rstrip(",") for line in theirs.group(1).splitlines() if "KEY" in line]
        assert keys == [k.replace("PRIMARY KEY (", "PRIMARY KEY  (") for k in
                        (line.strip().rstrip(",") for line in ours.group(1).splitlines() if "KEY" in line)], table
