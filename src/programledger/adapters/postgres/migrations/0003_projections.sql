-- Where each projection (read model) has got to, and why it stopped if it did.
--
-- One row per projection name. The runner updates `position` in the same transaction as
-- the read-model rows it wrote, so the two can never disagree: after a crash it resumes at
-- the first event after `position`, and an event at or below it is never applied again.
--
-- The read-model tables themselves are not created here: each projection owns its DDL
-- (projections/*.py) and creates it on start, and a rebuild creates a fresh copy of it
-- (`<table>__rebuild`) and swaps it in. `generation` goes up at every swap, which tells a
-- live runner that the tables and checkpoint it was working on were replaced.

CREATE TABLE projection_status (
    name                 text PRIMARY KEY,
    position             bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    -- Recorded time of the event at `position`: "as known at" for the read model.
    position_recorded_at timestamptz,
    generation           bigint NOT NULL DEFAULT 0,
    -- Fingerprint of the projection's tables and handler version; a runner that finds
    -- another one rebuilds before consuming.
    definition           text,
    state                text NOT NULL DEFAULT 'idle'
                         CHECK (state IN ('idle', 'running', 'stopped', 'failed')),
    worker               text,
    events_applied       bigint NOT NULL DEFAULT 0,
    -- A poison event (its handler raised): the projection stopped before it.
    failed_position      bigint,
    failed_event_id      uuid,
    failed_event_type    text,
    failed_stream_id     text,
    error                text,
    failed_at            timestamptz,
    rebuild_started_at   timestamptz,
    rebuild_position     bigint,
    rebuilt_at           timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
