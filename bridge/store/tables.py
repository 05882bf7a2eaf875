"""SQLAlchemy Core mappings of the WordPress tables, exactly as seed 000's DDL defines them.

The prefix comes from configuration, so tables are built per prefix by `Tables(prefix)`.
Times are naive UTC datetimes: the MySQL session runs with time_zone '+00:00' (see `db.py`).
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects import mysql

from bridge.config import PLATFORMS

POST_STATUSES = ("draft", "scheduled", "publishing", "published", "failed", "cancelled")

# BIGINT(20) UNSIGNED on MySQL, INTEGER on SQLite (so that it is SQLite's rowid alias).
_Id = BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql").with_variant(Integer(), "sqlite")
_LongText = Text().with_variant(mysql.LONGTEXT(), "mysql")
_Bool = SmallInteger().with_variant(mysql.TINYINT(1), "mysql")


def _platform_enum() -> Enum:
    return Enum(*PLATFORMS, name="platform", native_enum=True, create_constraint=False, validate_strings=True)


class Tables:
    """The three social tables and the uploader table under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.metadata = MetaData()
        self.accounts = Table(
            f"{prefix}aurareels_social_accounts",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("wp_user_id", _Id, nullable=False),
            Column("platform", _platform_enum(), nullable=False),
            Column("account_id", String(255), nullable=False),
            Column("account_name", String(255), nullable=False),
            Column("account_username", String(255)),
            Column("account_email", String(255)),
            Column("profile_picture_url", Text),
            Column("access_token", Text, nullable=False),
            Column("refresh_token", Text),
            Column("token_expires_at", DateTime),
            Column("token_scope", Text),
            Column("is_active", _Bool, server_default="1"),
            Column("last_token_refresh", DateTime),
            Column("metadata", _LongText),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
            Column("updated_at", DateTime, server_default=func.current_timestamp()),
            # Bridge additions (sql/*/0003): an account that must be connected again, and why.
            Column("needs_reconnect", _Bool, nullable=False, server_default="0"),
            Column("reconnect_reason", String(255)),
            UniqueConstraint("platform", "account_id", "wp_user_id", name="unique_platform_account"),
            Index("user_platform", "wp_user_id", "platform"),
            Index("active_accounts", "is_active", "platform"),
        )
        self.posts = Table(
            f"{prefix}aurareels_social_posts",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("wp_user_id", _Id, nullable=False),
            Column("video_job_id", String(255), nullable=False),
            Column(
                "social_account_id",
                _Id,
                ForeignKey(f"{prefix}aurareels_social_accounts.id", ondelete="CASCADE"),
                nullable=False,
            ),
            Column("platform", _platform_enum(), nullable=False),
            Column(
                "status",
                Enum(*POST_STATUSES, name="status", native_enum=True, create_constraint=False),
                server_default="draft",
            ),
            Column("scheduled_at", DateTime),
            Column("published_at", DateTime),
            Column("platform_post_id", String(255)),
            Column("platform_post_url", Text),
            Column("video_url", Text, nullable=False),
            Column("thumbnail_url", Text),
            Column("caption", Text),
            Column("hashtags", Text),
            Column("mentions", Text),
            Column("location", String(255)),
            Column("privacy_level", String(50), server_default="PUBLIC"),
            Column("allow_comments", _Bool, server_default="1"),
            Column("allow_duet", _Bool, server_default="1"),
            Column("allow_stitch", _Bool, server_default="1"),
            Column("error_message", Text),
            Column("retry_count", Integer, server_default="0"),
            Column("last_retry_at", DateTime),
            Column("metadata", _LongText),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
            Column("updated_at", DateTime, server_default=func.current_timestamp()),
            # Bridge additions (sql/*/0004): stable error code, when the next step is due, lease.
            Column("error_code", String(64)),
            Column("next_attempt_at", DateTime),
            Column("lease_owner", String(64)),
            Column("lease_until", DateTime),
            # Bridge addition (sql/*/0006): why a publishing post waits (store/posts.WAIT_REASONS).
            Column("wait_reason", String(16)),
            # Bridge addition (sql/*/0008): the posts of one submission share it.
            Column("group_id", String(36)),
            Index("user_posts", "wp_user_id", "status"),
            Index("scheduled_posts", "status", "scheduled_at"),
            Index("video_job", "video_job_id"),
            Index("social_account", "social_account_id"),
            Index("platform_status", "platform", "status"),
            Index("bridge_group", "group_id"),
            # Bridge indexes (sql/*/0009): the dashboard's reads and the analytics sync.
            Index("bridge_user_created", "wp_user_id", "created_at", "id"),
            Index("bridge_user_published", "wp_user_id", "status", "published_at", "platform", "social_account_id"),
            Index("bridge_published", "status", "published_at"),
        )
        self.analytics = Table(
            f"{prefix}aurareels_social_analytics",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column(
                "social_post_id",
                _Id,
                ForeignKey(f"{prefix}aurareels_social_posts.id", ondelete="CASCADE"),
                nullable=False,
            ),
            Column("views", BigInteger, server_default="0"),
            Column("likes", BigInteger, server_default="0"),
            Column("comments", BigInteger, server_default="0"),
            Column("shares", BigInteger, server_default="0"),
            Column("engagement_rate", Numeric(5, 2)),
            Column("last_synced_at", DateTime),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
            Column("updated_at", DateTime, server_default=func.current_timestamp()),
            # Bridge additions (sql/*/0009): counts some platforms report (NULL where one does not),
            # and the sync's bookkeeping.
            Column("saves", BigInteger),
            Column("reach", BigInteger),
            Column("next_sync_at", DateTime),
            Column("last_attempt_at", DateTime),
            Column("sync_error", String(64)),
            Column("sync_message", String(255)),
            UniqueConstraint("social_post_id", name="unique_post_analytics"),
            Index("bridge_next_sync", "next_sync_at"),
        )
        # Bridge tables (sql/*/0009): every sync's figures, templates, hashtag groups.
        self.analytics_history = Table(
            f"{prefix}aurareels_social_analytics_history",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column(
                "social_post_id",
                _Id,
                ForeignKey(f"{prefix}aurareels_social_posts.id", ondelete="CASCADE"),
                nullable=False,
            ),
            Column("synced_at", DateTime, nullable=False),
            Column("views", BigInteger, nullable=False, server_default="0"),
            Column("likes", BigInteger, nullable=False, server_default="0"),
            Column("comments", BigInteger, nullable=False, server_default="0"),
            Column("shares", BigInteger, nullable=False, server_default="0"),
            Column("saves", BigInteger),
            Column("reach", BigInteger),
            Index("bridge_history_post", "social_post_id", "synced_at"),
        )
        self.templates = Table(
            f"{prefix}aurareels_social_templates",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("wp_user_id", _Id, nullable=False),
            Column("name", String(100), nullable=False),
            Column("caption", Text),
            Column("hashtags", Text),
            Column("platforms", String(255)),
            Column("options", Text),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
            Column("updated_at", DateTime, server_default=func.current_timestamp()),
            Index("user_templates", "wp_user_id", "id"),
        )
        self.hashtag_groups = Table(
            f"{prefix}aurareels_social_hashtag_groups",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("wp_user_id", _Id, nullable=False),
            Column("name", String(100), nullable=False),
            Column("hashtags", Text),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
            Column("updated_at", DateTime, server_default=func.current_timestamp()),
            Index("user_hashtag_groups", "wp_user_id", "id"),
        )
        # Bridge tables (sql/*/0004).
        self.requests = Table(
            f"{prefix}aurareels_bridge_requests",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("wp_user_id", _Id, nullable=False),
            Column("route", String(32), nullable=False),
            Column("idem_key", String(128), nullable=False),
            Column("request_hash", String(64), nullable=False),
            Column("status_code", Integer),
            Column("response", _LongText),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
        )
        self.webhook_events = Table(
            f"{prefix}aurareels_bridge_webhook_events",
            self.metadata,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("source", String(16), nullable=False),
            Column("event_key", String(64), nullable=False),
            Column("received_at", DateTime, server_default=func.current_timestamp()),
        )
        # A live post's first comment (sql/*/0008): its text, where it stands, the write-ahead
        # marker of a send in flight and the lease of the worker that holds it.
        self.first_comments = Table(
            f"{prefix}aurareels_bridge_first_comments",
            self.metadata,
            Column("post_id", _Id, ForeignKey(f"{prefix}aurareels_social_posts.id", ondelete="CASCADE"),
                   primary_key=True, autoincrement=False),
            Column("message", Text, nullable=False),
            Column("status", String(16), nullable=False, server_default="pending"),
            Column("platform_comment_id", String(255)),
            Column("attempts", Integer, nullable=False, server_default="0"),
            Column("in_flight", _Bool, nullable=False, server_default="0"),
            Column("sent_at", DateTime),
            Column("next_attempt_at", DateTime),
            Column("lease_owner", String(64)),
            Column("lease_until", DateTime),
            Column("error_code", String(64)),
            Column("error_message", Text),
            Column("created_at", DateTime, server_default=func.current_timestamp()),
            Column("updated_at", DateTime, server_default=func.current_timestamp()),
            Index("bridge_comment_due", "status", "next_attempt_at"),
        )
        # Read only: the uploader plugin owns this table.
        self.videos = Table(
            f"{prefix}chavetas_video_uploader",
            self.metadata,
            Column("id", _Id, primary_key=True),
            Column("job_id", String(255), nullable=False),
            Column("wp_user_id", _Id, nullable=False),
            Column("mp4_url", Text),
            Column("thumbnail_url", Text),
        )


@lru_cache(maxsize=8)
def tables_for(prefix: str) -> Tables:
    return Tables(prefix)
