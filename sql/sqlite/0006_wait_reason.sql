-- Why a publishing post waits until next_attempt_at (see the MySQL file).
ALTER TABLE "{prefix}aurareels_social_posts" ADD COLUMN "wait_reason" VARCHAR(16) DEFAULT NULL;
