#!/usr/bin/env bash
# Install everything the tests need and run all of them: lint, then pytest.
# Usage: bash scripts/test.sh [pytest args...]
# Creates .venv (or uses the active virtualenv), installs requirements-dev.txt, and installs
# the Debian packages the tests use when they are missing (needs root and apt-get):
# chromium (browser tests), redis-server (shared-registry tests), a CJK font.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

if [[ -z "${VIRTUAL_ENV:-}" ]]; then
  if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv"
    python3 -m venv .venv
  fi
  # shellcheck disable=SC1091
  source .venv/bin/activate
fi

log "installing Python packages (the first llama-cpp-python build takes about 8 minutes)"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements-dev.txt

need_debs=()
command -v chromium >/dev/null 2>&1 || need_debs+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_debs+=(redis-server)
# Chinese UI text in the browser tests and screenshots needs a CJK font.
[[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || need_debs+=(fonts-wqy-microhei)
if ((${#need_debs[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    log "installing Debian packages: ${need_debs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}" >/dev/null
  else
    echo "missing ${need_debs[*]} and cannot apt-get install it: browser tests will fail" >&2
  fi
fi

log "ruff"
ruff check .

log "pytest"
set +e
python -m pytest "$@"
status=$?
set -e
if [[ $status == 5 ]]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $status
