#!/usr/bin/env bash
# Makes a Docker engine available for the Docker provider's tests, then builds the test image.
# Idempotent: installs Debian's docker.io when dockerd is missing, starts dockerd when not running
# (no bridge, no iptables: containers use host networking), waits for the socket, builds the image.
# Prints HODEI_DOCKER_IMAGE=<name> as its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SOCK=/var/run/docker.sock
LOG="${HODEI_DOCKERD_LOG:-/tmp/hodei-dockerd.log}"

if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq docker.io >&2
fi

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! engine_up; then
  # -r: live processes only; a zombie dockerd left by a killed session must not count as running.
  if ! pgrep -r R,S,D -x dockerd >/dev/null 2>&1; then
    echo "starting dockerd (log: $LOG) ..." >&2
    nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$LOG" 2>&1 &
  fi
  for _ in $(seq 1 60); do
    if [ -S "$SOCK" ] && engine_up; then break; fi
    sleep 0.5
  done
  if ! engine_up; then
    echo "dockerd did not come up within 30 s; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
fi
echo "docker engine $(docker version --format '{{.Server.Version}}') is up" >&2

IMAGE="$("$ROOT/scripts/docker/build-worker-image.sh" | tail -n 1)"
# turbo's strict env mode hides variables from test tasks unless turbo.json passes them through, so
# the Docker tests also read this machine-wide marker (the engine is machine-wide too).
MARKER="${TMPDIR:-/tmp}/hodei-docker-ci.env"
{
  echo "HODEI_DOCKER_IMAGE=$IMAGE"
  if [ "${HODEI_REQUIRE_DOCKER:-}" = "1" ]; then echo "HODEI_REQUIRE_DOCKER=1"; fi
} >"$MARKER"
echo "HODEI_DOCKER_IMAGE=$IMAGE"
