#!/usr/bin/env bash
# Firmware updates through the CLI against the broker's own floors
# (issue 17; part of make bench-external). Every party is its own process
# on loopback: the broker (the bridge's embedded one, or Mosquitto), the
# bridge (`myno bridge`), one MUP v1 device (`myno device` with
# testdata/descriptions/mup-v1-device.jsonld, keys from `myno keys`), one
# `myno update` process per update (an ed25519 key login, --identity), and
# the floors measured by mqttfloor through the same broker:
#   - the raw-publish ceiling: the transfer's slices (147 × 604 B for the
#     87,800-byte image at 600 B) published at QoS 1 to a subscriber, with
#     no application acks;
#   - one broker round trip between two clients, each its own process
#     (a slice and its ack).
# The issue's targets: windowed within 1.5× the ceiling; stop-and-wait
# within 1.2× of slices × round trip.
#
# Knobs (environment):
#   UPDATES=10                      updates per flow and broker
#   BROKERS="embedded mosquitto"
#   MOSQUITTO=/usr/sbin/mosquitto   anonymous, on loopback, as in scale.sh
#   RESULTS=FILE                    also append the JSON lines to FILE
# Prints one JSON line per measurement, then a markdown table of medians.
set -euo pipefail
cd "$(dirname "$0")/../../.."
# shellcheck source=lib.sh
. docs/bench/external/lib.sh

UPDATES="${UPDATES:-10}"
BROKERS="${BROKERS:-embedded mosquitto}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
GO="${GO:-go}"
RESULTS="${RESULTS:-}"
image_bytes=87800
slice=600

PY=/usr/bin/python3
say() { echo "firmware.sh: $*" >&2; }
unset_myno_env
make_work myno-firmware "the processes' logs"
record() { # KIND JSON-OBJECT-BODY
  local line="{\"kind\":\"$1\",$2}"
  echo "$line" | tee -a "$work/results.jsonl"
  [ -n "$RESULTS" ] && echo "$line" >>"$RESULTS"
  return 0
}

say "building myno and mqttfloor"
"$GO" build -o "$work/myno" ./cmd/myno
"$GO" build -o "$work/mqttfloor" ./docs/bench/external/mqttfloor
"$GO" build -o "$work/ncscale" ./docs/bench/external/ncscale
myno="$work/myno"
export MYNO_ADMIN_PASSWORD=bench-pw MYNO_KNOWN_HOSTS="$work/known_hosts"

keys="$work/keys"
"$myno" keys gen --vendor --out "$keys" >/dev/null
"$myno" keys gen --update-server --vendor-key "$keys/vendor.key" --vendor-cert "$keys/vendor.crt" --out "$keys" >/dev/null
"$myno" keys export --key "$keys/vendor.key" --name vendor --out "$keys" >/dev/null
"$myno" keys export --key "$keys/update-server.key" --name update-server --out "$keys" >/dev/null
head -c "$image_bytes" /dev/urandom >"$work/image.bin"
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/id"
slices=$(((image_bytes + slice - 1) / slice))

