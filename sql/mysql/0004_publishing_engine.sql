-- The publishing engine's bookkeeping on each post, all additive with defaults:
-- error_code: a stable code beside the human error_message;
-- next_attempt_at: when the next step of a publishing post is due (processing waits, rate limits,
--   retries), so the sweeper can find work from MySQL alone after Redis is wiped;
-- lease_owner / lease_until: which worker holds the post, and until when: a post whose lease ran
--   out while publishing is resumed from its checkpoint by the sweeper.
ALTER TABLE `{prefix}aurareels_social_posts`
  ADD COLUMN IF NOT EXISTS `error_code` VARCHAR(64) DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `next_attempt_at` DATETIME DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `lease_owner` VARCHAR(64) DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `lease_until` DATETIME DEFAULT NULL,
  ADD INDEX IF NOT EXISTS `bridge_due` (`status`, `next_attempt_at`);

-- Repeated requests with the same Idempotency-Key answer the first response.
CREATE TABLE IF NOT EXISTS `{prefix}aurareels_bridge_requests` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `wp_user_id` BIGINT(20) UNSIGNED NOT NULL,
  `route` VARCHAR(32) NOT NULL,
  `idem_key` VARCHAR(128) NOT NULL,
  `request_hash` CHAR(64) NOT NULL,
  `status_code` INT DEFAULT NULL,
  `response` LONGTEXT DEFAULT NULL,
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `bridge_idem` (`wp_user_id`, `route`, `idem_key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Inbound webhook events already handled (platforms redeliver).
CREATE TABLE IF NOT EXISTS `{prefix}aurareels_bridge_webhook_events` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `source` VARCHAR(16) NOT NULL,
  `event_key` CHAR(64) NOT NULL,
  `received_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `bridge_event` (`source`, `event_key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
