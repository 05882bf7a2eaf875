-- The video uploader's table, which the bridge only reads (job_id, wp_user_id, mp4_url,
-- thumbnail_url). Created only where it is absent: on a real site the uploader plugin owns it.
CREATE TABLE IF NOT EXISTS `{prefix}chavetas_video_uploader` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `job_id` VARCHAR(255) NOT NULL,
  `wp_user_id` BIGINT(20) UNSIGNED NOT NULL,
  `mp4_url` TEXT DEFAULT NULL,
  `thumbnail_url` TEXT DEFAULT NULL,
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `job_id` (`job_id`(191)),
  KEY `wp_user_id` (`wp_user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
