-- The append functions check the catalogue themselves; the checks the append functions
-- already guarantee leave the tables; append_events moves a stream's head with an UPDATE.
--
-- Each was a price paid on every statement, so on every single append (profiled with perf
-- at 8 writers, docs/architecture.md "What the single append no longer pays"):
--
-- * The catalogue's statement trigger (0008) ran a PL/pgSQL trigger function over a
--   transition table after each INSERT into events: 5% of all samples. The append
--   functions are the only way any role but the owner writes an event (infra/sql/roles.sql),
--   so they now look the events they have just written up in event_catalogue themselves,
--   where the trigger ran: same SQLSTATE (PL415), message and hint, and nothing written.
-- * A CHECK constraint is read back from its stored text and planned again for every INSERT
--   statement (ExecRelCheck: stringToNode, then ExecPrepareExpr): 3.5% of all samples for
--   the three on events and the one on streams. What they held is held twice over without
--   them: the append functions write version v + i from a head at v >= 0 and hash_version 2,
--   and only catalogued schema versions (event_catalogue keeps its own CHECK >= 1); and
--   `programledger verify` checks every stream's versions run 1, 2, ... with no gap and
--   every hash in a known format.
-- * INSERT ... ON CONFLICT DO UPDATE on streams probed the key, locked the row and updated
--   it. append_events has read the head under the stream's lock, so it knows which of
--   UPDATE and INSERT applies. append_batch keeps its one UPSERT over all its streams.
--
-- Machine CPU per single append with pgbench at 8 clients, alternating: 386-388 µs before,
-- 286-304 µs with all three. Each function's settings are restated, as CREATE OR REPLACE
-- resets them.

DROP TRIGGER events_catalogued ON events;
DROP FUNCTION refuse_uncatalogued_events();

ALTER TABLE events
    DROP CONSTRAINT events_version_check,
    DROP CONSTRAINT events_schema_version_check,
    DROP CONSTRAINT events_hash_version_check;
ALTER TABLE streams DROP CONSTRAINT streams_version_check;

-- append_batch as in 0052, with the catalogue check.

CREATE OR REPLACE FUNCTION append_batch(
    p_stream_ids text[],
    p_stream_types text[],
    p_expected_versions bigint[],       -- per command: NULL = any, 0 = no stream yet, n = n
    p_metadata jsonb[],
    p_program_ids uuid[],
    p_idempotency_keys text[],
    p_fingerprints bytea[],
    p_event_counts integer[],           -- per command: how many of the events below are its
    p_event_ids uuid[],                 -- per event, the commands' events one after another
    p_event_types text[],
    p_schema_versions integer[],
    p_data jsonb[]
) RETURNS TABLE (
    command integer, outcome text, first_version bigint, last_version bigint,
    first_position bigint, last_position bigint, event_ids uuid[], recorded_at timestamptz,
    stream_version bigint
)
LANGUAGE plpgsql
-- Its owner's rights, like append_events: the application role needs no INSERT on events.
SECURITY DEFINER
SET search_path FROM CURRENT
SET enable_seqscan = off
AS $$
DECLARE
    c integer := cardinality(p_stream_ids);
    n integer := cardinality(p_event_ids);
    v_order_lock bigint := hashtextextended(current_schema() || '.event_position', 0);
    -- Per command: where its events start, its stream's slot below, its first version
    -- (NULL when it is not written).
    v_start integer[] := '{}';
    v_slot integer[] := '{}';
    v_first integer[] := '{}';
    v_first_ver bigint[] := '{}';
    -- Per stream of the call: id, version and chain head (as stored, then as written).
    v_sids text[] := '{}';
    v_stypes text[] := '{}';
    v_svers bigint[] := '{}';
    v_shash bytea[] := '{}';
    v_spos bigint[] := '{}';
    v_known_ids text[];
    v_known_vers bigint[];
    v_known_hashes bytea[];
    -- Per event written.
    w integer := 0;
    v_pos bigint[];
    v_cmd integer[];
    v_vers bigint[];
    v_prevs bytea[];
    v_hashes bytea[];
    v_seg_stream bytea;
    v_seg_program bytea;
    v_seg_tail bytea;
    v_written integer[] := '{}';
    v_key record;
    v_bad record;
    v_tx xid8;
    v_first_pos bigint;
    v_now timestamptz;
    v_keyed boolean := false;
    v_hash bytea;
    k integer;
    j integer;
    i integer;
    v_at integer := 1;
