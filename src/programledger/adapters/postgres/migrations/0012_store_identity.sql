-- The store's identity: one random id, created once by `programledger migrate`, that names
-- this event store everywhere its events go. The relay records it in its JetStream
-- stream's metadata and in every message (the Programledger-Store-Id header); projection
-- workers, the API's feed and the subscriber helper refuse a stream that names another
-- store, and the workers' durable consumer names are derived from it, so two deployments
-- pointed at one stream by mistake can neither mix their events nor take over each
-- other's consumers.
--
-- Never changed: a store restored from a backup keeps its id, and so keeps its stream.

CREATE TABLE store_identity (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id   uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO store_identity DEFAULT VALUES;

CREATE FUNCTION refuse_store_identity_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the store id never changes: % on %.store_identity is refused',
        TG_OP, TG_TABLE_SCHEMA
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER store_identity_immutable
    BEFORE UPDATE OR DELETE OR TRUNCATE ON store_identity
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_store_identity_change();
