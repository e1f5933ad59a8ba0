-- Webhook endpoints that admins register, where the delivery worker has got to for each,
-- and the log of every delivery attempt.
--
-- These are configuration and operations records, not domain facts: they are not events
-- and changing them is not a command. The worker writes an endpoint's position only after
-- every selected event up to it was delivered (or the endpoint was rewound by an admin,
-- which bumps its revision; the worker's writes carry the revision they started from, so a
-- rewind is never overwritten by an older worker's progress).

CREATE TABLE webhook_endpoints (
    endpoint_id     uuid PRIMARY KEY,
    url             text NOT NULL,
    secret          text NOT NULL,
    description     text,
    program_id      uuid,
    stream_types    text[],
    event_types     text[],
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    position        bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    failure_streak  integer NOT NULL DEFAULT 0,
    revision        bigint NOT NULL DEFAULT 1,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    delivery_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    event_id     uuid NOT NULL,
    position     bigint NOT NULL,
    event_type   text NOT NULL,
    attempt      integer NOT NULL,
    succeeded    boolean NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    attempted_at timestamptz NOT NULL
);

CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, delivery_id);
