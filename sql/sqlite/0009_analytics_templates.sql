-- Analytics the dashboard reads, post templates and hashtag groups (see the MySQL file for why).
ALTER TABLE "{prefix}aurareels_social_analytics" ADD COLUMN "saves" BIGINT DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_analytics" ADD COLUMN "reach" BIGINT DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_analytics" ADD COLUMN "next_sync_at" DATETIME DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_analytics" ADD COLUMN "last_attempt_at" DATETIME DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_analytics" ADD COLUMN "sync_error" VARCHAR(64) DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_analytics" ADD COLUMN "sync_message" VARCHAR(255) DEFAULT NULL;
CREATE INDEX IF NOT EXISTS "{prefix}bridge_next_sync" ON "{prefix}aurareels_social_analytics" ("next_sync_at");
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_social_analytics_history" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "social_post_id" INTEGER NOT NULL REFERENCES "{prefix}aurareels_social_posts" ("id") ON DELETE CASCADE,
  "synced_at" DATETIME NOT NULL,
  "views" BIGINT NOT NULL DEFAULT 0,
  "likes" BIGINT NOT NULL DEFAULT 0,
  "comments" BIGINT NOT NULL DEFAULT 0,
  "shares" BIGINT NOT NULL DEFAULT 0,
  "saves" BIGINT DEFAULT NULL,
  "reach" BIGINT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS "{prefix}bridge_history_post" ON "{prefix}aurareels_social_analytics_history" ("social_post_id", "synced_at");
CREATE INDEX IF NOT EXISTS "{prefix}bridge_user_created" ON "{prefix}aurareels_social_posts" ("wp_user_id", "created_at", "id");
CREATE INDEX IF NOT EXISTS "{prefix}bridge_user_published" ON "{prefix}aurareels_social_posts" ("wp_user_id", "status", "published_at", "platform", "social_account_id");
CREATE INDEX IF NOT EXISTS "{prefix}bridge_published" ON "{prefix}aurareels_social_posts" ("status", "published_at");
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_social_templates" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "wp_user_id" INTEGER NOT NULL,
  "name" VARCHAR(100) NOT NULL,
  "caption" TEXT DEFAULT NULL,
  "hashtags" TEXT DEFAULT NULL,
  "platforms" VARCHAR(255) DEFAULT NULL,
  "options" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  "updated_at" DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "{prefix}user_templates" ON "{prefix}aurareels_social_templates" ("wp_user_id", "id");
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_social_hashtag_groups" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "wp_user_id" INTEGER NOT NULL,
  "name" VARCHAR(100) NOT NULL,
  "hashtags" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  "updated_at" DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "{prefix}user_hashtag_groups" ON "{prefix}aurareels_social_hashtag_groups" ("wp_user_id", "id");
