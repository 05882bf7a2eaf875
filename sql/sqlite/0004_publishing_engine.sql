-- The publishing engine's bookkeeping (see the MySQL file for what each column is for).
ALTER TABLE "{prefix}aurareels_social_posts" ADD COLUMN "error_code" VARCHAR(64) DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_posts" ADD COLUMN "next_attempt_at" DATETIME DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_posts" ADD COLUMN "lease_owner" VARCHAR(64) DEFAULT NULL;
ALTER TABLE "{prefix}aurareels_social_posts" ADD COLUMN "lease_until" DATETIME DEFAULT NULL;
CREATE INDEX IF NOT EXISTS "{prefix}bridge_due" ON "{prefix}aurareels_social_posts" ("status", "next_attempt_at");
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_bridge_requests" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "wp_user_id" INTEGER NOT NULL,
  "route" VARCHAR(32) NOT NULL,
  "idem_key" VARCHAR(128) NOT NULL,
  "request_hash" CHAR(64) NOT NULL,
  "status_code" INTEGER DEFAULT NULL,
  "response" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "bridge_idem" UNIQUE ("wp_user_id", "route", "idem_key")
);
CREATE TABLE IF NOT EXISTS "{prefix}aurareels_bridge_webhook_events" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "source" VARCHAR(16) NOT NULL,
  "event_key" CHAR(64) NOT NULL,
  "received_at" DATETIME DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "bridge_event" UNIQUE ("source", "event_key")
);
