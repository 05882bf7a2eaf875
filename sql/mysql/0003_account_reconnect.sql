-- The bridge tells a creator when an account must be connected again (refresh failed for good,
-- authorization removed on the platform). Additive: defaults keep the plugin's rows valid.
ALTER TABLE `{prefix}aurareels_social_accounts`
  ADD COLUMN IF NOT EXISTS `needs_reconnect` TINYINT(1) NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS `reconnect_reason` VARCHAR(255) DEFAULT NULL;
