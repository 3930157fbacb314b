-- The hour of each raw chunk's oldest record (issue 18, hunting): a hunt
-- reads its index from the oldest record a kept chunk holds, instead of
-- from a week before the oldest kept chunk's receipt (which, once
-- retention has removed older chunks, made it read a week of index rows
-- that point at nothing). Chunks stored before this migration get the
-- old bound, so nothing they hold is passed over.
ALTER TABLE chunks ADD COLUMN first_hour BIGINT NOT NULL DEFAULT 0;
UPDATE chunks SET first_hour = (received_at / 1000 - 604800) - ((received_at / 1000 - 604800) % 3600);
CREATE INDEX chunks_first_hour ON chunks(first_hour);
