"""The platform HTTP layer shares one connection pool per platform in a process, so it must share
nothing else between accounts: a cookie one creator's call received never rides along with the
next creator's call."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bridge.config import Settings
from bridge.platforms.http import PlatformHttp
from tests.conftest import base_env


class _CookieSetter(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"cookie": self.headers.get("Cookie")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"guest_id=v1%3Auser-{self.path.strip('/')}; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_no_cookie_travels_from_one_account_call_to_the_next(database_url):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CookieSetter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address
    # the platform's host redirected to the local server, as outside checks do
    settings = Settings.from_env(base_env(AURAREELS_DATABASE_URL=database_url,
                                          AURAREELS_HOST_MAP=json.dumps({"api.x.com": f"http://{host}:{port}"})))
    try:
        first, second = PlatformHttp(settings, "twitter"), PlatformHttp(settings, "twitter")
        a = first.request("GET", "https://api.x.com/creator-a")
        assert a.status_code == 200 and a.headers["set-cookie"].startswith("guest_id=")
        b = second.request("GET", "https://api.x.com/creator-b")
        assert b.json() == {"cookie": None}
        again = first.request("GET", "https://api.x.com/creator-a")
        assert again.json() == {"cookie": None}
    finally:
        server.shutdown()
