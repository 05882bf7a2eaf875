"""API errors and the one envelope every error leaves in.

`ApiError` is what services raise when a request cannot be served; `envelope()` shapes any error
as `{"success": false, "code", "message"[, "errors"]}`. Codes are stable snake_case strings that
clients may switch on; messages are one sentence a person can act on.
"""
from __future__ import annotations

from typing import Any

from flask import jsonify


class ApiError(Exception):
    status = 400
    code = "bad_request"
    message = "The request could not be served."

    def __init__(self, message: str | None = None, *, code: str | None = None, status: int | None = None,
                 errors: dict | None = None, headers: dict | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.errors = errors
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class ValidationFailed(ApiError):
    status, code, message = 422, "validation_error", "Some fields are not valid."


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Sign in again."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "Nothing was found at this address."


class Conflict(ApiError):
    status, code = 409, "conflict"


class QuotaExceeded(ApiError):
    status, code = 429, "quota_exceeded"


class Unavailable(ApiError):
    status, code, message = 503, "service_unavailable", "A service the bridge depends on is down; try again shortly."


def envelope(status: int, code: str, message: str, errors: Any = None, headers: dict | None = None):
    body: dict[str, Any] = {"success": False, "code": code, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
