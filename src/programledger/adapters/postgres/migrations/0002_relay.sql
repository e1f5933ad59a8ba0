-- Where each relay to NATS has got to: the global position up to which every event has been
-- acknowledged by JetStream. One row per relay name (normally one: "default").
--
-- The relay writes a position only after JetStream acknowledged it and every event before
-- it, and never moves it backwards, so after a crash it resumes at or before the first
-- event JetStream may not have. Resetting a row (to republish) is a deliberate operation:
-- see docs/events.md.

CREATE TABLE relay_checkpoints (
    name       text PRIMARY KEY,
    position   bigint NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
