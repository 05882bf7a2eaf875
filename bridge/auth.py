"""Who is calling: WordPress JWTs for signed-in users, and the internal API key for automations.

WordPress tokens come from one of three plugins, all signed with an HS-family algorithm keyed
with the WordPress secret (JWT_AUTH_SECRET_KEY):

* "JWT Authentication for WP REST API": iss/iat/nbf/exp, user id at ``data.user.id`` as a
  JSON string ("7");
* "JWT Auth": the same ``data.user.id`` path, as an integer, with a short expiry;
* "Simple JWT Login": a top-level ``id`` claim (integer or numeric string).

The rules are the same for all three: the algorithm comes from configuration and never from
the token header, ``exp`` is required, ``iss`` must name the configured WordPress site, a token
whose ``nbf``/``iat`` lies in the future is refused, and a small clock leeway is allowed.

Every refusal is an `AuthError` with a stable snake_case ``code`` and one sentence a person can
act on. Neither the token nor any secret ever appears in an error.
"""
from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

import jwt

__all__ = [
    "AuthError",
    "HS_ALGORITHMS",
    "bearer_token",
    "check_internal_key",
    "decode_wp_jwt",
    "internal_key_from_headers",
]

HS_ALGORITHMS = ("HS256", "HS384", "HS512")

# Longer than any token the WordPress plugins issue; anything bigger is refused unread.
_MAX_TOKEN_CHARS = 8192
# WordPress user ids are BIGINT UNSIGNED.
_MAX_USER_ID = 2**64 - 1
_DIGITS = re.compile(r"[0-9]{1,20}")

_MESSAGES = {
    "missing_token": "Sign in first; the request carries no bearer token.",
    "token_expired": "The login token has expired; sign in again.",
    "token_not_yet_valid": "The login token is not valid yet; check the server clock and sign in again.",
    "invalid_issuer": "The login token was issued by a different site; sign in on this site again.",
    "invalid_token": "The login token is not valid; sign in again.",
    "missing_user": "The login token does not name a WordPress user; sign in again.",
    "internal_key_not_configured": "The internal API key is not configured on the bridge; set it and restart.",
    "invalid_api_key": "The internal API key is missing or wrong; send the configured key in the X-API-Key header.",
}


class AuthError(Exception):
    """A request that cannot be authenticated.

    ``status`` is the HTTP status (401), ``code`` a stable snake_case string and ``message`` one
    human sentence. Neither ever includes the token or a secret.
    """

    def __init__(self, code: str, message: str, status: int = 401):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"AuthError(code={self.code!r}, status={self.status})"


def _fail(code: str, status: int = 401) -> AuthError:
    return AuthError(code, _MESSAGES[code], status)


# ---------------------------------------------------------------------------------------------
# Bearer header


def _split_bearer(authorization_header: str | None) -> str | None:
    """The credentials of a "Bearer <t>" header, or None when there are none."""
    if not isinstance(authorization_header, str):
        return None
    parts = authorization_header.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    credentials = parts[1].strip()
    return credentials or None


