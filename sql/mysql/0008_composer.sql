-- The composer: posts of one submission share a group id, and a post's first comment is posted
-- once after the post is live. Additive: rows written by the plugin keep group_id NULL.
ALTER TABLE `{prefix}aurareels_social_posts`
  ADD COLUMN IF NOT EXISTS `group_id` VARCHAR(36) DEFAULT NULL,
  ADD INDEX IF NOT EXISTS `bridge_group` (`group_id`);

-- One row per live post that has a first comment to post (created when the post is published):
-- its text, where it stands, the write-ahead marker of a send in flight (`in_flight`, with the
-- time the send began) so a crash is settled by reading the post's comments before anything is
-- sent again, and the lease of the worker that holds it.
CREATE TABLE IF NOT EXISTS `{prefix}aurareels_bridge_first_comments` (
  `post_id` BIGINT(20) UNSIGNED NOT NULL,
  `message` TEXT NOT NULL,
  `status` VARCHAR(16) NOT NULL DEFAULT 'pending',
  `platform_comment_id` VARCHAR(255) DEFAULT NULL,
  `attempts` INT NOT NULL DEFAULT 0,
  `in_flight` TINYINT(1) NOT NULL DEFAULT 0,
  `sent_at` DATETIME DEFAULT NULL,
  `next_attempt_at` DATETIME DEFAULT NULL,
  `lease_owner` VARCHAR(64) DEFAULT NULL,
  `lease_until` DATETIME DEFAULT NULL,
  `error_code` VARCHAR(64) DEFAULT NULL,
  `error_message` TEXT DEFAULT NULL,
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `updated_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`post_id`),
  KEY `bridge_comment_due` (`status`, `next_attempt_at`),
  FOREIGN KEY (`post_id`) REFERENCES `{prefix}aurareels_social_posts`(`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