BEGIN
    IF c IS NULL OR c = 0 OR n IS NULL
        OR cardinality(p_stream_types) IS DISTINCT FROM c
        OR cardinality(p_expected_versions) IS DISTINCT FROM c
        OR cardinality(p_metadata) IS DISTINCT FROM c
        OR cardinality(p_program_ids) IS DISTINCT FROM c
        OR cardinality(p_idempotency_keys) IS DISTINCT FROM c
        OR cardinality(p_fingerprints) IS DISTINCT FROM c
        OR cardinality(p_event_counts) IS DISTINCT FROM c
        OR cardinality(p_event_types) IS DISTINCT FROM n
        OR cardinality(p_schema_versions) IS DISTINCT FROM n
        OR cardinality(p_data) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'append_batch needs one entry per command in each command array and '
            'one per event in each event array' USING ERRCODE = 'PL400';
    END IF;
    FOR j IN 1..c LOOP
        IF p_event_counts[j] IS NULL OR p_event_counts[j] < 1 THEN
            RAISE EXCEPTION 'an append needs at least one event' USING ERRCODE = 'PL400';
        END IF;
        v_start[j] := v_at;
        v_at := v_at + p_event_counts[j];
    END LOOP;
    IF v_at - 1 <> n THEN
        RAISE EXCEPTION 'the event counts add up to %, but % events were given', v_at - 1, n
            USING ERRCODE = 'PL400';
    END IF;

    -- 1. Lock every stream and key, in one order, before reading anything (each statement
    -- of this function reads with a fresh snapshot, so what follows sees every append that
    -- held one of these locks). No transaction id is taken.
    IF c = 1 AND p_idempotency_keys[1] IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('stream:' || p_stream_ids[1], 0));
    ELSE
        PERFORM pg_advisory_xact_lock(l.id) FROM (
            SELECT hashtextextended('stream:' || s, 0) AS id FROM unnest(p_stream_ids) s
            UNION
            SELECT hashtextextended('idempotency:' || key, 0)
            FROM unnest(p_idempotency_keys) key WHERE key IS NOT NULL
            ORDER BY 1
        ) l;
    END IF;

    -- 2. The streams' heads, then each command in order: its key, its expected version.
    IF c = 1 THEN
        SELECT ARRAY[s.stream_id], ARRAY[s.version], ARRAY[s.last_hash]
        INTO v_known_ids, v_known_vers, v_known_hashes
        FROM streams s WHERE s.stream_id = p_stream_ids[1];
    ELSE
        SELECT array_agg(s.stream_id), array_agg(s.version), array_agg(s.last_hash)
        INTO v_known_ids, v_known_vers, v_known_hashes
        FROM streams s WHERE s.stream_id = ANY(p_stream_ids);
    END IF;

    FOR j IN 1..c LOOP
        IF p_idempotency_keys[j] IS NOT NULL THEN
            SELECT * INTO v_key FROM idempotency_keys ik WHERE ik.key = p_idempotency_keys[j];
            IF FOUND THEN
                command := j;
                IF v_key.fingerprint <> p_fingerprints[j]
                    OR v_key.stream_id <> p_stream_ids[j] THEN
                    outcome := 'key_reused';
                    first_version := NULL; last_version := NULL; first_position := NULL;
                    last_position := NULL; event_ids := NULL; recorded_at := NULL;
                ELSE
                    outcome := 'replayed';
                    first_version := v_key.first_version; last_version := v_key.last_version;
                    first_position := v_key.first_position;
                    last_position := v_key.last_position;
                    event_ids := v_key.event_ids; recorded_at := v_key.recorded_at;
                END IF;
                stream_version := NULL;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        k := array_position(v_sids, p_stream_ids[j]);
        IF k IS NULL THEN
            k := cardinality(v_sids) + 1;
            v_sids[k] := p_stream_ids[j];
            v_stypes[k] := p_stream_types[j];
            i := array_position(v_known_ids, p_stream_ids[j]);
            v_svers[k] := coalesce(v_known_vers[i], 0);
            v_shash[k] := coalesce(v_known_hashes[i], '\x'::bytea);
            -- Set only for a stream something is written to (NULL keeps the slot, so the
            -- arrays stay aligned for the UPSERT's unnest).
            v_spos[k] := NULL;
        END IF;
        IF p_expected_versions[j] IS NOT NULL AND p_expected_versions[j] <> v_svers[k] THEN
            command := j; outcome := 'conflict'; stream_version := v_svers[k];
            first_version := NULL; last_version := NULL; first_position := NULL;
            last_position := NULL; event_ids := NULL; recorded_at := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        v_slot[j] := k;
        v_first_ver[j] := v_svers[k] + 1;
        v_svers[k] := v_svers[k] + p_event_counts[j];
        v_first[j] := w + 1;
        v_written := v_written || j;
        v_keyed := v_keyed OR p_idempotency_keys[j] IS NOT NULL;
        w := w + p_event_counts[j];
    END LOOP;
    IF w = 0 THEN
        RETURN;
    END IF;

    -- 3. One block of positions for everything written, taken with the transaction id under
    -- the ordering lock, held for these few expressions only (never across I/O or commit).
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'append_events must be the first write of its transaction'
            USING ERRCODE = 'PL500';
    END IF;
    PERFORM pg_advisory_lock(v_order_lock);
    v_tx := pg_current_xact_id();
    v_first_pos := nextval('event_position_seq');
    IF w > 1 THEN
        -- Under the lock no other call takes a position: the block is contiguous.
        PERFORM setval('event_position_seq', v_first_pos + w - 1);
    END IF;
    v_now := clock_timestamp();
    PERFORM pg_advisory_unlock(v_order_lock);

    -- 4. The hash chain (format 2: the bytes event_hash_v2 hashes), in command order, so
    -- that commands on one stream chain one after the other. What a command's events share
    -- (stream, program, metadata, time) is encoded once per command; each event's row goes
    -- in the slots of its own input index, so nothing is copied into arrays in write order.
    v_pos := array_fill(NULL::bigint, ARRAY[n]);
    v_cmd := array_fill(NULL::integer, ARRAY[n]);
    v_vers := array_fill(NULL::bigint, ARRAY[n]);
    v_prevs := array_fill(NULL::bytea, ARRAY[n]);
    v_hashes := array_fill(NULL::bytea, ARRAY[n]);
    FOREACH j IN ARRAY v_written LOOP
        k := v_slot[j];
        v_hash := v_shash[k];
        v_seg_stream := integrity_field(convert_to(v_sids[k], 'UTF8'))
            || integrity_field(convert_to(v_stypes[k], 'UTF8'));
        v_seg_program := CASE WHEN p_program_ids[j] IS NULL THEN '\x00'::bytea
            ELSE '\x01'::bytea || uuid_send(p_program_ids[j]) END;
        v_seg_tail := integrity_field(convert_to(p_metadata[j]::text, 'UTF8'))
            || int8send((extract(epoch FROM v_now) * 1000000)::bigint);
        w := v_first[j] - 1;
        FOR ei IN v_start[j]..v_start[j] + p_event_counts[j] - 1 LOOP
            w := w + 1;
            v_pos[ei] := v_first_pos + w - 1;
            v_cmd[ei] := j;
            v_vers[ei] := v_first_ver[j] + ei - v_start[j];
            v_prevs[ei] := v_hash;
            v_hash := event_hash_v2_segments(v_hash, v_first_pos + w - 1, p_event_ids[ei],
                v_seg_stream, v_vers[ei], v_seg_program, p_event_types[ei],
                p_schema_versions[ei], p_data[ei], v_seg_tail);
            v_hashes[ei] := v_hash;
        END LOOP;
        v_shash[k] := v_hash;
        v_spos[k] := v_first_pos + w - 1;
    END LOOP;

    -- 5. The events (one INSERT), the stream heads and the idempotency records.
    INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, version,
        event_type, schema_version, program_id, data, metadata, recorded_at, prev_hash, hash,
        hash_version)
    SELECT e.position, v_tx, e.event_id, p_stream_ids[e.cmd], p_stream_types[e.cmd],
        e.version, e.event_type, e.schema_version, p_program_ids[e.cmd], e.data,
        p_metadata[e.cmd], v_now, e.prev_hash, e.hash, 2
    FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_data, v_cmd, v_vers, v_prevs,
        v_hashes, v_pos) AS e(event_id, event_type, schema_version, data, cmd, version,
            prev_hash, hash, position)
    WHERE e.position IS NOT NULL;

    -- The catalogue, for the events just written, where the statement trigger of 0008 ran.
    SELECT e.event_type, e.schema_version INTO v_bad
    FROM unnest(p_event_types, p_schema_versions, v_pos)
        AS e(event_type, schema_version, position)
    WHERE e.position IS NOT NULL AND NOT EXISTS (
        SELECT FROM event_catalogue c
        WHERE c.event_type = e.event_type AND c.schema_version = e.schema_version
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event type % at schema version % is not in the store''s catalogue',
            quote_literal(v_bad.event_type), v_bad.schema_version
            USING ERRCODE = 'PL415',
            HINT = 'only event types the code registers can be stored; run `programledger '
                'migrate` with the release that defines it';
    END IF;

    INSERT INTO streams AS s (stream_id, stream_type, version, last_position, last_hash,
        created_at, updated_at)
    SELECT h.stream_id, h.stream_type, h.version, h.last_position, h.last_hash, v_now, v_now
    FROM unnest(v_sids, v_stypes, v_svers, v_spos, v_shash)
        AS h(stream_id, stream_type, version, last_position, last_hash)
    WHERE h.last_position IS NOT NULL
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version,
        last_position = EXCLUDED.last_position, last_hash = EXCLUDED.last_hash,
        updated_at = EXCLUDED.updated_at;

    IF v_keyed THEN
        INSERT INTO idempotency_keys (key, fingerprint, stream_id, first_version,
            last_version, first_position, last_position, event_ids, recorded_at)
        SELECT p_idempotency_keys[x], p_fingerprints[x], p_stream_ids[x], v_first_ver[x],
            v_first_ver[x] + p_event_counts[x] - 1, v_first_pos + v_first[x] - 1,
            v_first_pos + v_first[x] + p_event_counts[x] - 2,
            p_event_ids[v_start[x]:v_start[x] + p_event_counts[x] - 1], v_now
        FROM unnest(v_written) x WHERE p_idempotency_keys[x] IS NOT NULL;
    END IF;

    FOREACH j IN ARRAY v_written LOOP
        command := j; outcome := 'appended'; stream_version := NULL;
        first_version := v_first_ver[j];
        last_version := v_first_ver[j] + p_event_counts[j] - 1;
        first_position := v_first_pos + v_first[j] - 1;
        last_position := v_first_pos + v_first[j] + p_event_counts[j] - 2;
        event_ids := p_event_ids[v_start[j]:v_start[j] + p_event_counts[j] - 1];
        recorded_at := v_now;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- append_events as in 0054, with the catalogue check and the head moved or created.
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
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    n integer := cardinality(p_event_ids);
    v_stream_lock bigint := hashtextextended('stream:' || p_stream_id, 0);
    v_key_lock bigint;
    v_current bigint;
    v_hash bytea;
    v_prevs bytea[] := '{}';
    v_hashes bytea[] := '{}';
    v_seg_stream bytea;
    v_seg_program bytea;
    v_seg_tail bytea;
    v_key record;
    v_refused boolean := false;
    v_bad_type text;
    v_bad_version integer;
    v_tx xid8;
    v_first_pos bigint;
    v_now timestamptz;
    i integer;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RAISE EXCEPTION 'an append needs at least one event' USING ERRCODE = 'PL400';
    END IF;

    IF p_idempotency_key IS NULL THEN
        PERFORM pg_advisory_xact_lock(v_stream_lock);
    ELSE
        v_key_lock := hashtextextended('idempotency:' || p_idempotency_key, 0);
        PERFORM pg_advisory_xact_lock(least(v_stream_lock, v_key_lock)),
            pg_advisory_xact_lock(greatest(v_stream_lock, v_key_lock));
        SELECT * INTO v_key FROM idempotency_keys k WHERE k.key = p_idempotency_key;
        IF FOUND THEN
            IF v_key.fingerprint <> p_fingerprint OR v_key.stream_id <> p_stream_id THEN
                RAISE EXCEPTION 'idempotency key reused' USING ERRCODE = 'PL422',
                    DETAIL = p_idempotency_key;
            END IF;
            first_version := v_key.first_version; last_version := v_key.last_version;
            first_position := v_key.first_position; last_position := v_key.last_position;
            event_ids := v_key.event_ids; recorded_at := v_key.recorded_at; replayed := true;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

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
    PERFORM pg_advisory_lock(hashtextextended(current_schema() || '.event_position', 0));
    v_tx := pg_current_xact_id();
    v_first_pos := nextval('event_position_seq');
    IF n > 1 THEN
        PERFORM setval('event_position_seq', v_first_pos + n - 1);
    END IF;
    v_now := clock_timestamp();
    PERFORM pg_advisory_unlock(hashtextextended(current_schema() || '.event_position', 0));

    IF n = 1 THEN
        -- One event, hashed in its own INSERT from the stream's head (event_hash_v2, the
        -- function verification recomputes): no segments, no loop, no arrays to unnest.
        INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, version,
            event_type, schema_version, program_id, data, metadata, recorded_at, prev_hash,
            hash, hash_version)
        VALUES (v_first_pos, v_tx, p_event_ids[1], p_stream_id, p_stream_type, v_current + 1,
            p_event_types[1], p_schema_versions[1], p_program_id, p_data[1], p_metadata, v_now,
            v_hash, event_hash_v2(v_hash, v_first_pos, p_event_ids[1], p_stream_id,
                p_stream_type, v_current + 1, p_program_id, p_event_types[1],
                p_schema_versions[1], p_data[1], p_metadata, v_now), 2)
        RETURNING hash INTO v_hash;
        -- The catalogue, for the event just written, where the statement trigger of 0008 ran.
        PERFORM FROM event_catalogue c
        WHERE c.event_type = p_event_types[1] AND c.schema_version = p_schema_versions[1];
        IF NOT FOUND THEN
            v_refused := true;
            v_bad_type := p_event_types[1];
            v_bad_version := p_schema_versions[1];
        END IF;
    ELSE
        v_seg_stream := integrity_field(convert_to(p_stream_id, 'UTF8'))
            || integrity_field(convert_to(p_stream_type, 'UTF8'));
        v_seg_program := CASE WHEN p_program_id IS NULL THEN '\x00'::bytea
            ELSE '\x01'::bytea || uuid_send(p_program_id) END;
        v_seg_tail := integrity_field(convert_to(p_metadata::text, 'UTF8'))
            || int8send((extract(epoch FROM v_now) * 1000000)::bigint);
        FOR i IN 1..n LOOP
            v_prevs[i] := v_hash;
            v_hash := event_hash_v2_segments(v_hash, v_first_pos + i - 1, p_event_ids[i],
                v_seg_stream, v_current + i, v_seg_program, p_event_types[i],
                p_schema_versions[i], p_data[i], v_seg_tail);
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
        -- The catalogue, for the events just written, where the statement trigger of 0008 ran.
        SELECT e.event_type, e.schema_version INTO v_bad_type, v_bad_version
        FROM unnest(p_event_types, p_schema_versions) AS e(event_type, schema_version)
        WHERE NOT EXISTS (
            SELECT FROM event_catalogue c
            WHERE c.event_type = e.event_type AND c.schema_version = e.schema_version
        )
        LIMIT 1;
        v_refused := FOUND;
    END IF;

    IF v_refused THEN
        RAISE EXCEPTION 'event type % at schema version % is not in the store''s catalogue',
            quote_nullable(v_bad_type), v_bad_version
            USING ERRCODE = 'PL415',
            HINT = 'only event types the code registers can be stored; run `programledger '
                'migrate` with the release that defines it';
    END IF;

    -- The head read above, under the stream's lock: it is there to move, or it is not.
    IF v_current = 0 THEN
        INSERT INTO streams (stream_id, stream_type, version, last_position, last_hash,
            created_at, updated_at)
        VALUES (p_stream_id, p_stream_type, n, v_first_pos + n - 1, v_hash, v_now, v_now);
    ELSE
        UPDATE streams SET version = v_current + n, last_position = v_first_pos + n - 1,
            last_hash = v_hash, updated_at = v_now
        WHERE stream_id = p_stream_id;
    END IF;

    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, fingerprint, stream_id, first_version, last_version,
            first_position, last_position, event_ids, recorded_at)
        VALUES (p_idempotency_key, p_fingerprint, p_stream_id, v_current + 1, v_current + n,
            v_first_pos, v_first_pos + n - 1, p_event_ids, v_now);
    END IF;

    first_version := v_current + 1; last_version := v_current + n;
    first_position := v_first_pos; last_position := v_first_pos + n - 1;
    event_ids := p_event_ids; recorded_at := v_now; replayed := false;
    RETURN NEXT;
END;
$$;
