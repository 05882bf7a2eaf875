"""Fields of post content that templates and hashtag groups share with posts, bounded the same
way: a hashtag is one word of at most 150 characters, at most 100 of them, and what is stored in a
TEXT column (65,535 bytes) must fit it once encoded."""
from __future__ import annotations

import json

from marshmallow import ValidationError, fields, validate

TEXT_BYTES = 65_535
OPTIONS_BYTES = 16_384


def fits_text(value: str | None) -> None:
    if value is not None and len(value.encode("utf-8")) > TEXT_BYTES:
        raise ValidationError(f"Longer than the {TEXT_BYTES} bytes that can be stored; shorten it.")


def fits_text_as_json(values) -> None:
    # stored as json.dumps(values), where one non-ASCII character can take up to 12 bytes
    if values is not None and len(json.dumps(values)) > TEXT_BYTES:
        raise ValidationError(f"Together longer than the {TEXT_BYTES} bytes that can be stored; use fewer or "
                              f"shorter ones.")


def small_json(value) -> None:
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError, RecursionError):
        raise ValidationError("Must be plain JSON.") from None
    if size > OPTIONS_BYTES:
        raise ValidationError(f"Larger than {OPTIONS_BYTES} bytes once encoded; keep options short.")


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


def name_field(**kw) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=100), not_blank],
                         metadata={"example": "Weekly recap"}, **kw)


def hashtags_field(min_items: int = 0, **kw) -> fields.List:
    return fields.List(
        fields.String(validate=[validate.Length(min=1, max=150), validate.Regexp(r"^\S+$", error="One word, no spaces.")]),
        validate=[validate.Length(min=min_items, max=100), fits_text_as_json],
        metadata={"example": ["#travel", "#food"]}, **kw)
