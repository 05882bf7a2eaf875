-- Analytics the dashboard reads, post templates and hashtag groups. All additive.
--
-- The seed's analytics row stays the latest figures of a post (one row per post). It gains the
-- two counts some platforms report beside views/likes/comments/shares (NULL: the platform does
-- not report it) and the sync's bookkeeping: when the post is next due (by its age), the last
-- fetch attempt (a manual refresh is allowed once a minute), and why metrics cannot be read
-- (e.g. metrics_unavailable), in which case the periodic sync leaves the post alone.
ALTER TABLE `{prefix}aurareels_social_analytics`
  ADD COLUMN IF NOT EXISTS `saves` BIGINT DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `reach` BIGINT DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `next_sync_at` DATETIME DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `last_attempt_at` DATETIME DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `sync_error` VARCHAR(64) DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS `sync_message` VARCHAR(255) DEFAULT NULL,
  ADD INDEX IF NOT EXISTS `bridge_next_sync` (`next_sync_at`);

-- Every sync's figures, one row per fetch (the history a post's chart is drawn from).
CREATE TABLE `{prefix}aurareels_social_analytics_history` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `social_post_id` BIGINT(20) UNSIGNED NOT NULL,
  `synced_at` DATETIME NOT NULL,
  `views` BIGINT NOT NULL DEFAULT 0,
  `likes` BIGINT NOT NULL DEFAULT 0,
  `comments` BIGINT NOT NULL DEFAULT 0,
  `shares` BIGINT NOT NULL DEFAULT 0,
  `saves` BIGINT DEFAULT NULL,
  `reach` BIGINT DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `bridge_history_post` (`social_post_id`, `synced_at`),
  FOREIGN KEY (`social_post_id`) REFERENCES `{prefix}aurareels_social_posts` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The reads of the dashboard, each served by one index range:
-- bridge_user_created: GET /posts, newest first (created_at, id);
-- bridge_user_published: a user's published posts in a window (analytics summary, best times),
--   covering the platform and account so the summary reads the posts side from the index alone;
-- bridge_published: published posts of the last 90 days not synced yet (the periodic sync).
ALTER TABLE `{prefix}aurareels_social_posts`
  ADD INDEX IF NOT EXISTS `bridge_user_created` (`wp_user_id`, `created_at`, `id`),
  ADD INDEX IF NOT EXISTS `bridge_user_published` (`wp_user_id`, `status`, `published_at`, `platform`, `social_account_id`),
  ADD INDEX IF NOT EXISTS `bridge_published` (`status`, `published_at`);

-- The user's post templates and hashtag groups. The WordPress plugin creates the same two tables
-- with dbDelta (same column spelling, so neither side finds anything to change in the other's).
CREATE TABLE `{prefix}aurareels_social_templates` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `wp_user_id` bigint(20) unsigned NOT NULL,
  `name` varchar(100) NOT NULL,
  `caption` text DEFAULT NULL,
  `hashtags` text DEFAULT NULL COMMENT 'JSON array of hashtags',
  `platforms` varchar(255) DEFAULT NULL COMMENT 'JSON array of platform values',
  `options` text DEFAULT NULL COMMENT 'JSON object: per-platform options',
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  KEY `user_templates` (`wp_user_id`,`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `{prefix}aurareels_social_hashtag_groups` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `wp_user_id` bigint(20) unsigned NOT NULL,
  `name` varchar(100) NOT NULL,
  `hashtags` text DEFAULT NULL COMMENT 'JSON array of hashtags',
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  KEY `user_hashtag_groups` (`wp_user_id`,`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
