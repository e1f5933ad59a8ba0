-- The application's database role: it reads everything, writes read models and checkpoints,
-- and appends events only through append_events(). UPDATE, DELETE and TRUNCATE on events are
-- not granted (and the triggers refuse them for every role anyway); direct INSERT is not
-- granted either, so no event can bypass the concurrency check, the ordering and the hash
-- chain, which append_events() applies with its owner's rights (SECURITY DEFINER).
--
-- Run as the owner of the store schema after `programledger migrate`, and again after each
-- upgrade that adds tables (infra/sql/apply-app-role.sh does both, and sets a password):
--   psql "$DATABASE_URL" -v schema=programledger -v app_role=programledger_app \
--        -f infra/sql/app_role.sql
--
-- Read-model tables are created later, by the projection workers and `programledger
-- rebuild`, which connect as the owner (they create and swap tables); the default
-- privileges below let the application role read them as soon as they exist.

SELECT format('CREATE ROLE %I LOGIN', :'app_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec

GRANT USAGE ON SCHEMA :"schema" TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO :"app_role";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON :"schema".events FROM :"app_role";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON :"schema".streams FROM :"app_role";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON :"schema".idempotency_keys FROM :"app_role";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON :"schema".schema_migrations FROM :"app_role";
REVOKE UPDATE ON SEQUENCE :"schema".event_position_seq FROM :"app_role";
REVOKE EXECUTE ON FUNCTION :"schema".append_events(text, text, bigint, uuid[], text[],
    integer[], jsonb[], jsonb, uuid, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION :"schema".append_events(text, text, bigint, uuid[], text[],
    integer[], jsonb[], jsonb, uuid, text, bytea) TO :"app_role";
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT SELECT ON TABLES TO :"app_role";

