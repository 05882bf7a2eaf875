"""A stand-in for the dashboard's social-accounts page, served by the bridge in sandbox mode.

Where the OAuth callback sends the browser when `AURAREELS_FRONTEND_URL` is the bridge itself (the
embedded `up` run): `/dashboard/social-accounts?status=...`. It shows the outcome and, for a pending
link, does what the real dashboard does: it confirms the link with the signed-in user's token
(`POST /accounts/links/{link}/confirm`). The sandbox has no login, so the page asks for the token
(the demo token `up` prints). Every value from the address is escaped; the page is never framed
and sends no Referer, so the link id does not leave it.
"""
from __future__ import annotations

from html import escape

from werkzeug.wrappers import Request, Response

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


def page(request: Request) -> Response:
    """The page for one callback outcome."""
    args = request.args
    status, platform = args.get("status", ""), args.get("platform", "")
    if status == "pending" and args.get("link"):
        body = f"""<p>The {escape(platform)} login is waiting for your confirmation (15 minutes). Only the user
who started this connection can confirm it.</p>
<form id="confirm"><span id="link" data-link="{escape(args['link'])}"></span>
<label>Your login token <input id="token" name="token" size="60" autocomplete="off"></label>
<button type="submit" id="confirm-button">Confirm</button></form>
<p id="result" role="status"></p>
<p>Or from a shell: <code>curl -X POST -H "Authorization: Bearer $TOKEN"
{escape(request.host_url.rstrip('/'))}{API}/accounts/links/{escape(args['link'])}/confirm</code></p>"""
    elif status == "success":
        body = f"<p id='result'>The {escape(platform)} account is connected.</p>"
    else:
        body = f"<p id='result'>Not connected: {escape(args.get('message', 'the connection failed'))}</p>"
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Social accounts (sandbox)</title></head>
<body><h1>Social accounts</h1><p><i>The sandbox stand-in for the dashboard page.</i></p>{body}
<script>{_SCRIPT}</script></body></html>"""
    return Response(html, content_type="text/html; charset=utf-8", headers={
        "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
        "Content-Security-Policy": "frame-ancestors 'none'", "Cache-Control": "no-store"})
