-- Every second-factor check counts the account's unused recovery codes
-- (for the "few left" warning). Through recovery_codes_by_user that read
-- each code's row to test used_at; this index holds only the unused codes,
-- so the count reads a few entries of one index page.
CREATE INDEX recovery_codes_unused ON recovery_codes(user_id) WHERE used_at IS NULL;
