-- The outcome of every whole-store `programledger verify`: when, what was checked, and
-- what was found. `/ready` and `/metrics` report the last row, whichever process ran it
-- (a scheduled job: infra/k8s/verify-cronjob.yaml), so an operator and an alert see how
-- fresh the last verdict is and what it was.

CREATE TABLE verification_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    -- What was checked, e.g. 'chains,structure' or 'chains,structure,read-models'.
    checks        text NOT NULL,
    ok            boolean NOT NULL,
    streams       bigint NOT NULL CHECK (streams >= 0),
    events        bigint NOT NULL CHECK (events >= 0),
    problems      integer NOT NULL CHECK (problems >= 0),
    -- The first problem found, in words (NULL when ok).
    first_problem text,
    CHECK (ok = (problems = 0))
);

-- Events a relay published as stored because its code could not decode them (a type or
-- schema version it does not know, an upcaster that failed): counted with the checkpoint
-- that passes them, so the API's /metrics can raise an alert whichever process relays.
ALTER TABLE relay_checkpoints
    ADD COLUMN undecodable bigint NOT NULL DEFAULT 0 CHECK (undecodable >= 0),
    ADD COLUMN last_undecodable_position bigint;
