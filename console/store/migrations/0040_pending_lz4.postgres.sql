-- The pending rows' arrays compressed with lz4 instead of pglz
-- (PostgreSQL; docs/scale.md "Thirteenth round (b)").
--
-- A chunk's pending rows (migration 0036) are a row of arrays per table,
-- each array larger than a page's share of a row, so PostgreSQL compresses
-- every one of them at the insert (TOAST) and the fold decompresses them
-- again a few seconds later. pglz, the default, took ~0.3 ms of the
-- database's CPU per chunk for the two rows' 19 arrays; lz4 about a fifth
-- of that, for ~30 % more bytes (the rows live a few seconds).
--
-- SET COMPRESSION needs PostgreSQL 14 and a server built with lz4
-- (Debian's and the PGDG packages are); elsewhere the columns keep pglz
-- and nothing else changes (the block below reports it as a NOTICE). It
-- changes how new values are stored, not the rows already there, and
-- takes no rewrite.
--
-- The statements are EXECUTEd, not written in the block: PL/pgSQL parses
-- a block's static statements before it runs it, so on PostgreSQL 13 and
-- older (no SET COMPRESSION clause) the syntax error would be raised
-- outside the EXCEPTION handler and fail the migration.
--
-- One statement for splitSQL: no line of the block but its last ends with
-- a semicolon.
DO $$
BEGIN
  EXECUTE 'ALTER TABLE roll_app_chunk_pending '
    'ALTER COLUMN span SET COMPRESSION lz4, ALTER COLUMN bucket SET COMPRESSION lz4, '
    'ALTER COLUMN app_id SET COMPRESSION lz4, ALTER COLUMN domain SET COMPRESSION lz4, '
    'ALTER COLUMN transactions SET COMPRESSION lz4, ALTER COLUMN bytes_sent SET COMPRESSION lz4, '
    'ALTER COLUMN bytes_received SET COMPRESSION lz4, ALTER COLUMN blocks SET COMPRESSION lz4, '
    'ALTER COLUMN warns SET COMPRESSION lz4, ALTER COLUMN bypasses SET COMPRESSION lz4, '
    'ALTER COLUMN audits SET COMPRESSION lz4, ALTER COLUMN failures SET COMPRESSION lz4, '
    'ALTER COLUMN last_hour SET COMPRESSION lz4'
  ; EXECUTE 'ALTER TABLE roll_app_user_chunk_pending '
    'ALTER COLUMN span SET COMPRESSION lz4, ALTER COLUMN bucket SET COMPRESSION lz4, '
    'ALTER COLUMN app_id SET COMPRESSION lz4, ALTER COLUMN domain SET COMPRESSION lz4, '
    'ALTER COLUMN user_name SET COMPRESSION lz4, ALTER COLUMN bypassed SET COMPRESSION lz4'
  ; EXCEPTION WHEN feature_not_supported OR syntax_error THEN
  RAISE NOTICE 'pending arrays keep pglz: %', SQLERRM
  ; END
$$;
