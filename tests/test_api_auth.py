"""The JWT matrix through HTTP: every case answers in the envelope with its status and code."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.conftest import JWT_SECRET, WP_URL, make_jwt

URL = "/wp-json/aurareels/v1/social/accounts"


def _none_token() -> str:
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'iss': WP_URL, 'exp': now + 600, 'data': {'user': {'id': '1'}}})}."


def _no_exp() -> str:
    return jwt.encode({"iss": WP_URL, "data": {"user": {"id": "1"}}}, JWT_SECRET, algorithm="HS256")


CASES = {
    "string id": (lambda: make_jwt("5"), 200, None),
    "integer id": (lambda: make_jwt(5, data={"user": {"id": 5}}, ttl=300), 200, None),
    "top-level id": (lambda: make_jwt(5, data=None, id=5), 200, None),
    "expired": (lambda: make_jwt(5, ttl=-3600), 401, "token_expired"),
    "nbf in the future": (lambda: make_jwt(5, nbf=int(time.time()) + 3600, iat=int(time.time())), 401,
                          "token_not_yet_valid"),
    "wrong key": (lambda: make_jwt(5, secret="another-secret-of-sufficient-length!!"), 401, "invalid_token"),
    "alg none": (_none_token, 401, "invalid_token"),
    "HS512 when HS256 configured": (lambda: make_jwt(5, algorithm="HS512"), 401, "invalid_token"),
    "wrong iss": (lambda: make_jwt(5, iss="https://evil.example"), 401, "invalid_issuer"),
    "no exp": (_no_exp, 401, "invalid_token"),
    "no user id": (lambda: make_jwt(5, data={"user": {}}), 401, "missing_user"),
    "garbage": (lambda: "not.a.jwt", 401, "invalid_token"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_jwt_matrix_over_http(client, case):
    make, status, code = CASES[case]
    token = make()
    response = client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    if status == 200:
        assert body["success"] is True
    else:
        assert body == {"success": False, "code": code, "message": body["message"]}
        assert token not in response.get_data(as_text=True)
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_missing_header_over_http(client):
    response = client.get(URL)
    assert response.status_code == 401 and response.get_json()["code"] == "missing_token"
