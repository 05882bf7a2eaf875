"""The building blocks of platform options: strict marshmallow fields.

A client declares the options it accepts as a mapping name -> field (`PlatformClient.options`);
`PlatformClient.option_issues` checks a post's options against it before anything is stored. The
fields here accept only what JSON sends for their type (a boolean is `true`/`false`, never
`"yes"` or `1`; an integer is never `"3"` or `true`) because the stored options are the request's
own values, read again by the worker: whatever passes here must be usable there as it is.

URLs a creator sends are hostile until bounded: http(s) only, at most `URL_MAX` characters, and
lists of them bounded in count.
"""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

URL_MAX = 2048
TEXT_MAX = 2200


class Flag(fields.Field):
    """A JSON boolean and nothing else (marshmallow's Boolean takes 1, "yes" and "on" too)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a boolean (true or false).")
        return value


def flag() -> fields.Field:
    return Flag()


def integer(minimum: int | None = None, maximum: int | None = None) -> fields.Field:
    """A JSON integer within bounds."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum))


def choice(*values: str) -> fields.Field:
    return fields.String(validate=validate.OneOf(values))


def text(maximum: int = TEXT_MAX, pattern: str | None = None) -> fields.Field:
    checks: list = [validate.Length(min=1, max=maximum)]
    if pattern:
        checks.append(validate.Regexp(pattern))
    return fields.String(validate=checks)


def url() -> fields.Field:
    """An absolute http(s) URL of bounded length."""
    return fields.Url(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=URL_MAX))


def urls(minimum: int, maximum: int) -> fields.Field:
    return fields.List(url(), validate=validate.Length(min=minimum, max=maximum))


def texts(maximum_count: int, maximum_length: int, pattern: str | None = None) -> fields.Field:
    return fields.List(text(maximum_length, pattern), validate=validate.Length(max=maximum_count))


def datetime_text() -> fields.Field:
    """An ISO 8601 date and time (the client parses it; this bounds it)."""
    return fields.String(validate=validate.Length(min=10, max=40))


class MediaItem(fields.Field):
    """One carousel item: a URL, or an object `{"url": ..., "type": "image"|"video"}` with nothing
    else in it. `types` limits the item types a platform takes."""

    def __init__(self, types: tuple[str, ...] = ("image", "video"), **kwargs: Any):
        super().__init__(**kwargs)
        self.types = types
        self._url = url()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            self._url.deserialize(value)
            return value
        if not isinstance(value, dict):
            raise ValidationError("Each item is a URL or an object with url and type.")
        extra = set(value) - {"url", "type"}
        if extra:
            raise ValidationError(f"Unknown item field {sorted(extra)[0]!r}; items take url and type.")
        if "url" not in value:
            raise ValidationError("Each item needs a url.")
        self._url.deserialize(value["url"])
        kind = value.get("type", "image")
        if kind not in self.types:
            raise ValidationError(f"Item type must be one of: {', '.join(self.types)}.")
        return value


def media_items(minimum: int, maximum: int, types: tuple[str, ...] = ("image", "video")) -> fields.Field:
    return fields.List(MediaItem(types), validate=validate.Length(min=minimum, max=maximum))


def messages(error: ValidationError) -> str:
    """One sentence from a field's validation messages (nested list positions included)."""
    found: list[str] = []

    def walk(value: Any, where: str = "") -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{where}item {int(key) + 1}: " if isinstance(key, int) else where)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, where)
        else:
            found.append(f"{where}{value}")

    walk(error.messages)
    return " ".join(found)[:300] or "invalid value."
