-- A projection runner commits a live batch in one statement: its read-model rows, handler
-- states, checkpoint and notification (projections/engine/commit.py). Each table's
-- statement part closes the current versions the batch ends; this checks, inside the
-- statement, that it found exactly as many as the handler states say are current. Its
-- error aborts the whole statement, so a table and states that disagree (a bug to fix,
-- then rebuild) store nothing, and the runner stops at the event that shows it.

CREATE FUNCTION projection_closed_versions(table_name text, expected bigint, closed bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF closed <> expected THEN
        RAISE EXCEPTION '%: closing % current versions found %', table_name, expected, closed;
    END IF;
    RETURN closed;
END;
$$;
