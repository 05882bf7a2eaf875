-- The composer: a submission's group id and first comments (see the MySQL file for why).
ALTER TABLE "{prefix}aurareels_social_posts" ADD COLUMN "group_id" VARCHAR(36) DEFAULT NULL;
CREATE INDEX IF NOT EXISTS "{prefix}bridge_group" ON "{prefix}aurareels_social_posts" ("group_id");
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_bridge_first_comments" (
  "post_id" INTEGER PRIMARY KEY REFERENCES "{prefix}aurareels_social_posts" ("id") ON DELETE CASCADE,
  "message" TEXT NOT NULL,
  "status" VARCHAR(16) NOT NULL DEFAULT 'pending',
  "platform_comment_id" VARCHAR(255) DEFAULT NULL,
  "attempts" INTEGER NOT NULL DEFAULT 0,
  "in_flight" TINYINT NOT NULL DEFAULT 0,
  "sent_at" DATETIME DEFAULT NULL,
  "next_attempt_at" DATETIME DEFAULT NULL,
  "lease_owner" VARCHAR(64) DEFAULT NULL,
  "lease_until" DATETIME DEFAULT NULL,
  "error_code" VARCHAR(64) DEFAULT NULL,
  "error_message" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  "updated_at" DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "{prefix}bridge_comment_due" ON "{prefix}aurareels_bridge_first_comments" ("status", "next_attempt_at");
