"""The page the OAuth callback sends the browser to when the bridge is its own front end.

The callback redirects to `{AURAREELS_FRONTEND_URL}/dashboard/social-accounts?status=...`. With no
dashboard configured (the front-end URL is the bridge's own public URL, as in `up`), the bridge
answers that address itself with a short page saying what happened, instead of a 404.
"""
from __future__ import annotations

from html import escape

from flask import Flask, Response, request

from bridge.config import Settings

PATH = "/dashboard/social-accounts"


def register_landing(app: Flask, settings: Settings) -> None:
    """Serve the landing page, only when the front end is the bridge itself."""
    if settings.frontend_url.rstrip("/") != settings.public_url.rstrip("/"):
        return
    confirm_base = f"{settings.public_url}/wp-json/aurareels/v1/social/accounts/links"

    def landing():
        status = request.args.get("status", "")[:20]
        platform = escape(request.args.get("platform", "")[:20])
        if status == "success":
            title, text = "Connected", f"Your {platform} account is connected. Go back to your shell for the next step."
        elif status == "pending":
            link = escape(request.args.get("link", "")[:100])
            title = "Almost connected"
            text = (f"Confirm that this {platform} account is yours, with the same login that asked to connect it:"
                    f"<pre>curl -s -X POST -H \"Authorization: Bearer $TOKEN\" {escape(confirm_base)}/{link}/confirm"
                    f"</pre>")
        else:
            title = "Not connected"
            text = escape(request.args.get("message", "The account was not connected.")[:300])
        page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}: AuraReels Social Bridge</title>"
                f"<style>body{{font-family:sans-serif;max-width:40rem;margin:3rem auto}}</style></head>"
                f"<body><h1>{title}</h1><p id=\"status\">{text}</p></body></html>")
        return Response(page, content_type="text/html; charset=utf-8")

    app.add_url_rule(PATH, "landing", landing)
