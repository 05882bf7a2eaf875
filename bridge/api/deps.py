"""What views need from the request: the runtime, the signed-in WordPress user, the internal key."""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from bridge.auth import bearer_token, check_internal_key, decode_wp_jwt, internal_key_from_headers
from bridge.runtime import Runtime
from bridge.schemas.common import ErrorSchema

USER_SECURITY = [{"wordpressJwt": []}]
INTERNAL_SECURITY = [{"internalKey": []}]
# What every signed-in (or internal) route may answer before its own logic runs.
UNAUTHORIZED = {"schema": ErrorSchema, "description": "Missing or invalid WordPress token"}
BAD_INTERNAL_KEY = {"schema": ErrorSchema, "description": "Missing or wrong internal key"}
INVALID_JSON = {"schema": ErrorSchema, "description": "The body is not valid JSON"}


def runtime() -> Runtime:
    return current_app.extensions["bridge"]


def current_user_id() -> int:
    """The WordPress user id of the request's JWT (cached on `g`). Raises AuthError."""
    if "user_id" not in g:
        settings = runtime().settings
        token = bearer_token(request.headers.get("Authorization"))
        g.user_id = decode_wp_jwt(
            token,
            secret=settings.jwt_secret,
            issuer=settings.wp_url,
            algorithm=settings.jwt_algorithm,
            leeway=settings.jwt_leeway,
        )
    return g.user_id


def user_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        current_user_id()
        return view(*args, **kwargs)

    return wrapper


def internal_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        check_internal_key(internal_key_from_headers(request.headers), runtime().settings.n8n_api_key)
        return view(*args, **kwargs)

    return wrapper
