-- The video uploader's table (read only by the bridge); created only where it is absent.
CREATE TABLE IF NOT EXISTS "{prefix}chavetas_video_uploader" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "job_id" VARCHAR(255) NOT NULL UNIQUE,
  "wp_user_id" INTEGER NOT NULL,
  "mp4_url" TEXT DEFAULT NULL,
  "thumbnail_url" TEXT DEFAULT NULL,
  "created_at" DATETIME DEFAULT CURRENT_TIMESTAMP
);
