#!/bin/sh
# Apply infra/sql/roles.sql (the api, projector, relay and verifier roles) and set the
# passwords given.
#
# Run as the schema's owner right after `programledger migrate`, at every deployment: a
# release that adds tables needs the grants again. Idempotent.
#
#   PROGRAMLEDGER_DATABASE_URL   the owner's URL (not one of the roles')
#   PROGRAMLEDGER_SCHEMA         default: programledger
#   PROGRAMLEDGER_API_ROLE, PROGRAMLEDGER_PROJECTOR_ROLE, PROGRAMLEDGER_RELAY_ROLE,
#   PROGRAMLEDGER_VERIFIER_ROLE  default: programledger_api, _projector, _relay, _verifier
#   PROGRAMLEDGER_<KIND>_ROLE_PASSWORD  optional, per role (KIND: API, PROJECTOR, RELAY,
#                                VERIFIER); read by psql from the environment, so a
#                                password never appears on a command line
set -eu
here=$(dirname "$0")
schema=${PROGRAMLEDGER_SCHEMA:-programledger}
api=${PROGRAMLEDGER_API_ROLE:-programledger_api}
projector=${PROGRAMLEDGER_PROJECTOR_ROLE:-programledger_projector}
relay=${PROGRAMLEDGER_RELAY_ROLE:-programledger_relay}
verifier=${PROGRAMLEDGER_VERIFIER_ROLE:-programledger_verifier}

psql "$PROGRAMLEDGER_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -v schema="$schema" \
    -v api_role="$api" -v projector_role="$projector" -v relay_role="$relay" \
    -v verifier_role="$verifier" -f "$here/roles.sql"

for pair in "API $api" "PROJECTOR $projector" "RELAY $relay" "VERIFIER $verifier"; do
    kind=${pair% *}
    role=${pair#* }
    if [ -z "$(printenv "PROGRAMLEDGER_${kind}_ROLE_PASSWORD" || true)" ]; then
        continue
    fi
    psql "$PROGRAMLEDGER_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -v role="$role" \
        -v variable="PROGRAMLEDGER_${kind}_ROLE_PASSWORD" <<'SQL'
\getenv password :variable
ALTER ROLE :"role" PASSWORD :'password';
SQL
done
echo "grants for roles $api, $projector, $relay, $verifier on schema $schema applied"
