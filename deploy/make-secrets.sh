#!/usr/bin/env bash
# Generate the secret files deploy/compose.yaml mounts (random passwords and tokens).
# They stay on this machine: deploy/secrets/ is ignored by git.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets/users
umask 077
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
[ -f secrets/rabbitmq-admin-password ] || rand > secrets/rabbitmq-admin-password
printf 'default_user = hybridq-admin\ndefault_pass = %s\n' "$(cat secrets/rabbitmq-admin-password)" \
  > secrets/rabbitmq-admin.conf
[ -f secrets/postgres-password ] || rand > secrets/postgres-password
for user in hybridq-router hybridq-public-worker hybridq-private-worker hybridq-status hybridq-operator; do
  [ -f "secrets/users/$user" ] || rand > "secrets/users/$user"
done
amqp() { printf 'amqp://%s:%s@rabbitmq:5672/hybridq' "$1" "$(cat "secrets/users/$1")"; }
amqp hybridq-router > secrets/router-amqp-url
amqp hybridq-public-worker > secrets/public-worker-amqp-url
amqp hybridq-private-worker > secrets/private-worker-amqp-url
amqp hybridq-status > secrets/status-amqp-url
printf 'postgresql+asyncpg://hybridq:%s@postgres:5432/hybridq' "$(cat secrets/postgres-password)" \
  > secrets/database-url
[ -f secrets/api-token ] || rand > secrets/api-token
[ -f secrets/admin-token ] || rand > secrets/admin-token
echo "secrets written to deploy/secrets/"
