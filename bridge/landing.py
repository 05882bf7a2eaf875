"""The page the OAuth callback sends the browser to when the bridge is its own front end.

The callback redirects to `{AURAREELS_FRONTEND_URL}/dashboard/social-accounts?status=...`. With no
dashboard configured (the front-end URL is the bridge's own public URL, as in `up`), the bridge
answers that address itself instead of a 404: it shows the outcome and, for a pending link, does
what the real dashboard does: it confirms the link with the signed-in user's token
(`POST /accounts/links/{link}/confirm`). The bridge has no login of its own, so the page asks for
the token (the demo token `up` prints) and also shows the same call as a shell command. Every value
from the address is escaped; the page is never framed and sends no Referer, so the link id does not
leave it.
"""
from __future__ import annotations

from html import escape

from flask import Flask, Response, request

from bridge.config import Settings

PATH = "/dashboard/social-accounts"
API = "/wp-json/aurareels/v1/social"

_SCRIPT = """
const link = document.getElementById("link");
if (link) {
  history.replaceState(null, "", location.pathname);
  document.getElementById("confirm").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    const answer = await fetch(`%(api)s/accounts/links/${encodeURIComponent(link.dataset.link)}/confirm`,
      {method: "POST", headers: {"Authorization": `Bearer ${token}`}});
    const body = await answer.json();
    document.getElementById("result").textContent = body.success
      ? `Connected: ${body.accounts.map((a) => a.account_name).join(", ")}`
      : `Not connected (${body.code}): ${body.message}`;
  });
}
""" % {"api": API}


def page(args, public_url: str) -> Response:
    """The page for one callback outcome (`args`: the redirect's query)."""
    status = args.get("status", "")[:20]
    platform = escape(args.get("platform", "")[:20])
    if status == "pending" and args.get("link"):
        link = escape(args["link"][:100])
        title = "Almost connected"
        body = f"""<p>Your {platform} login is waiting for your confirmation (15 minutes). Only the user who
started this connection can confirm it.</p>
<form id="confirm"><span id="link" data-link="{link}"></span>
<label>Your login token <input id="token" name="token" size="60" autocomplete="off"></label>
<button type="submit" id="confirm-button">Confirm</button></form>
<p id="result" role="status"></p>
<p>Or from a shell:</p>
<pre>curl -s -X POST -H "Authorization: Bearer $TOKEN" {escape(public_url)}{API}/accounts/links/{link}/confirm</pre>"""
    elif status == "success":
        title = "Connected"
        body = (f"<p id='result'>Your {platform} account is connected. Go back to your shell for the next "
                f"step.</p>")
    else:
        title = "Not connected"
        body = f"<p id='result'>{escape(args.get('message', 'The account was not connected.')[:300])}</p>"
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}: AuraReels Social Bridge</title>
<style>body{{font-family:sans-serif;max-width:40rem;margin:3rem auto}}</style></head>
<body><h1>Social accounts: {title}</h1>{body}
<script>{_SCRIPT}</script></body></html>"""
    return Response(html, content_type="text/html; charset=utf-8", headers={
        "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
        "Content-Security-Policy": "frame-ancestors 'none'", "Cache-Control": "no-store"})


def register_landing(app: Flask, settings: Settings) -> None:
    """Serve the landing page, only when the front end is the bridge itself."""
    if settings.frontend_url.rstrip("/") != settings.public_url.rstrip("/"):
        return
    public_url = settings.public_url.rstrip("/")
    app.add_url_rule(PATH, "landing", lambda: page(request.args, public_url))
