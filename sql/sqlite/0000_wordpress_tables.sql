-- The embedded (SQLite) form of the three WordPress tables of seed 000: same names, columns,
-- defaults and indexes. SQLite has no ENUM and no ON UPDATE; the bridge writes `updated_at` itself.
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_social_accounts" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "wp_user_id" INTEGER NOT NULL,
  "platform" VARCHAR(16) NOT NULL,
  "account_id" VARCHAR(255) NOT NULL,
  "account_name" VARCHAR(255) NOT NULL,
  "account_username" VARCHAR(255) DEFAULT NULL,
  "account_email" VARCHAR(255) DEFAULT NULL,
  "profile_picture_url" TEXT DEFAULT NULL,
  "access_token" TEXT NOT NULL,
  "refresh_token" TEXT DEFAULT NULL,
  "token_expires_at" DATETIME DEFAULT NULL,
  "token_scope" TEXT DEFAULT NULL,
  "is_active" TINYINT DEFAULT 1,
  "last_token_refresh" DATETIME DEFAULT NULL,
  "metadata" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  "updated_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "unique_platform_account" UNIQUE ("platform", "account_id", "wp_user_id")
);
CREATE INDEX IF NOT EXISTS "{prefix}user_platform" ON "{prefix}aurareels_social_accounts" ("wp_user_id", "platform");
CREATE INDEX IF NOT EXISTS "{prefix}active_accounts" ON "{prefix}aurareels_social_accounts" ("is_active", "platform");

CREATE TABLE IF NOT EXISTS "{prefix}aurareels_social_posts" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "wp_user_id" INTEGER NOT NULL,
  "video_job_id" VARCHAR(255) NOT NULL,
  "social_account_id" INTEGER NOT NULL REFERENCES "{prefix}aurareels_social_accounts" ("id") ON DELETE CASCADE,
  "platform" VARCHAR(16) NOT NULL,
  "status" VARCHAR(16) DEFAULT 'draft',
  "scheduled_at" DATETIME DEFAULT NULL,
  "published_at" DATETIME DEFAULT NULL,
  "platform_post_id" VARCHAR(255) DEFAULT NULL,
  "platform_post_url" TEXT DEFAULT NULL,
  "video_url" TEXT NOT NULL,
  "thumbnail_url" TEXT DEFAULT NULL,
  "caption" TEXT DEFAULT NULL,
  "hashtags" TEXT DEFAULT NULL,
  "mentions" TEXT DEFAULT NULL,
  "location" VARCHAR(255) DEFAULT NULL,
  "privacy_level" VARCHAR(50) DEFAULT 'PUBLIC',
  "allow_comments" TINYINT DEFAULT 1,
  "allow_duet" TINYINT DEFAULT 1,
  "allow_stitch" TINYINT DEFAULT 1,
  "error_message" TEXT DEFAULT NULL,
  "retry_count" INTEGER DEFAULT 0,
  "last_retry_at" DATETIME DEFAULT NULL,
  "metadata" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  "updated_at" DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "{prefix}user_posts" ON "{prefix}aurareels_social_posts" ("wp_user_id", "status");
CREATE INDEX IF NOT EXISTS "{prefix}scheduled_posts" ON "{prefix}aurareels_social_posts" ("status", "scheduled_at");
CREATE INDEX IF NOT EXISTS "{prefix}video_job" ON "{prefix}aurareels_social_posts" ("video_job_id");
CREATE INDEX IF NOT EXISTS "{prefix}social_account" ON "{prefix}aurareels_social_posts" ("social_account_id");
CREATE INDEX IF NOT EXISTS "{prefix}platform_status" ON "{prefix}aurareels_social_posts" ("platform", "status");

CREATE TABLE IF NOT EXISTS "{prefix}aurareels_social_analytics" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "social_post_id" INTEGER NOT NULL REFERENCES "{prefix}aurareels_social_posts" ("id") ON DELETE CASCADE,
  "views" BIGINT DEFAULT 0,
  "likes" BIGINT DEFAULT 0,
  "comments" BIGINT DEFAULT 0,
  "shares" BIGINT DEFAULT 0,
  "engagement_rate" DECIMAL(5,2) DEFAULT NULL,
  "last_synced_at" DATETIME DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  "updated_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "unique_post_analytics" UNIQUE ("social_post_id")
);
