"""HTTP layer: one Blueprint per resource. Views validate, call a service, shape the answer."""
from __future__ import annotations

from importlib import import_module


def register_blueprints(api) -> None:
    from bridge.api import accounts, composer, drafts, health, internal, posts, webhooks

    for module in (health, accounts, posts, drafts, composer, internal, webhooks):
        api.register_blueprint(module.blp)
    api.register_blueprint(import_module("bridge.api.analytics").blp)
    api.register_blueprint(import_module("bridge.api.templates").blp)
    api.register_blueprint(import_module("bridge.api.hashtag_groups").blp)
