-- The event catalogue: every (event type, schema version) the code can read, kept in step
-- with the code's event registry by `programledger migrate` (adapters/postgres/catalogue.py).
--
-- The store refuses an event outside it, so one bad append (a client that bypassed the
-- codec, a writer newer than the readers) can no longer stall the relay and every
-- projection on an event nobody can decode. Rows are only ever added: an event type that
-- the code stops writing is still read through its upcasters, and history stays valid.

CREATE TABLE event_catalogue (
    event_type     text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 1),
    added_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type, schema_version)
);

-- What is stored already was accepted by the code of its time: it stays readable as it is.
INSERT INTO event_catalogue (event_type, schema_version)
SELECT DISTINCT event_type, schema_version FROM events;

-- A statement trigger over the inserted rows rather than a foreign key: a foreign key
-- check takes FOR KEY SHARE on the catalogue row of every event, and concurrent appends of
-- one event type would then contend on that row (multixacts) on the hot path. The rows of
-- one append are checked with one query, inside append_events' own INSERT, so a refused
-- append writes nothing (the positions it reserved become a hole, like those of any append
-- rolled back). Catalogue rows are never deleted, so no lock is needed.
CREATE FUNCTION refuse_uncatalogued_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_bad record;
BEGIN
    SELECT i.event_type, i.schema_version INTO v_bad FROM inserted i
    WHERE NOT EXISTS (
        SELECT FROM event_catalogue c
        WHERE c.event_type = i.event_type AND c.schema_version = i.schema_version
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event type % at schema version % is not in the store''s catalogue',
            quote_literal(v_bad.event_type), v_bad.schema_version
            USING ERRCODE = 'PL415',
            HINT = 'only event types the code registers can be stored; run `programledger '
                'migrate` with the release that defines it';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_catalogued
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_uncatalogued_events();
