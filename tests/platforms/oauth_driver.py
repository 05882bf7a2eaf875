"""Drives an emulator's consent page the way a browser does: GET the authorize URL (through the
host map), submit the form with Allow or Deny, and return the redirect's query parameters."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx


def consent(authorize_url: str, decision: str = "allow", user: str = "creator1") -> dict[str, str]:
    with httpx.Client(follow_redirects=False, timeout=5) as client:
        page = client.get(authorize_url)
        assert page.status_code == 200, (page.status_code, page.text[:300])
        fields = {unescape(n): unescape(v) for n, v in re.findall(
            r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.text)}
        fields.update({"decision": decision, "sandbox_user": user})
        answer = client.post(authorize_url, data=fields)
        assert answer.status_code == 302, (answer.status_code, answer.text[:300])
        location = answer.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()} | {"_redirect": location}
