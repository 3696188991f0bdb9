#!/usr/bin/env bash
# The programs the tests drive besides Bun, Postgres and Redis: Debian's Chromium (test/ui, the
# dashboard and /docs in a browser) and promtool (test/observability checks /metrics with it).
# Installs what is missing with apt-get; run by `bun run test` before the tests and by .ci/run.
set -uo pipefail
missing=()
[ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "test tools missing: ${missing[*]}; install them (Debian: apt-get install -y ${missing[*]}) or the browser and promtool tests fail saying so" >&2
  exit 0
fi
echo "installing ${missing[*]} (for the browser and promtool tests)" >&2
apt-get update -qq >/dev/null 2>&1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  echo "could not install ${missing[*]} with apt-get" >&2
  exit 1
}
