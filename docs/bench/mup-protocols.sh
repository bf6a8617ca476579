#!/usr/bin/env bash
# Measures firmware updates from outside, each party its own process:
# `myno demo` (bridge, embedded broker, devices), `myno update` per update
# (this project's Update Server), and, as the anchor for MUP v1, an Update
# Server written like MYNO's (ncclient + paho-mqtt on /usr/bin/python3,
# internal/systemtest/testdata/myno_update_server.py) against a second demo
# with --profile myno. The same 87,800-byte image, 600-byte slices, in both
# protocols, in the same run. Prints one line per update: who, how
# myno update logged in to the bridge (password: bcrypt at the bridge;
# key: an ed25519 key from ssh-keygen, --identity), version, wall-clock
# seconds of the process, and the phases it printed.
#
# Usage: docs/bench/mup-protocols.sh [UPDATES]   (default 10 per protocol
# and login)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-10}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/myno" ./cmd/myno
myno="$work/myno"
export MYNO_ADMIN_PASSWORD=bench-pw MYNO_KNOWN_HOSTS="$work/known_hosts"

# start_demo DIR NETCONF-PORT MQTT-PORT [flags]: a demo in the background,
# once it prints its instructions.
start_demo() {
  local dir="$1" nc="$2" mq="$3"; shift 3
  "$myno" demo --data-dir "$dir" --netconf-listen "127.0.0.1:$nc" --mqtt-listen "127.0.0.1:$mq" --console-listen 127.0.0.1:0 \
    --descriptions testdata/descriptions --log-level error "$@" >"$dir.out" 2>"$dir.err" &
  demo_pid=$!
  for _ in $(seq 1 300); do grep -q "Stop with Ctrl-C" "$dir.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo in $dir did not start:" >&2; cat "$dir.err" >&2; exit 1
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ncp="$(free_port)"; mqp="$(free_port)"
# The admin's key, in the data dir before the demo starts (the bridge
# reads <data-dir>/authorized_keys/<user>).
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/id"
mkdir -p "$work/std/authorized_keys"
cp "$work/id.pub" "$work/std/authorized_keys/admin"
start_demo "$work/std" "$ncp" "$mqp"
mup="$work/std/mup"
token="$work/std/tokens/demo-manager.token"
common=(--bridge "127.0.0.1:$ncp" --no-agent --mqtt-url "mqtt://127.0.0.1:$mqp"
  --mqtt-username demo-manager --mqtt-password-file "$token" --image "$mup/firmware-v2.bin" --key "$mup/update-server.key" --quiet
  --flow windowed) # both protocols alike (the default for MUP v1 is stop-and-wait)

ver=1 # both demo devices start at version 1
for i in $(seq 1 "$n"); do
 for login in password key; do
  from=$ver; to=$((ver + 1)); ver=$to
  "$myno" manifest sign --image "$mup/firmware-v2.bin" --app-id myno-demo --version "$to" --old-version "$from" \
    --vendor-key "$mup/vendor.key" --out "$work/cose.manifest" >/dev/null
  "$myno" manifest sign --format v1 --image "$mup/firmware-v2.bin" --app-id myno-demo --version "$to" --old-version "$from" \
    --vendor-key "$mup/vendor.key" --out "$work/v1.manifest" >/dev/null
  creds=(--password bench-pw); [ "$login" = key ] && creds=(--identity "$work/id")
  for dev in demo-myno-1 demo-mup-1; do
    manifest="$work/cose.manifest"; extra=(--device-ca "$work/std/e2e/ca.crt")
    [ "$dev" = demo-myno-1 ] && manifest="$work/v1.manifest" && extra=()
    start=$(date +%s.%N)
    out="$("$myno" update "${common[@]}" "${creds[@]}" --device "$dev" --manifest "$manifest" "${extra[@]}")"
    end=$(date +%s.%N)
    phases="$(echo "$out" | awk 'NF == 2 && $1 ~ /^[a-z]+$/ { printf "%s=%s ", $1, $2 }')"
    printf '%-12s %-8s v%-3d %6.3f s  %s\n' "$dev" "$login" "$to" "$(echo "$end - $start" | bc)" "$phases"
  done
 done
done

# The anchor: an Update Server written like MYNO's, against the v1 device
# of a fresh demo with --profile myno each time (version 1 to 2): waiting
# for each ack ("MYNO-like"), and looking for it every 100 ms as MYNO's
# Update Server does ("MYNO-poll").
for i in $(seq 1 "$n"); do
 for mode in wait poll; do
  poll=(); [ "$mode" = poll ] && poll=(--poll 0.1)
  ncp="$(free_port)"; mqp="$(free_port)"; dir="$work/myno$i$mode"
  start_demo "$dir" "$ncp" "$mqp" --profile myno
  "$myno" keys export --key "$dir/mup/update-server.key" --name update-server --out "$dir" >/dev/null
  "$myno" manifest sign --format v1 --image "$dir/mup/firmware-v2.bin" --app-id myno-demo --version 2 --old-version 1 \
    --vendor-key "$dir/mup/vendor.key" --out "$dir/v1.manifest" >/dev/null
  start=$(date +%s.%N)
  out="$(/usr/bin/python3 internal/systemtest/testdata/myno_update_server.py "${poll[@]}" -- 127.0.0.1 "$ncp" admin bench-pw demo-myno-1 \
    "$dir/mup/firmware-v2.bin" "$dir/v1.manifest" "$dir/update-server.priv.hex" 127.0.0.1 "$mqp" demo-manager "$(cat "$dir/tokens/demo-manager.token")")"
  end=$(date +%s.%N)
  echo "$out" | grep -q "fin: FIRMWARE-SUCCESS" || { echo "MYNO-like update failed:" >&2; echo "$out" >&2; exit 1; }
  label=MYNO-like; [ "$mode" = poll ] && label=MYNO-poll
  printf '%-12s %-8s v%-3d %6.3f s  %s\n' "$label" password 2 "$(echo "$end - $start" | bc)" "$(echo "$out" | grep '^slices:')"
  kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true
 done
done
