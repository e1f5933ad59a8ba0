-- The database roles of a deployment, each with what its processes need and nothing more.
--
--   api        the API (and `programledger demo`): appends only through append_batch()
--              and its one-command form append_events(), which apply the catalogue,
--              the concurrency check, the ordering and the hash chain with their owner's
--              rights (SECURITY DEFINER); reads the store and the read models. The only
--              table it writes is webhook_endpoints, which admins manage through it
--              (register, enable, disable, redeliver, remove).
--   projector  the projection workers and `programledger rebuild`: owns the read-model
--              tables (rm_*), which it creates, fills and swaps; writes projection_status.
--   relay      the relays and the sealer beside them: reads events, writes
--              relay_checkpoints, appends to the Merkle tree and its signed heads
--              (tree_leaves, tree_nodes, tree_heads, signing_keys: append-only, their
--              triggers refuse changes) and records their publication; the webhooks
--              worker runs as this role too: it moves its endpoints' positions and failure
--              streaks (webhook_endpoints) and logs its attempts (webhook_deliveries).
--   verifier   `programledger verify` (a scheduled job): reads everything, records its
--              outcome in verification_runs.
--
-- The schema's owner (who runs `programledger migrate` and this file) owns everything
-- else. Grants never depend on history: read-model tables get their SELECT grants from
-- default privileges for the role that creates them (the projector), so a table a
-- rebuild creates and swaps in has exactly the grants of the one it replaces; tables a
-- later migration adds get SELECT from the owner's default privileges. Idempotent; run it
-- after every `programledger migrate` (infra/sql/apply-roles.sh does both, and sets the
-- passwords):
--   psql "$OWNER_URL" -v schema=programledger -v api_role=programledger_api \
--        -v projector_role=programledger_projector -v relay_role=programledger_relay \
--        -v verifier_role=programledger_verifier -f infra/sql/roles.sql

SELECT format('CREATE ROLE %I LOGIN', r)
FROM unnest(ARRAY[:'api_role', :'projector_role', :'relay_role', :'verifier_role']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec

-- The owner acts for the projector: to set its default privileges and hand it the
-- read-model tables an earlier release (whose workers ran as the owner) created.
GRANT :"projector_role" TO CURRENT_USER;

REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema"
    TO :"api_role", :"projector_role", :"relay_role", :"verifier_role";
GRANT CREATE ON SCHEMA :"schema" TO :"projector_role";

SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'projector_role')
FROM pg_tables
WHERE schemaname = :'schema' AND tablename LIKE 'rm\_%' AND tableowner <> :'projector_role'
\gexec

-- Everyone reads; nobody but a table's owner writes, except as granted below. The revoke
-- takes back whatever an earlier grant script gave.
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema"
    TO :"api_role", :"projector_role", :"relay_role", :"verifier_role";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA :"schema"
    FROM :"api_role", :"projector_role", :"relay_role", :"verifier_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA :"schema"
    FROM :"api_role", :"projector_role", :"relay_role", :"verifier_role";

-- ... but the projector keeps every privilege on the read models it owns: the revoke above
-- took them from tables handed over by an earlier release, and a runner writes them and a
-- rebuild locks them (SHARE mode needs a write privilege) before it swaps them.
SELECT format('GRANT ALL ON TABLE %I.%I TO %I', schemaname, tablename, :'projector_role')
FROM pg_tables
WHERE schemaname = :'schema' AND tablename LIKE 'rm\_%'
\gexec
GRANT INSERT, UPDATE ON :"schema".projection_status TO :"projector_role";
GRANT INSERT, UPDATE ON :"schema".relay_checkpoints TO :"relay_role";
GRANT INSERT ON :"schema".tree_leaves, :"schema".tree_nodes, :"schema".tree_heads,
    :"schema".signing_keys TO :"relay_role";
GRANT INSERT, UPDATE ON :"schema".tree_head_publications TO :"relay_role";
GRANT INSERT, UPDATE, DELETE ON :"schema".webhook_endpoints TO :"api_role";
GRANT UPDATE ON :"schema".webhook_endpoints TO :"relay_role";
GRANT INSERT ON :"schema".webhook_deliveries TO :"relay_role";
GRANT INSERT ON :"schema".verification_runs TO :"verifier_role";
GRANT SELECT ON SEQUENCE :"schema".event_position_seq TO :"verifier_role";

REVOKE EXECUTE ON FUNCTION :"schema".append_events(text, text, bigint, uuid[], text[],
    integer[], jsonb[], jsonb, uuid, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION :"schema".append_events(text, text, bigint, uuid[], text[],
    integer[], jsonb[], jsonb, uuid, text, bytea) TO :"api_role";
REVOKE EXECUTE ON FUNCTION :"schema".append_batch(text[], text[], bigint[], jsonb[], uuid[],
    text[], bytea[], integer[], uuid[], text[], integer[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION :"schema".append_batch(text[], text[], bigint[], jsonb[], uuid[],
    text[], bytea[], integer[], uuid[], text[], integer[], jsonb[]) TO :"api_role";

-- Tables created later: read models by the projector (at a worker's start, at every
-- rebuild), store tables by the owner (a later migration).
ALTER DEFAULT PRIVILEGES FOR ROLE :"projector_role" IN SCHEMA :"schema"
    GRANT SELECT ON TABLES TO :"api_role", :"relay_role", :"verifier_role";
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema"
    GRANT SELECT ON TABLES TO :"api_role", :"projector_role", :"relay_role", :"verifier_role";
