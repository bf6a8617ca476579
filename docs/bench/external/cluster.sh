#!/usr/bin/env bash
# A bridge cluster's lag, measured from outside (issue 18: ≤ 1 s at
# 2,000 devices).
#
# Every party is its own process, on loopback, on random free ports, in a
# temp dir removed at the end:
#   - ETCD_MEMBERS members of Debian's etcd (package etcd-server), default
#     settings (fsync on), one data dir each;
#   - Mosquitto, the shared broker;
#   - INSTANCES `myno bridge --cluster bench --cluster-etcd ...` processes
#     (built here), each with --http-listen;
#   - a fleet of DEVICES simulated devices of 3 shapes, ONE `myno device
#     --fleet FILE` process, telemetry off.
# The fleet registers every device; each device's owner (one instance)
# writes the registration to etcd and answers it, and the others follow it
# through etcd's watch. Measured, polling every instance's /metrics every
# 50 ms:
#   - owned: the time from the fleet's start until the instances together
#     answered DEVICES registrations (myno_bootstraps_total{result=
#     "registered"}, summed);
#   - converged: until every instance holds DEVICES devices
#     (myno_devices_registered on each); converged - owned is the tail the
#     followers add;
#   - the lag of each replicated registration, from its owner taking it to
#     another instance holding it, as each instance observed it
#     (myno_cluster_follow_lag_seconds, a histogram; the times are on one
#     clock, loopback): the observations, their mean, the share within
#     1 s, and p50/p99/max as the upper bound of their histogram bucket.
# Prints a Markdown table beside the issue's target.
#
# Usage: make bench-cluster, or docs/bench/external/cluster.sh, with
#   DEVICES=2000 INSTANCES=3 ETCD_MEMBERS=3
#   TIMEOUT=300        seconds allowed for convergence
#   LOG_LEVEL=warn     the bridges' --log-level
#   RESULTS=FILE       also keep the JSON line in FILE
#   KEEP=1             keep the temp dir (logs, data dirs)
# Needs (installs nothing): go, python3, Debian's mosquitto and etcd.
set -euo pipefail
cd "$(dirname "$0")/../../.."
# shellcheck source=docs/bench/external/lib.sh
. docs/bench/external/lib.sh

DEVICES="${DEVICES:-2000}"
INSTANCES="${INSTANCES:-3}"
ETCD_MEMBERS="${ETCD_MEMBERS:-3}"
TIMEOUT="${TIMEOUT:-300}"
LOG_LEVEL="${LOG_LEVEL:-warn}"
GO="${GO:-go}"
PY="${PYTHON:-python3}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
ETCD="${ETCD:-/usr/bin/etcd}"

say() { echo "bench-cluster: $*" >&2; }
unset_myno_env

