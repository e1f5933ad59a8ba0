-- append_batch (0020) reads the heads of all the streams of its commands in one statement,
-- `streams.stream_id = ANY(p_stream_ids)`. On a table without statistics (never analyzed:
-- autovacuum off or behind, a fresh or bulk-loaded store) the planner takes each id for
-- 0.5% of the rows, so from a few dozen streams it planned a sequential scan of `streams`,
-- a cost that grew with the store: 1.2M rows read per 2 s round at 128 concurrent commands
-- (pg_stat_user_tables), where the primary key finds each head directly.
--
-- Every statement of the function has an index that serves it (the streams' and the
-- idempotency keys' primary keys, the UPSERTs' arbiters) or reads no table at all (the
-- unnests), so the function plans without sequential scans whatever the statistics say.
-- A setting of the function rather than a new body: the statements stay those of 0020.
ALTER FUNCTION append_batch(text[], text[], bigint[], jsonb[], uuid[], text[], bytea[],
    integer[], uuid[], text[], integer[], jsonb[]) SET enable_seqscan = off;
