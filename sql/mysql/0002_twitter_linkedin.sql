-- X and LinkedIn join the four platforms of the seed: ENUM values appended, order kept, so every
-- row the PHP plugin wrote keeps its value.
ALTER TABLE `{prefix}aurareels_social_accounts`
  MODIFY `platform` ENUM('tiktok', 'instagram', 'facebook', 'youtube', 'twitter', 'linkedin') NOT NULL;

ALTER TABLE `{prefix}aurareels_social_posts`
  MODIFY `platform` ENUM('tiktok', 'instagram', 'facebook', 'youtube', 'twitter', 'linkedin') NOT NULL;
