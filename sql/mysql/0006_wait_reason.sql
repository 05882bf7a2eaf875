-- Why a publishing post waits until next_attempt_at: quota (its account's daily limit),
-- rate_limit (the platform asked it to slow down), processing (the platform is processing the
-- media), retry (a transient error, tried again with back-off); NULL when nothing waits.
ALTER TABLE `{prefix}aurareels_social_posts`
  ADD COLUMN IF NOT EXISTS `wait_reason` VARCHAR(16) DEFAULT NULL;
