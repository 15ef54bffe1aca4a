#!/usr/bin/env bash
# Builds a local worker image without any registry: the worker's bin (bundled, with its code cache), the
# host's node and bash, a few coreutils and the shared libraries they need, imported with `docker import`.
# Usage: scripts/docker/build-worker-image.sh [image-name]   (default hodei-worker:local)
# Prints the image name as its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="${1:-${HODEI_DOCKER_IMAGE_NAME:-hodei-worker:local}}"
WORK="$(mktemp -d /tmp/hodei-image.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
RootFS="$WORK/rootfs"
mkdir -p "$RootFS"/{bin,usr/bin,usr/local/bin,lib,lib64,usr/lib,etc,tmp,opt/hodei,root,proc,sys,dev,home/hodei}
chmod 1777 "$RootFS/tmp"

# 1. The worker: the package's own `hodei-worker` bin (packages/worker/tsup.config.ts): the loader cli.cjs,
#    the bundle with every dependency in it, and the bundle's V8 code cache, written by this machine's node,
#    which is also the image's. Rebuilt only when missing or older than its sources (tests may be running
#    the built bin meanwhile).
WORKER="$ROOT/packages/worker"
if [ ! -e "$WORKER/dist/cli-bundle.cjs.cache" ] ||
  [ -n "$(find "$WORKER/src" "$WORKER/tsup.config.ts" "$ROOT/packages/core/dist" -newer "$WORKER/dist/cli-bundle.cjs" -print -quit)" ]; then
  (cd "$WORKER" && npx --no-install tsup --silent) >&2
fi
cp "$WORKER/dist/"{cli.cjs,cli-bundle.cjs,cli-bundle.cjs.cache} "$RootFS/opt/hodei/"

# 2. Programs: node and a shell with the tools typical jobs use.
NODE="$(readlink -f "$(command -v node)")"
cp "$NODE" "$RootFS/usr/local/bin/node"
TOOLS="bash sh dash echo cat grep sleep seq true false env head tail tr touch ls mkdir rm cp mv printf wc sort
  uniq cut dirname basename date id pwd kill ps yes tee sed awk mawk expr test [ chmod ln readlink uname
  hostname stat mktemp xargs find od base64 sha256sum md5sum nproc timeout"
copy_file() { # copy_file /abs/path : into the rootfs at the same path, dereferenced
  local src="$1"
  mkdir -p "$RootFS$(dirname "$src")"
  cp -L "$src" "$RootFS$src"
}
BINARIES=("$NODE")
for tool in $TOOLS; do
  path="$(command -v "$tool" 2>/dev/null || true)"
  case "$path" in /*) ;; *) continue ;; esac
  copy_file "$path"
  # Jobs find tools under both /bin and /usr/bin.
  name="$(basename "$path")"
  [ -e "$RootFS/bin/$name" ] || cp -L "$path" "$RootFS/bin/$name"
  [ -e "$RootFS/usr/bin/$name" ] || cp -L "$path" "$RootFS/usr/bin/$name"
  BINARIES+=("$path")
done

# 3. The shared libraries they need, at the paths the loader looks at.
for binary in "${BINARIES[@]}"; do
  ldd "$binary" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'
done | sort -u | while read -r lib; do
  [ -e "$lib" ] && copy_file "$lib"
  real="$(readlink -f "$lib")"
  [ -e "$RootFS$real" ] || copy_file "$real"
done

# 4. Users, os-release, hosts.
cat >"$RootFS/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
hodei:x:1000:1000:hodei worker:/home/hodei:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$RootFS/etc/group" <<'GROUP'
root:x:0:
hodei:x:1000:
nogroup:x:65534:
GROUP
printf 'PRETTY_NAME="Hodei worker (Debian-based minimal rootfs)"\nNAME="hodei-worker"\nID=hodei\n' >"$RootFS/etc/os-release"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$RootFS/etc/hosts"
printf 'hosts: files dns\n' >"$RootFS/etc/nsswitch.conf"

# 5. Import.
tar -C "$RootFS" -cf "$WORK/rootfs.tar" .
docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV HOME=/root' \
  --change 'WORKDIR /root' \
  --change 'CMD ["/usr/local/bin/node", "/opt/hodei/cli.cjs"]' \
  --message 'hodei worker, assembled by scripts/docker/build-worker-image.sh' \
  "$WORK/rootfs.tar" "$IMAGE" >/dev/null
echo "$IMAGE"