run_broker() {
  local broker="$1" nc_port mqtt_port http_port
  read -r nc_port mqtt_port http_port <<<"$(free_ports 3)"
  local data="$work/data-$broker" url mq_creds=() floor_creds=() dev_env=()
  mkdir -p "$data/authorized_keys"
  cp "$work/id.pub" "$data/authorized_keys/admin"
  local bridge_flags=(--data-dir "$data" --netconf-listen "127.0.0.1:$nc_port" --http-listen "127.0.0.1:$http_port" --log-level warn)
  if [ "$broker" = mosquitto ]; then
    start_mosquitto "$mqtt_port"
    url="mqtt://127.0.0.1:$mqtt_port"
    bridge_flags+=(--mqtt-url "$url")
  else
    url="mqtt://127.0.0.1:$mqtt_port"
    bridge_flags+=(--mqtt-listen "127.0.0.1:$mqtt_port" --enrol open)
    # The Update Server and the floor's two clients have their own
    # tokens; the device enrols with one of 22+ bytes (--enrol open).
    "$myno" devices add --data-dir "$data" --role update-server --token-dir "$data/tokens" bench-us >/dev/null
    "$myno" devices add --data-dir "$data" --role bridge --token-dir "$data/tokens" floor-a floor-b >/dev/null
    mq_creds=(--mqtt-username bench-us --mqtt-password-file "$data/tokens/bench-us.token")
    floor_creds=(-user-a floor-a -password-file-a "$data/tokens/floor-a.token" -user-b floor-b -password-file-b "$data/tokens/floor-b.token")
    dev_env=(MYNO_MQTT_PASSWORD=firmware-bench-device-token-0001)
  fi
  "$myno" bridge "${bridge_flags[@]}" </dev/null >"$work/bridge-$broker.log" 2>&1 &
  pids+=($!)
  wait_port "$nc_port" || { say "[$broker] the bridge did not start:"; tail -20 "$work/bridge-$broker.log" >&2; return 1; }
  env "${dev_env[@]}" "$myno" device --description testdata/descriptions/mup-v1-device.jsonld --uuid fw-1 --mqtt-url "$url" \
    --mup-vendor-key "$keys/vendor.pub-xy.hex" --mup-server-key "$keys/update-server.pub-xy.hex" --firmware-version 1 \
    --log-level warn </dev/null >"$work/device-$broker.log" 2>&1 &
  pids+=($!)
  "$work/ncscale" metric -url "http://127.0.0.1:$http_port/metrics" -name myno_devices_registered -want 1 -timeout 30s >/dev/null ||
    { say "[$broker] the device did not register:"; tail -20 "$work/device-$broker.log" "$work/bridge-$broker.log" >&2; return 1; }

  say "[$broker] floors"
  # The echo is another process, as the device is another process than
  # the Update Server.
  "$work/mqttfloor" echo -url "$url" "${floor_creds[@]}" >"$work/echo-$broker.out" 2>&1 &
  local echo_pid=$!
  pids+=("$echo_pid")
  for _ in $(seq 1 100); do grep -q ready "$work/echo-$broker.out" && break; sleep 0.1; done
  record "$broker" "\"measure\":\"rtt\",$("$work/mqttfloor" rtt -url "$url" "${floor_creds[@]}" -runs 500 -echo external | sed 's/^{//; s/}$//')"
  kill "$echo_pid"
  record "$broker" "\"measure\":\"raw\",\"slices\":$slices,$("$work/mqttfloor" raw -url "$url" "${floor_creds[@]}" -slices "$slices" -size $((slice + 4)) -runs 20 | sed 's/^{//; s/}$//')"

  say "[$broker] $UPDATES updates per flow"
  local ver=1 i flow out transfer
  for i in $(seq 1 "$UPDATES"); do
    for flow in windowed stop-and-wait; do
      "$myno" manifest sign --format v1 --image "$work/image.bin" --app-id bench --version $((ver + 1)) --old-version "$ver" \
        --vendor-key "$keys/vendor.key" --out "$work/v1.manifest" >/dev/null
      local t0 t1
      t0="$(now_ns)"
      out="$("$myno" update --bridge "127.0.0.1:$nc_port" --identity "$work/id" --no-agent --mqtt-url "$url" "${mq_creds[@]}" \
        --image "$work/image.bin" --manifest "$work/v1.manifest" --key "$keys/update-server.key" --device fw-1 \
        --flow "$flow" --slice-size "$slice" --quiet)" || { say "[$broker] update $i ($flow) failed:"; echo "$out" >&2; return 1; }
      t1="$(now_ns)"
      ver=$((ver + 1))
      transfer="$(echo "$out" | awk '$1 == "transfer" { print $2 }')"
      record "$broker" "\"measure\":\"update\",\"flow\":\"$flow\",\"transfer\":\"$transfer\",\"process_ms\":$(((t1 - t0) / 1000000))"
    done
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

for b in $BROKERS; do run_broker "$b"; done

echo
echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(uname -sr); $("$GO" env GOVERSION); commit $(git rev-parse --short HEAD)"
"$PY" - "$work/results.jsonl" "$slices" <<'EOF'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
slices = int(sys.argv[2])
def ms(d):  # a Go duration as printed: 21.8ms, 950µs, 1.2s
    m = re.fullmatch(r"([\d.]+)(ms|µs|us|s)", d)
    return float(m.group(1)) * {"ms": 1, "µs": 1e-3, "us": 1e-3, "s": 1e3}[m.group(2)]
names = {"embedded": "embedded broker", "mosquitto": "Mosquitto"}
print("| broker | windowed transfer | raw-publish ceiling | ratio (target ≤ 1.5) | stop-and-wait transfer | slices × round trip | ratio (target ≤ 1.2) | whole `myno update` (windowed / s-a-w) |")
print("|---|---|---|---|---|---|---|---|")
for b in dict.fromkeys(r["kind"] for r in rows):
    r = [x for x in rows if x["kind"] == b]
    rtt = next(x for x in r if x["measure"] == "rtt")["median_us"] / 1e3
    raw = next(x for x in r if x["measure"] == "raw")["median_us"] / 1e3
    upd = lambda f, k: statistics.median([ms(x["transfer"]) if k == "transfer" else x[k] for x in r if x["measure"] == "update" and x["flow"] == f])
    w, s = upd("windowed", "transfer"), upd("stop-and-wait", "transfer")
    floor = slices * rtt
    print(f"| {names.get(b, b)} | {w:.1f} ms | {raw:.1f} ms | {w / raw:.2f}× | {s:.1f} ms | {slices} × {rtt * 1e3:.0f} µs = {floor:.1f} ms | {s / floor:.2f}× | "
          f"{upd('windowed', 'process_ms'):.0f} / {upd('stop-and-wait', 'process_ms'):.0f} ms |")
EOF
