-- Everything stored about an event is covered, and a ledger-wide Merkle tree with signed heads
-- (docs/integrity.md states every byte).
--
-- 1. Hash format 2. The first format (event_hash, 0001) left position, stream type and
--    program id out. Events are never rewritten, so those already stored keep format 1 and
--    say so in `hash_version`; every append from now on writes format 2, which covers every
--    column (and names its format in its first bytes). A stream's formats never go down, and
--    the Merkle tree fixes the order and hash of every event, old ones included.
-- 2. The tree: `tree_leaves` maps leaf index to position (positions may have holes, leaves
--    do not), `tree_nodes` keeps every complete aligned subtree so that a proof is a few
--    reads, `tree_heads` the signed heads. All three are append-only like events; only the
--    sealer writes them (and `programledger import`).

ALTER TABLE events ADD COLUMN hash_version smallint NOT NULL DEFAULT 1
    CHECK (hash_version IN (1, 2));
-- Rows stored so far read as 1 (PostgreSQL keeps the added default for them); new rows must
-- name their format.
ALTER TABLE events ALTER COLUMN hash_version DROP DEFAULT;

-- Length-prefixed bytes: a 4-byte big-endian length, then the bytes.
CREATE FUNCTION integrity_field(value bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT int4send(octet_length(value)) || value
$$;

CREATE FUNCTION event_hash_v2(
    prev_hash bytea, event_position bigint, event_id uuid, stream_id text, stream_type text,
    version bigint, program_id uuid, event_type text, schema_version integer, data jsonb,
    metadata jsonb, recorded_at timestamptz
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(
        convert_to('programledger-event-v2', 'UTF8') || '\x00'::bytea
        || int8send(event_position)
        || uuid_send(event_id)
        || integrity_field(convert_to(stream_id, 'UTF8'))
        || integrity_field(convert_to(stream_type, 'UTF8'))
        || int8send(version)
        || CASE WHEN program_id IS NULL THEN '\x00'::bytea
                ELSE '\x01'::bytea || uuid_send(program_id) END
        || integrity_field(convert_to(event_type, 'UTF8'))
        || int4send(schema_version)
        || integrity_field(convert_to(data::text, 'UTF8'))
        || integrity_field(convert_to(metadata::text, 'UTF8'))
        || int8send((extract(epoch FROM recorded_at) * 1000000)::bigint)
        || integrity_field(prev_hash)
    )
$$;

CREATE FUNCTION refuse_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % on %.% is refused',
        TG_TABLE_NAME, TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TABLE tree_leaves (
    leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
    position   bigint NOT NULL UNIQUE
);

CREATE TABLE tree_nodes (
    level      smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
    node_index bigint NOT NULL CHECK (node_index >= 0),
    hash       bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, node_index)
);

CREATE TABLE tree_heads (
    tree_size    bigint PRIMARY KEY CHECK (tree_size >= 0),
    root_hash    bytea NOT NULL CHECK (octet_length(root_hash) = 32),
    timestamp_ms bigint NOT NULL,
    previous     bytea NOT NULL CHECK (octet_length(previous) = 32),
    -- sha256 of the signed bytes: what the next head names as previous.
    digest       bytea NOT NULL UNIQUE,
    -- sha256 of the raw 32-byte Ed25519 public key that signed it.
    key_id       bytea NOT NULL,
    signature    bytea NOT NULL CHECK (octet_length(signature) = 64)
);

-- The public keys heads were signed with (never a private key), for the API to show; an
-- auditor checks against a copy of his own (docs/integrity.md).
CREATE TABLE signing_keys (
    key_id        bytea PRIMARY KEY,
    public_key    bytea NOT NULL CHECK (octet_length(public_key) = 32),
    first_used_at timestamptz NOT NULL DEFAULT now()
);

-- How far the heads have been published to NATS, per sealer name.
CREATE TABLE tree_head_publications (
    name      text PRIMARY KEY,
    tree_size bigint NOT NULL CHECK (tree_size >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER tree_leaves_append_only_rows BEFORE UPDATE OR DELETE ON tree_leaves
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER tree_leaves_append_only_truncate BEFORE TRUNCATE ON tree_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER tree_nodes_append_only_rows BEFORE UPDATE OR DELETE ON tree_nodes
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER tree_nodes_append_only_truncate BEFORE TRUNCATE ON tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER tree_heads_append_only_rows BEFORE UPDATE OR DELETE ON tree_heads
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER tree_heads_append_only_truncate BEFORE TRUNCATE ON tree_heads
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- Appends events to one stream. One statement, so one round trip and one transaction when
-- called on its own.
--
-- It does not NOTIFY: PostgreSQL serialises the commits of every notifying transaction on a
-- cluster-wide lock held through the WAL flush, which measured at 0.6x the throughput of a
-- plain insert with 8 writers. The store notifies right after the commit instead (see
-- PostgresEventStore), and listeners poll as a fallback.
--
-- Ordering: positions come from a sequence, and sequence values can commit out of order.
-- To let readers trust "every committed event below the oldest running transaction", the
-- transaction id and the positions are taken together under a short global advisory lock,
-- so position order equals transaction-id order among appends. The lock is held for a few
-- microseconds, never across I/O or a commit, so commits still group.
CREATE OR REPLACE FUNCTION append_events(
    p_stream_id text,
    p_stream_type text,
    p_expected_version bigint,          -- NULL = any, 0 = no stream yet, n = exactly n
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions integer[],
    p_data jsonb[],
    p_metadata jsonb,
    p_program_id uuid,
    p_idempotency_key text,
    p_fingerprint bytea
) RETURNS TABLE (
    first_version bigint, last_version bigint, first_position bigint, last_position bigint,
    event_ids uuid[], recorded_at timestamptz, replayed boolean
)
LANGUAGE plpgsql
-- Runs with its owner's rights, so the application role needs no INSERT on events at all
-- (infra/sql/app_role.sql): every event goes through the checks and the hash chain here.
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    n integer := cardinality(p_event_ids);
    v_lock_key bigint := hashtextextended(current_schema() || '.event_position', 0);
    v_current bigint;
    v_hash bytea;
    v_prevs bytea[] := '{}';
    v_hashes bytea[] := '{}';
    v_key record;
    v_tx xid8;
    v_first_pos bigint;
    v_now timestamptz;
    i integer;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RAISE EXCEPTION 'an append needs at least one event' USING ERRCODE = 'PL400';
    END IF;

    IF p_idempotency_key IS NOT NULL THEN
        -- Serialise commands that share a key, then answer a repeat with the first result.
        PERFORM pg_advisory_xact_lock(hashtextextended('idempotency:' || p_idempotency_key, 0));
        SELECT * INTO v_key FROM idempotency_keys k WHERE k.key = p_idempotency_key;
        IF FOUND THEN
            IF v_key.fingerprint <> p_fingerprint OR v_key.stream_id <> p_stream_id THEN
                RAISE EXCEPTION 'idempotency key reused' USING ERRCODE = 'PL422',
                    DETAIL = p_idempotency_key;
            END IF;
            RETURN QUERY SELECT v_key.first_version, v_key.last_version, v_key.first_position,
                v_key.last_position, v_key.event_ids, v_key.recorded_at, true;
            RETURN;
        END IF;
    END IF;

    -- Serialise writers of one stream until commit without taking a transaction id yet.
    PERFORM pg_advisory_xact_lock(hashtextextended('stream:' || p_stream_id, 0));

    SELECT s.version, s.last_hash INTO v_current, v_hash FROM streams s
        WHERE s.stream_id = p_stream_id;
    IF NOT FOUND THEN
        v_current := 0;
        v_hash := '\x'::bytea;
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> v_current THEN
        RAISE EXCEPTION 'version conflict' USING ERRCODE = 'PL409', DETAIL = v_current::text;
    END IF;

    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'append_events must be the first write of its transaction'
            USING ERRCODE = 'PL500';
    END IF;
    PERFORM pg_advisory_lock(v_lock_key);
    BEGIN
        v_tx := pg_current_xact_id();
        v_first_pos := nextval('event_position_seq');
        IF n > 1 THEN
            -- Reserve the rest of the block; under the lock they follow v_first_pos.
            PERFORM nextval('event_position_seq') FROM generate_series(2, n);
        END IF;
        v_now := clock_timestamp();
        PERFORM pg_advisory_unlock(v_lock_key);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_advisory_unlock(v_lock_key);
        RAISE;
    END;

    -- The chain is sequential, so hashes are computed in a loop (format 2: every column,
    -- see event_hash_v2); the rows then go in with one INSERT.
    FOR i IN 1..n LOOP
        v_prevs[i] := v_hash;
        v_hash := event_hash_v2(v_hash, v_first_pos + i - 1, p_event_ids[i], p_stream_id,
            p_stream_type, v_current + i, p_program_id, p_event_types[i],
            p_schema_versions[i], p_data[i], p_metadata, v_now);
        v_hashes[i] := v_hash;
    END LOOP;
    INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, version,
        event_type, schema_version, program_id, data, metadata, recorded_at, prev_hash, hash,
        hash_version)
    SELECT v_first_pos + e.i - 1, v_tx, e.event_id, p_stream_id, p_stream_type,
        v_current + e.i, e.event_type, e.schema_version, p_program_id, e.data, p_metadata,
        v_now, e.prev_hash, e.hash, 2
    FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_data, v_prevs, v_hashes)
        WITH ORDINALITY AS e(event_id, event_type, schema_version, data, prev_hash, hash, i);

    INSERT INTO streams AS s (stream_id, stream_type, version, last_position, last_hash,
        created_at, updated_at)
    VALUES (p_stream_id, p_stream_type, v_current + n, v_first_pos + n - 1, v_hash, v_now, v_now)
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version,
        last_position = EXCLUDED.last_position, last_hash = EXCLUDED.last_hash,
        updated_at = EXCLUDED.updated_at;

    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, fingerprint, stream_id, first_version, last_version,
            first_position, last_position, event_ids, recorded_at)
        VALUES (p_idempotency_key, p_fingerprint, p_stream_id, v_current + 1, v_current + n,
            v_first_pos, v_first_pos + n - 1, p_event_ids, v_now);
    END IF;

    RETURN QUERY SELECT v_current + 1, v_current + n, v_first_pos, v_first_pos + n - 1,
        p_event_ids, v_now, false;
END;
$$;
