#!/usr/bin/env bash
# Installs what the tests need (Python packages, the npm packages of the end-to-end client,
# PostgreSQL server binaries, Java for ODK Validate) and runs the whole test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# A CJK font, so browser-test screenshots show Chinese instead of boxes.
fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk" || need_apt+=(fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing system packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "Missing system packages (install them first): ${need_apt[*]}" >&2
    exit 1
  fi
fi

(cd tests/e2e/engine && npm ci --silent --no-audit --no-fund)

# In parallel: one pytest worker per CPU (at least 2: much of a test's time is spent waiting on the servers it
# starts; at most 4), each test file on one worker so its live servers start once. `-n 0` runs serially.
parallel=()
if ! printf '%s\n' "$@" | grep -qE '^(-n|--numprocesses)'; then
  cpus=$(nproc 2>/dev/null || echo 2)
  workers=$(( cpus < 2 ? 2 : (cpus > 4 ? 4 : cpus) ))
  parallel=(-n "$workers" --dist loadfile)
fi

set +e
.venv/bin/python -m pytest "${parallel[@]}" "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "ERROR: pytest collected no tests" >&2
  exit 1
fi
exit $status
