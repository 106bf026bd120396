#!/usr/bin/env bash
# The whole reconcile on examples/config, against the LOCAL provider emulator
# (no real provider is contacted) and a SQLite store in a temporary folder:
# validate, check, plan, apply, status, render.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v byok >/dev/null 2>&1 || python3 -m pip install -q .

work=$(mktemp -d)
emulator_pid=
cleanup() {
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# 1. The emulator answers like OpenAI, Azure OpenAI and vLLM on 127.0.0.1 and
#    knows the demo keys of examples/config.
python3 -m byok_reconcile.testing serve --config examples/emulator.yaml \
  --port 0 >"$work/emulator.out" 2>&1 &
emulator_pid=$!
for _ in $(seq 100); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/emulator.out" | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/emulator.out"; echo "emulator did not start"; exit 3; }
echo "provider emulator on $url (no real provider is contacted)"

# 2. The demo age key decrypts the examples (DEMO ONLY); requests for the
#    providers' hosts go to the emulator instead.
export SOPS_AGE_KEY_FILE=examples/demo-age-key.txt
export BYOK_RESOLVE="api.openai.com=$url,*.openai.azure.com=$url,llm.internal.example.com=$url"
export BYOK_STORE_KEY=$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')
target="sqlite:///$work/byok.db"

step byok validate examples/config
step byok check examples/config
step byok plan examples/config --target "$target" --source examples
step byok apply examples/config --target "$target" --source examples
step byok plan examples/config --target "$target" --source examples --detailed-exitcode
step byok status --target "$target"
step byok render examples/config -o "$work/resolved.json"
printf '\nartifact: %s bytes, features: %s\n' "$(wc -c <"$work/resolved.json")" \
  "$(python3 -c 'import json,sys;print(", ".join(sorted(json.load(open(sys.argv[1]))["features"])))' "$work/resolved.json")"
