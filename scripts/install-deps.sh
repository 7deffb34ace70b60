#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of cairn from Debian's packages.
# Idempotent: packages already present are skipped; nothing runs when all are there.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libuv1-dev libssl-dev libnghttp2-dev libyaml-dev libjansson-dev libhiredis-dev
  libxxhash-dev libpcre2-dev zlib1g-dev libbrotli-dev libcmocka-dev
  python3 python3-pytest python3-httpx python3-h2
  curl nghttp2-client redis-server openssl wrk nginx varnish haproxy
  strace linux-perf valgrind
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Do not start the services these packages ship (nginx, varnish, redis, haproxy):
# tests and benchmarks start their own instances on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
