-- The bridge tells a creator when an account must be connected again.
ALTER TABLE "{prefix}aurareels_social_accounts" ADD COLUMN "needs_reconnect" TINYINT NOT NULL DEFAULT 0;
ALTER TABLE "{prefix}aurareels_social_accounts" ADD COLUMN "reconnect_reason" VARCHAR(255) DEFAULT NULL;
