#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks: PostgreSQL (15+), pgTAP and pg_prove, wal2json, the load
# generators, and a virtualenv with the project. Idempotent and quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python 3.11 or newer is needed as python3 (found: $(python3 --version 2>&1 || echo none))" >&2
  exit 1
fi

need=()
major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
if [ -z "$major" ] || [ "$major" -lt 15 ]; then need+=(postgresql postgresql-contrib); fi
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
# pg_prove runs the pgTAP files as `supabase test db` does (tests/test_pg_prove.py).
# chromium: Debian's headless browser the console's browser tests drive (tests/console).
for cmd_pkg in pgbench:postgresql-contrib wrk:wrk npm:npm pg_prove:libtap-parser-sourcehandler-pgtap-perl chromium:chromium; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg##*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# Japanese glyphs for the headless browser, so the console's screenshots (docs/screenshots) are legible.
have fonts-noto-cjk || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  major=$(ls /usr/lib/postgresql | sort -n | tail -1)
fi
for ext in pgtap wal2json; do  # wal2json: the logical decoding plugin the Realtime server reads
  if ! have "postgresql-${major}-${ext}"; then
    echo "bootstrap: installing postgresql-${major}-${ext}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-${major}-${ext}" >/dev/null
  fi
done

# pg_cron runs the scheduled jobs inside the database, as Supabase Cron does on hosted Supabase.
if ! have "postgresql-${major}-cron"; then
  echo "bootstrap: installing postgresql-${major}-cron"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-${major}-cron" >/dev/null
fi

# The Debian package starts its own cluster on 5432; ours is private on 54322, so that one
# is left alone.
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the project into .venv"
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    # Debian ships venv's pip bootstrap separately (python3-venv / python3.X-venv).
    pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "bootstrap: installing python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv "python${pyver}-venv" >/dev/null \
      || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi

# The console's JavaScript libraries (supabase-js, Chart.js), pinned with integrity hashes in
# console/package-lock.json; `koepon up` serves them from console/node_modules as they are.
if [ ! -f console/node_modules/.package-lock.json ] || [ console/package-lock.json -nt console/node_modules/.package-lock.json ]; then
  echo "bootstrap: installing the console's npm packages"
  (cd console && NPM_CONFIG_UPDATE_NOTIFIER=false npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