def bearer_token(authorization_header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    The scheme is matched case-insensitively and surrounding spaces are ignored. A missing or
    empty header, another scheme, or an empty token raises ``AuthError("missing_token")``.
    """
    token = _split_bearer(authorization_header)
    if token is None:
        raise _fail("missing_token")
    return token


# ---------------------------------------------------------------------------------------------
# WordPress JWTs


def _strip_slash(url: str) -> str:
    return url[:-1] if url.endswith("/") else url


def _parse_user_id(raw: Any) -> int | None:
    # bool is an int subclass; `true` is never a user id.
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _DIGITS.fullmatch(raw):
        value = int(raw)
    else:
        return None
    return value if 0 < value <= _MAX_USER_ID else None


def _user_id(claims: dict[str, Any]) -> int | None:
    """``data.user.id`` when the token has that path, else the top-level ``id``."""
    data = claims.get("data")
    if isinstance(data, dict):
        user = data.get("user")
        if isinstance(user, dict) and "id" in user:
            return _parse_user_id(user["id"])
    return _parse_user_id(claims.get("id"))


def decode_wp_jwt(token: str, *, secret: str, issuer: str, algorithm: str = "HS256", leeway: int = 60) -> int:
    """Verify a WordPress JWT and return the WordPress user id it names.

    Only ``algorithm`` (one of HS256/HS384/HS512, from configuration) is accepted, whatever the
    token header says. ``exp`` is required; ``iss`` must equal ``issuer`` once one trailing
    slash is stripped from both; ``leeway`` seconds of clock skew are allowed on exp/nbf/iat.

    Raises AuthError with code missing_token, token_expired, token_not_yet_valid,
    invalid_issuer, invalid_token or missing_user. A bad configuration (empty secret or issuer,
    non-HS algorithm, negative leeway) raises ValueError: that is the server's fault, not the
    caller's.
    """
    if algorithm not in HS_ALGORITHMS:
        raise ValueError("the JWT algorithm must be HS256, HS384 or HS512")
    if not isinstance(secret, str) or not secret:
        raise ValueError("the WordPress JWT secret is not configured")
    if not isinstance(issuer, str) or not _strip_slash(issuer.strip()):
        raise ValueError("the WordPress URL (JWT issuer) is not configured")
    if isinstance(leeway, bool) or not isinstance(leeway, (int, float)) or leeway < 0:
        raise ValueError("the JWT leeway must be a non-negative number of seconds")

    if not isinstance(token, str) or not token.strip():
        raise _fail("missing_token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise _fail("invalid_token")

    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[algorithm],
            leeway=leeway,
            options={
                "verify_signature": True,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                # Checked below, with the trailing-slash rule.
                "verify_iss": False,
                "require": ["exp"],
            },
        )
    except jwt.ExpiredSignatureError:
        raise _fail("token_expired") from None
    except jwt.ImmatureSignatureError:
        raise _fail("token_not_yet_valid") from None
    except jwt.InvalidTokenError:
        raise _fail("invalid_token") from None
    except Exception:  # anything unexpected on hostile input still fails closed
        raise _fail("invalid_token") from None

    if not isinstance(claims, dict):
        raise _fail("invalid_token")

    iss = claims.get("iss")
    if not isinstance(iss, str) or _strip_slash(iss) != _strip_slash(issuer):
        raise _fail("invalid_issuer")

    user_id = _user_id(claims)
    if user_id is None:
        raise _fail("missing_user")
    return user_id


# ---------------------------------------------------------------------------------------------
# Internal API key


def _header(headers: Any, name: str) -> str | None:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None and isinstance(headers, Mapping):
        # Plain dicts are case-sensitive; HTTP header names are not.
        wanted = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == wanted:
                value = candidate
                break
    return value if isinstance(value, str) else None


def internal_key_from_headers(headers) -> str | None:
    """The internal API key a request presents: ``X-API-Key``, else ``Authorization: Bearer <key>``.

    Accepts any mapping of header names to values (case-insensitive lookup). Returns None when
    neither header carries a key.
    """
    if headers is None:
        return None
    key = _header(headers, "X-API-Key")
    if key is not None and key.strip():
        return key.strip()
    return _split_bearer(_header(headers, "Authorization"))


def check_internal_key(presented: str | None, expected: str | None) -> None:
    """Raise AuthError unless ``presented`` equals the configured ``expected`` key.

    The comparison is constant-time over the UTF-8 bytes. An unset expected key refuses every
    request (``internal_key_not_configured``); a missing, empty or wrong key is
    ``invalid_api_key``.
    """
    if not isinstance(expected, str) or not expected:
        raise _fail("internal_key_not_configured")
    if not isinstance(presented, str) or not presented:
        raise _fail("invalid_api_key")
    if not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
        raise _fail("invalid_api_key")