missing=()
command -v "$GO" >/dev/null || missing+=("go ($GO)")
command -v "$PY" >/dev/null || missing+=("python3 ($PY)")
[ -x "$MOSQUITTO" ] || missing+=("mosquitto ($MOSQUITTO)")
[ -x "$ETCD" ] || missing+=("etcd ($ETCD, Debian's etcd-server)")
if [ ${#missing[@]} -gt 0 ]; then
  say "missing:"; printf '  - %s\n' "${missing[@]}" >&2; exit 1
fi
fds="$(ulimit -n)"
if [ "$fds" != unlimited ] && [ "$fds" -lt $((DEVICES + 1000)) ]; then
  ulimit -n $((DEVICES + 1000)) 2>/dev/null || { say "ulimit -n is $fds: too low for $DEVICES devices"; exit 1; }
fi

make_work bench-cluster logs
say "building myno in $work"
"$GO" build -o "$work/myno" ./cmd/myno
myno_version="$(git describe --always --dirty 2>/dev/null || echo '?') (working tree)"

# --- etcd ----------------------------------------------------------------
read -ra ports <<<"$(free_ports $((2 * ETCD_MEMBERS + 1 + 2 * INSTANCES)))"
peers=() endpoints=()
for ((i = 0; i < ETCD_MEMBERS; i++)); do
  peers+=("e$i=http://127.0.0.1:${ports[$((2 * i + 1))]}")
  endpoints+=("http://127.0.0.1:${ports[$((2 * i))]}")
done
initial="$(IFS=,; echo "${peers[*]}")"
for ((i = 0; i < ETCD_MEMBERS; i++)); do
  "$ETCD" --name "e$i" --data-dir "$work/etcd-e$i" \
    --listen-client-urls "${endpoints[$i]}" --advertise-client-urls "${endpoints[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ports[$((2 * i + 1))]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((2 * i + 1))]}" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token bench-cluster \
    --logger zap --log-outputs stderr --log-level warn </dev/null >"$work/etcd-e$i.log" 2>&1 &
  pids+=($!)
done
for ((i = 0; i < ETCD_MEMBERS; i++)); do
  for _ in $(seq 1 200); do
    [ "$(http_get "${endpoints[$i]}/health" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("health"))' 2>/dev/null)" = true ] && break
    sleep 0.05
  done
done
etcd_version="$("$ETCD" --version | head -1)"
say "etcd: $ETCD_MEMBERS members, $etcd_version"

# --- Mosquitto ---------------------------------------------------------------
p=$((2 * ETCD_MEMBERS))
mq_port="${ports[$p]}"
start_mosquitto "$mq_port" "max_keepalive 60"
broker_url="mqtt://127.0.0.1:$mq_port"

# --- the bridges ---------------------------------------------------------------
admin_pw="bench-cluster-$RANDOM$RANDOM"
metrics_urls=()
for ((i = 0; i < INSTANCES; i++)); do
  nc_port="${ports[$((p + 1 + 2 * i))]}" http_port="${ports[$((p + 2 + 2 * i))]}"
  MYNO_ADMIN_PASSWORD="$admin_pw" "$work/myno" bridge --mqtt-url "$broker_url" \
    --cluster bench --instance "i$i" --cluster-etcd "$(IFS=,; echo "${endpoints[*]}")" \
    --netconf-listen "127.0.0.1:$nc_port" --http-listen "127.0.0.1:$http_port" \
    --data-dir "$work/data-i$i" --log-level "$LOG_LEVEL" </dev/null >"$work/bridge-i$i.log" 2>&1 &
  pids+=($!)
  metrics_urls+=("http://127.0.0.1:$http_port/metrics")
done
for ((i = 0; i < INSTANCES; i++)); do
  url="${metrics_urls[$i]%/metrics}/readyz"
  for _ in $(seq 1 300); do [ "$(http_get "$url")" = ready ] && break; sleep 0.1; done
  [ "$(http_get "$url")" = ready ] || { say "instance i$i is not ready:"; tail -20 "$work/bridge-i$i.log" >&2; exit 1; }
done
say "$INSTANCES instances ready"

# --- the fleet, and the measurement ---------------------------------------------
per=$((DEVICES / 3))
{
  echo "$PWD/testdata/descriptions/led-color.jsonld:$((DEVICES - 2 * per))"
  echo "$PWD/testdata/descriptions/relay-sensors.jsonld:$per"
  echo "$PWD/testdata/descriptions/thermostat.jsonld:$per"
} >"$work/fleet.txt"
t0="$(now_ns)"
"$work/myno" device --fleet "$work/fleet.txt" --uuid bench-cluster --telemetry-interval 0 --mqtt-url "$broker_url" \
  --log-level warn </dev/null >"$work/fleet.log" 2>&1 &
pids+=($!)
say "fleet of $DEVICES devices started; polling ${#metrics_urls[@]} instances"

out="$("$PY" - "$t0" "$DEVICES" "$TIMEOUT" "${metrics_urls[@]}" <<'PYEOF'
import json, sys, time, urllib.request
t0, want, timeout, urls = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]

def scrape(url):
    m = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            m[name] = float(value)
    return m

def since():
    return (time.time_ns() - t0) / 1e9

owned = converged = None
deadline = time.time() + timeout
while time.time() < deadline:
    ms = [scrape(u) for u in urls]
    answered = sum(m.get('myno_bootstraps_total{result="registered"}', 0) for m in ms)
    held = [m.get("myno_devices_registered", 0) for m in ms]
    if owned is None and answered >= want:
        owned = since()
    if owned is not None and min(held) >= want:
        converged = since()
        break
    time.sleep(0.05)
result = {"owned_s": owned, "converged_s": converged, "held": held, "answered": answered}
if converged is not None:
    time.sleep(0.2)  # each lag is observed just after the device is held
# The lag histograms, merged over the instances.
buckets, count, total = {}, 0, 0.0
for u in urls:
    for name, v in scrape(u).items():
        if name.startswith("myno_cluster_follow_lag_seconds_bucket"):
            le = name.split('le="')[1].split('"')[0]
            buckets[le] = buckets.get(le, 0) + v
        elif name == "myno_cluster_follow_lag_seconds_count":
            count += v
        elif name == "myno_cluster_follow_lag_seconds_sum":
            total += v
bounds = sorted(((float(le), n) for le, n in buckets.items()), key=lambda x: x[0])
def quantile(q):
    for le, n in bounds:
        if n >= q * count:
            return le
    return None
result.update({"lags": count, "lag_mean_s": total / count if count else None,
               "within_1s": buckets.get("1", 0) / count if count else None,
               "lag_p50_le_s": quantile(0.5), "lag_p99_le_s": quantile(0.99), "lag_max_le_s": quantile(1.0)})
print(json.dumps(result))
PYEOF
)"
say "result: $out"
[ -n "${RESULTS:-}" ] && echo "$out" >>"$RESULTS"

cpu="$(grep -c ^processor /proc/cpuinfo)"
model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
"$PY" - "$out" "$DEVICES" "$INSTANCES" "$ETCD_MEMBERS" "$myno_version" "$etcd_version" "$cpu" "$model" <<'PYEOF'
import json, sys
r = json.loads(sys.argv[1])
devices, instances, members, version, etcd, cpu, model = sys.argv[2:9]
def s(x, unit="s"):
    if x is None: return "—"
    if x == float("inf"): return "> 30 s"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"
print(f"Cluster lag, from outside: {devices} devices (3 shapes, one fleet process), {instances} `myno bridge --cluster` "
      f"processes, one Mosquitto, a {members}-member etcd ({etcd}), all on loopback; myno {version}; {cpu} × {model}.\n")
print("| measure | value | target |")
print("|---|---|---|")
print(f"| every registration answered by its owner | {s(r['owned_s'])} after the fleet's start | |")
print(f"| every instance holding every device | {s(r['converged_s'])} after the fleet's start | |")
tail = None if r["owned_s"] is None or r["converged_s"] is None else r["converged_s"] - r["owned_s"]
print(f"| convergence tail (the two above apart) | {s(tail)} | ≤ 1 s |")
print(f"| replicated registrations observed | {r['lags']:.0f} (want {devices} × {int(instances) - 1}) | |")
print(f"| lag mean | {s(r['lag_mean_s'])} | |")
print(f"| lag p50 / p99 / max (bucket upper bounds) | ≤ {s(r['lag_p50_le_s'])} / ≤ {s(r['lag_p99_le_s'])} / ≤ {s(r['lag_max_le_s'])} | ≤ 1 s |")
within = r["within_1s"]
print(f"| replicated within 1 s | {within * 100:.2f} % | 100 % |" if within is not None else "| replicated within 1 s | — | 100 % |")
PYEOF
