-- The three WordPress tables exactly as the AuraReels plugin creates them (seed 000), with the
-- table prefix as the placeholder {prefix}. `migrate` runs each statement as CREATE TABLE IF NOT
-- EXISTS, so a database where the plugin already created them is left as it is.

CREATE TABLE `{prefix}aurareels_social_accounts` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `wp_user_id` BIGINT(20) UNSIGNED NOT NULL,
  `platform` ENUM('tiktok', 'instagram', 'facebook', 'youtube') NOT NULL,
  `account_id` VARCHAR(255) NOT NULL COMMENT 'Platform-specific user ID',
  `account_name` VARCHAR(255) NOT NULL COMMENT 'Display name or username',
  `account_username` VARCHAR(255) DEFAULT NULL COMMENT '@username',
  `account_email` VARCHAR(255) DEFAULT NULL,
  `profile_picture_url` TEXT DEFAULT NULL,
  `access_token` TEXT NOT NULL COMMENT 'Encrypted OAuth access token',
  `refresh_token` TEXT DEFAULT NULL COMMENT 'Encrypted OAuth refresh token',
  `token_expires_at` DATETIME DEFAULT NULL COMMENT 'When access token expires',
  `token_scope` TEXT DEFAULT NULL COMMENT 'OAuth scopes granted',
  `is_active` TINYINT(1) DEFAULT 1 COMMENT '1=active, 0=disconnected',
  `last_token_refresh` DATETIME DEFAULT NULL,
  `metadata` LONGTEXT DEFAULT NULL COMMENT 'JSON: platform-specific data',
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `updated_at` DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `unique_platform_account` (`platform`, `account_id`, `wp_user_id`),
  KEY `user_platform` (`wp_user_id`, `platform`),
  KEY `active_accounts` (`is_active`, `platform`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `{prefix}aurareels_social_posts` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `wp_user_id` BIGINT(20) UNSIGNED NOT NULL,
  `video_job_id` VARCHAR(255) NOT NULL COMMENT 'FK to wp_chavetas_video_uploader.job_id',
  `social_account_id` BIGINT(20) UNSIGNED NOT NULL COMMENT 'FK to wp_aurareels_social_accounts.id',
  `platform` ENUM('tiktok', 'instagram', 'facebook', 'youtube') NOT NULL,
  `status` ENUM('draft', 'scheduled', 'publishing', 'published', 'failed', 'cancelled') DEFAULT 'draft',
  `scheduled_at` DATETIME DEFAULT NULL COMMENT 'When to publish (NULL = immediate)',
  `published_at` DATETIME DEFAULT NULL COMMENT 'Actual publish time',
  `platform_post_id` VARCHAR(255) DEFAULT NULL COMMENT 'Post ID from platform API',
  `platform_post_url` TEXT DEFAULT NULL COMMENT 'Public URL to the post',
  `video_url` TEXT NOT NULL COMMENT 'Public MP4 URL for upload',
  `thumbnail_url` TEXT DEFAULT NULL,
  `caption` TEXT DEFAULT NULL,
  `hashtags` TEXT DEFAULT NULL COMMENT 'JSON array of hashtags',
  `mentions` TEXT DEFAULT NULL COMMENT 'JSON array of @mentions',
  `location` VARCHAR(255) DEFAULT NULL,
  `privacy_level` VARCHAR(50) DEFAULT 'PUBLIC' COMMENT 'PUBLIC, FRIENDS, PRIVATE',
  `allow_comments` TINYINT(1) DEFAULT 1,
  `allow_duet` TINYINT(1) DEFAULT 1 COMMENT 'TikTok: allow duets',
  `allow_stitch` TINYINT(1) DEFAULT 1 COMMENT 'TikTok: allow stitches',
  `error_message` TEXT DEFAULT NULL,
  `retry_count` INT DEFAULT 0 COMMENT 'Number of retry attempts',
  `last_retry_at` DATETIME DEFAULT NULL,
  `metadata` LONGTEXT DEFAULT NULL COMMENT 'JSON: platform-specific publish data',
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `updated_at` DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  KEY `user_posts` (`wp_user_id`, `status`),
  KEY `scheduled_posts` (`status`, `scheduled_at`),
  KEY `video_job` (`video_job_id`),
  KEY `social_account` (`social_account_id`),
  KEY `platform_status` (`platform`, `status`),
  FOREIGN KEY (`social_account_id`) REFERENCES `{prefix}aurareels_social_accounts`(`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `{prefix}aurareels_social_analytics` (
  `id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT,
  `social_post_id` BIGINT(20) UNSIGNED NOT NULL,
  `views` BIGINT DEFAULT 0,
  `likes` BIGINT DEFAULT 0,
  `comments` BIGINT DEFAULT 0,
  `shares` BIGINT DEFAULT 0,
  `engagement_rate` DECIMAL(5,2) DEFAULT NULL,
  `last_synced_at` DATETIME DEFAULT NULL,
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `updated_at` DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `unique_post_analytics` (`social_post_id`),
  FOREIGN KEY (`social_post_id`) REFERENCES `{prefix}aurareels_social_posts`(`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
