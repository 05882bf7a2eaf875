"""Accounts: list, connect, callback, pending-link confirmation, refresh, disconnect, quota."""
from __future__ import annotations

from flask import redirect, request
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.deps import UNAUTHORIZED, USER_SECURITY, current_user_id, runtime, user_required
from bridge.api.ratelimit import RATE_LIMITED, rate_limited
from bridge.config import PLATFORMS
from bridge.errors import NotFound
from bridge.schemas.accounts import (
    AccountListSchema,
    AccountOptionsSchema,
    AccountQuerySchema,
    ConnectSchema,
    DisconnectedSchema,
    QuotaSchema,
    RefreshedSchema,
)
from bridge.schemas.common import ErrorSchema
from bridge.services import accounts as account_service
from bridge.services import oauth, quota

blp = Blueprint("accounts", __name__, url_prefix="/aurareels/v1/social", description="Connected social accounts")


# The platform values, listed in the document (the route itself answers 404 for any other).
PLATFORM_PARAM = {"name": "platform", "in": "path", "required": True, "schema": {"type": "string", "enum": PLATFORMS}}
# The browser's route never fails: an unknown platform redirects with status=error too.
CALLBACK_PLATFORM = {"name": "platform", "in": "path", "required": True, "schema": {"type": "string"},
                     "description": f"One of {', '.join(PLATFORMS)}; any other redirects with status=error"}
CALLBACK_QUERY = [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
                  for name, text in (("code", "Authorization code from the platform"),
                                     ("state", "The state returned by connect (single use, 10 minutes)"),
                                     ("error", "Set by the platform when the user declined or it failed"),
                                     ("error_description", "The platform's explanation of the error"))]


def _platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise NotFound(f"'{platform[:30]}' is not a supported platform.", code="unknown_platform")
    return platform


@blp.route("/accounts")
class Accounts(MethodView):
    decorators = [user_required]

    @blp.arguments(AccountQuerySchema, location="query")
    @blp.response(200, AccountListSchema)
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, query):
        """Connected accounts of the signed-in user"""
        accounts = account_service.list_accounts(runtime(), current_user_id(), query.get("platform"))
        return {"success": True, "accounts": accounts}


@blp.route("/accounts/connect/<string:platform>")
class Connect(MethodView):
    decorators = [user_required, rate_limited()]

    @blp.response(200, ConnectSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Unknown platform")
    @blp.alt_response(429, **RATE_LIMITED)
    @blp.alt_response(503, schema=ErrorSchema, description="Platform not configured on this site")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY, parameters=[PLATFORM_PARAM])
    def post(self, platform):
        """Start connecting an account: returns the platform's authorize URL"""
        return oauth.start_connect(runtime(), current_user_id(), _platform(platform))


@blp.route("/callback/<string:platform>")
class Callback(MethodView):
    @blp.response(302, description="Redirect to the dashboard with status=pending&platform=P&link=L (confirm L with "
                                   "POST /accounts/links/{link}/confirm), status=success&platform=P when "
                                   "AURAREELS_OAUTH_CONFIRM=0, or status=error&platform=P&message=...")
    @blp.doc(parameters=[CALLBACK_PLATFORM, *CALLBACK_QUERY])
    def get(self, platform):
        """OAuth redirect target (the platform sends the browser here)"""
        rt = runtime()
        result = oauth.finish_connect(rt, platform, request.args.to_dict())
        return redirect(oauth.frontend_redirect(rt, result), code=302)


@blp.route("/accounts/links/<string:link>/confirm")
class ConfirmLink(MethodView):
    decorators = [user_required]

    @blp.response(200, AccountListSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Unknown, expired (15 minutes), already used, or started "
                                                           "by another user")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, link):
        """Attach the account(s) of a pending connect to the signed-in user, who must be the one who called connect"""
        return {"success": True, "accounts": account_service.confirm_link(runtime(), current_user_id(), link)}


@blp.route("/accounts/<int:account_id>/refresh")
class Refresh(MethodView):
    decorators = [user_required]

    @blp.response(200, RefreshedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="The account must be connected again")
    @blp.alt_response(422, schema=ErrorSchema, description="The platform refused the refresh")
    @blp.alt_response(429, schema=ErrorSchema, description="The platform's rate limit; see Retry-After")
    @blp.alt_response(503, schema=ErrorSchema, description="The platform is unreachable")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def post(self, account_id):
        """Refresh the account's token now"""
        return oauth.refresh_now(runtime(), current_user_id(), account_id)


@blp.route("/accounts/<int:account_id>")
class Account(MethodView):
    decorators = [user_required]

    @blp.response(200, DisconnectedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def delete(self, account_id):
        """Disconnect (revoke where the platform allows); its scheduled posts are cancelled"""
        return oauth.disconnect(runtime(), current_user_id(), account_id)


@blp.route("/accounts/<int:account_id>/quota")
class Quota(MethodView):
    decorators = [user_required]

    @blp.response(200, QuotaSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, account_id):
        """Posts left in the platform's rolling 24-hour window"""
        return quota.quota_view(runtime(), current_user_id(), account_id)


@blp.route("/accounts/<int:account_id>/options")
class Options(MethodView):
    decorators = [user_required]

    @blp.response(200, AccountOptionsSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not found or not yours")
    @blp.alt_response(409, schema=ErrorSchema, description="The account must be connected again")
    @blp.alt_response(429, schema=ErrorSchema, description="The platform limits these reads; see Retry-After")
    @blp.alt_response(503, schema=ErrorSchema, description="The platform cannot be asked right now")
    @blp.alt_response(401, **UNAUTHORIZED)
    @blp.doc(security=USER_SECURITY)
    def get(self, account_id):
        """What this account allows now (TikTok: privacy levels, longest video, interactions off), limits, quota"""
        return account_service.account_options(runtime(), current_user_id(), account_id)
