#!/bin/sh
# Apply infra/sql/app_role.sql for the application role, and set its password.
#
# Run as the schema's owner right after `programledger migrate`, at every deployment: a
# release that adds tables needs the grants again. Idempotent.
#
#   PROGRAMLEDGER_DATABASE_URL       the owner's URL (not the application role's)
#   PROGRAMLEDGER_SCHEMA             default: programledger
#   PROGRAMLEDGER_APP_ROLE           default: programledger_app
#   PROGRAMLEDGER_APP_ROLE_PASSWORD  optional; read by psql from the environment, so it
#                                    never appears on a command line
set -eu
here=$(dirname "$0")
schema=${PROGRAMLEDGER_SCHEMA:-programledger}
role=${PROGRAMLEDGER_APP_ROLE:-programledger_app}

psql "$PROGRAMLEDGER_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 \
    -v schema="$schema" -v app_role="$role" -f "$here/app_role.sql"

if [ -n "${PROGRAMLEDGER_APP_ROLE_PASSWORD:-}" ]; then
    psql "$PROGRAMLEDGER_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -v app_role="$role" <<'SQL'
\getenv app_password PROGRAMLEDGER_APP_ROLE_PASSWORD
ALTER ROLE :"app_role" PASSWORD :'app_password';
SQL
fi
echo "grants for role $role on schema $schema applied"
