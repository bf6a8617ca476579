#!/usr/bin/env bash
# 10,000 devices, measured from outside the bridge (issue 17).
#
# Every party is its own process, on loopback, on random free ports, in a
# temp dir removed at the end:
#   - the bridge under test: `myno bridge` (built here), with --http-listen;
#   - a fleet of DEVICES simulated devices of 3 shapes: ONE `myno device
#     --fleet FILE` process (led-color, relay-sensors, thermostat), telemetry
#     off;
#   - on the second pass, Mosquitto as the broker (`--mqtt-url`);
#   - the measuring client, ncscale/ (Go, golang.org/x/crypto/ssh and
#     net/http; it does not import the bridge), which polls /metrics and
#     speaks NETCONF over SSH.
# For each broker (embedded, then Mosquitto):
#   1. registration: the wall time from the fleet's start until /metrics
#      says myno_devices_registered >= DEVICES (polled every 100 ms); the
#      bridge's CPU time (utime+stime, /proc/<pid>/stat) over that time per
#      device; its RSS (VmRSS) after minus before, per device, right away
#      and after SETTLE seconds;
#   2. the whole <get/>, GET_RUNS times on one session: median, max, size;
#   3. restart: SIGTERM (the fleet keeps running), the same data dir and
#      ports again; the time until a NETCONF session answers a <get>, until
#      that <get> shows every device, and until myno_devices_online is back
#      to DEVICES; then one device rpc to every device (a sweep), to see
#      that each is reachable;
#   4. device rpcs (an rpc with only uuidInput, each shape's first) on random
#      devices, RPC_SESSIONS sessions for RPC_DURATION seconds;
#   5. the same again while one more session asks for the whole <get/>
#      every second (its times reported too).
# Prints a Markdown table, the targets of issue 17 beside the figures.
#
# Usage: make bench-scale, or docs/bench/external/scale.sh, with
#   DEVICES=10000      devices in the fleet (split over the 3 shapes)
#   BROKERS="embedded mosquitto"   which passes to run
#   REG_TIMEOUT=120    seconds allowed for registration (then "timeout")
#   RESTART_TIMEOUT=120  seconds allowed for the restart's steps
#   SETTLE=5           seconds between the two RSS readings
#   GET_RUNS=5         whole <get/>s per pass
#   RPC_SESSIONS=16 RPC_DURATION=10   device rpcs (RPC_DURATION=0: skip)
#   CONNECT_INTERVAL, CONNECT_CONCURRENCY   the fleet's (myno device defaults
#                      when unset: 200us, 64)
#   LOG_LEVEL=warn     the bridge's --log-level (info logs 3 lines per device)
#   FLEET_LOG_LEVEL=warn  the fleet's --log-level (info: a line per device
#                      connect and registration, to follow one device)
#   REV=COMMIT         build the bridge of COMMIT (git archive) instead of the
#                      working tree
#   RESULTS=FILE       also keep the JSON lines in FILE
#   KEEP=1             keep the temp dir (logs, data dirs)
#   PROFILE=1          build the bridge with net/http/pprof added (one file,
#                      written into a temp copy of the source, never into the
#                      checkout) and keep CPU profiles of the registration
#                      (PROFILE_SECONDS, 20) and of the restart, and a heap
#                      profile after registration, in the temp dir (kept);
#                      prints their top functions. Profiling costs a little:
#                      the reference figures are those of runs without it.
# Needs (installs nothing): go, python3, Debian's mosquitto (for the
# second pass).
set -euo pipefail
cd "$(dirname "$0")/../../.."
# shellcheck source=docs/bench/external/lib.sh
. docs/bench/external/lib.sh

DEVICES="${DEVICES:-10000}"
BROKERS="${BROKERS:-embedded mosquitto}"
REG_TIMEOUT="${REG_TIMEOUT:-120}"
RESTART_TIMEOUT="${RESTART_TIMEOUT:-120}"
SETTLE="${SETTLE:-5}"
GET_RUNS="${GET_RUNS:-5}"
RPC_SESSIONS="${RPC_SESSIONS:-16}"
RPC_DURATION="${RPC_DURATION:-10}"
LOG_LEVEL="${LOG_LEVEL:-warn}"
GO="${GO:-go}"
PY="${PYTHON:-python3}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
SHAPES=(led-color relay-sensors thermostat)

say() { echo "bench-scale: $*" >&2; }
unset_myno_env

missing=()
command -v "$GO" >/dev/null || missing+=("go ($GO)")
command -v "$PY" >/dev/null || missing+=("python3 ($PY)")
command -v timeout >/dev/null || missing+=("coreutils (timeout)")
case " $BROKERS " in *" mosquitto "*) [ -x "$MOSQUITTO" ] || missing+=("mosquitto ($MOSQUITTO)") ;; esac
if [ ${#missing[@]} -gt 0 ]; then
  say "missing:"; printf '  - %s\n' "${missing[@]}" >&2; exit 1
fi
if [ "$DEVICES" -lt 3 ]; then say "DEVICES must be at least 3"; exit 2; fi
fds="$(ulimit -n)"
if [ "$fds" != unlimited ] && [ "$fds" -lt $((DEVICES + 1000)) ]; then
  # Each of the fleet, the bridge (embedded broker) and Mosquitto holds one
  # socket per device.
  ulimit -n $((DEVICES + 1000)) 2>/dev/null || { say "ulimit -n is $fds: too low for $DEVICES devices"; exit 1; }
fi

make_work bench-scale logs

# cpu_ticks PID: utime + stime, in clock ticks.
cpu_ticks() {
  local s f
  read -r s <"/proc/$1/stat" || { echo 0; return; }
  s="${s##*) }"
  read -ra f <<<"$s"
  echo $((f[11] + f[12]))
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hz="$(getconf CLK_TCK)"
# fetch URL FILE: a pprof profile (the request takes as long as it samples).
fetch() { "$PY" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=300).read())' "$1" "$2" 2>>"$work/pprof.err" || true; }
metric() { http_get "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
results="$work/results.jsonl"
: >"$results"
# record BROKER STEP JSON: one line of results.
record() { echo "{\"broker\":\"$1\",\"step\":\"$2\",\"data\":$3}" >>"$results"; say "$1 $2: $3"; }

# --- build ---------------------------------------------------------------
PROFILE="${PROFILE:-0}"
PROFILE_SECONDS="${PROFILE_SECONDS:-20}"
[ "$PROFILE" = 1 ] && KEEP=1
if [ -n "${REV:-}" ]; then
  say "building myno at $REV and ncscale in $work"
  mkdir "$work/src"
  git archive "$REV" | tar -x -C "$work/src"
  myno_version="$(git rev-parse --short "$REV")"
elif [ "$PROFILE" = 1 ]; then
  say "building myno (with pprof) and ncscale in $work"
  mkdir "$work/src"
  git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -x -C "$work/src"
  myno_version="$(git describe --always --dirty 2>/dev/null || echo '?') (working tree)"
else
  say "building myno and ncscale in $work"
  "$GO" build -o "$work/myno" ./cmd/myno
  myno_version="$(git describe --always --dirty 2>/dev/null || echo '?') (working tree)"
fi
if [ -d "$work/src" ]; then
  if [ "$PROFILE" = 1 ]; then
    # The bridge serves no pprof: this file, in the temp copy only, adds it
    # on $BENCH_PPROF_LISTEN.
    cat >"$work/src/cmd/myno/zz_bench_scale_pprof.go" <<'EOF'
package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("BENCH_PPROF_LISTEN"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
EOF
    myno_version+=", with pprof"
  fi
  (cd "$work/src" && "$GO" build -o "$work/myno" ./cmd/myno)
fi
"$GO" build -o "$work/ncscale" ./docs/bench/external/ncscale

# --- the fleet: 3 shapes, DEVICES in all ------------------------------------
per=$((DEVICES / 3))
counts=($((DEVICES - 2 * per)) "$per" "$per")
: >"$work/fleet.txt"
shapes_arg=""
for i in 0 1 2; do
  f="$PWD/testdata/descriptions/${SHAPES[$i]}.jsonld"
  echo "$f:${counts[$i]}" >>"$work/fleet.txt"
  # Each shape's module and its first rpc whose only input is uuidInput.
  read -r module rpc < <("$work/myno" yang --tree "$f" | "$PY" -c '
import re, sys
lines = sys.stdin.read().splitlines()
module = re.match(r"module: (\S+)", lines[0]).group(1)
rpc, inputs = None, []
for l in lines[1:] + ["+---x END"]:
    m = re.search(r"\+---x (\S+)", l)
    if m:
        if rpc and inputs == ["uuidInput"]:
            print(module, rpc); break
        rpc, inputs = m.group(1), []
        continue
    m = re.search(r"\+---w (\S+)", l)
    if m and rpc and l.index("+---w") <= 9:
        inputs.append(m.group(1))
')
  shapes_arg+="${shapes_arg:+,}urn:myno:yang:$module:$rpc:${counts[$i]}"
done
say "fleet: $(tr '\n' ' ' <"$work/fleet.txt")"
say "device rpcs: $shapes_arg"
fleet_flags=(--fleet "$work/fleet.txt" --uuid bench-scale --telemetry-interval 0 --log-level "${FLEET_LOG_LEVEL:-warn}")
[ -n "${CONNECT_INTERVAL:-}" ] && fleet_flags+=(--connect-interval "$CONNECT_INTERVAL")
[ -n "${CONNECT_CONCURRENCY:-}" ] && fleet_flags+=(--connect-concurrency "$CONNECT_CONCURRENCY")

admin_pw="bench-scale-$RANDOM$RANDOM"
# Under --enrol open each device logs in as its uuid with a token of 22+
# bytes, bound to it on first use; the fleet shares this one.
device_token="bench-scale-device-token-$RANDOM$RANDOM"

# start_bridge BROKER: starts the bridge on $data with $bridge_flags; sets
# bridge_pid and bridge_started (Unix ns).
start_bridge() {
  bridge_started="$(now_ns)"
  BENCH_PPROF_LISTEN="${pprof_addr:-}" MYNO_ADMIN_PASSWORD="$admin_pw" "$work/myno" bridge "${bridge_flags[@]}" \
    </dev/null >>"$work/bridge-$1.log" 2>&1 &
  bridge_pid=$!
  pids+=("$bridge_pid")
}
wait_ready() {
  for i in $(seq 1 300); do
    [ "$(http_get "http://127.0.0.1:$http_port/readyz")" = ready ] && return 0
    kill -0 "$bridge_pid" 2>/dev/null || break
    sleep 0.1
  done
  say "the bridge is not ready:"; tail -20 "$work/bridge-$1.log" >&2; return 1
}
# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS; prints the
# milliseconds it took to exit, or "killed".
stop_pid() {
  local pid="$1" t0 i
  t0="$(now_ns)"
  kill -TERM "$pid" 2>/dev/null || { echo 0; return; }
  for ((i = 0; i < $2 * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; echo $((($(now_ns) - t0) / 1000000)); return; }
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo killed
}

nc_args() { echo -addr "127.0.0.1:$nc_port" -password "$admin_pw"; }

run_pass() {
  local broker="$1" mq_pid="" mq_port="" out
  read -r nc_port mqtt_port http_port mq_port pprof_port <<<"$(free_ports 5)"
  pprof_addr=""
  [ "$PROFILE" = 1 ] && pprof_addr="127.0.0.1:$pprof_port"
  data="$work/data-$broker"
  bridge_flags=(--netconf-listen "127.0.0.1:$nc_port" --http-listen "127.0.0.1:$http_port"
    --data-dir "$data" --log-level "$LOG_LEVEL")
  local broker_url dev_env=()
  if [ "$broker" = mosquitto ]; then
    start_mosquitto "$mq_port" "max_keepalive 60"
    broker_url="mqtt://127.0.0.1:$mq_port"
    bridge_flags+=(--mqtt-url "$broker_url")
  else
    broker_url="mqtt://127.0.0.1:$mqtt_port"
    bridge_flags+=(--mqtt-listen "127.0.0.1:$mqtt_port" --enrol open)
    dev_env=(MYNO_MQTT_PASSWORD="$device_token")
  fi

  say "[$broker] starting the bridge"
  start_bridge "$broker"
  wait_ready "$broker"
  sleep 1
  local rss0 cpu0 mrss0=0 heap0
  rss0="$(rss_kb "$bridge_pid")"
  cpu0="$(cpu_ticks "$bridge_pid")"
  heap0="$(metric go_memstats_heap_inuse_bytes)"
  [ -n "$mq_pid" ] && mrss0="$(rss_kb "$mq_pid")"

  # 1. registration.
  say "[$broker] starting $DEVICES devices"
  local t0 fleet_pid
  t0="$(now_ns)"
  env "${dev_env[@]}" "$work/myno" device "${fleet_flags[@]}" --mqtt-url "$broker_url" \
    </dev/null >"$work/fleet-$broker.log" 2>&1 &
  fleet_pid=$!
  pids+=("$fleet_pid")
  local prof_pid=""
  if [ "$PROFILE" = 1 ]; then
    fetch "http://$pprof_addr/debug/pprof/profile?seconds=$PROFILE_SECONDS" "$work/cpu-register-$broker.pprof" &
    prof_pid=$!
  fi
  out="$(timeout $((REG_TIMEOUT + 30)) "$work/ncscale" metric -url "http://127.0.0.1:$http_port/metrics" \
    -name myno_devices_registered -want "$DEVICES" -since "$t0" -timeout "${REG_TIMEOUT}s")" || out='{"reached":false,"error":"ncscale failed"}'
  local cpu1 rss1 heap1 fcpu mcpu=0 mrss1=0
  cpu1="$(cpu_ticks "$bridge_pid")"
  rss1="$(rss_kb "$bridge_pid")"
  fcpu="$(cpu_ticks "$fleet_pid")"
  heap1="$(metric go_memstats_heap_inuse_bytes)"
  [ -n "$mq_pid" ] && { mcpu="$(cpu_ticks "$mq_pid")"; mrss1="$(rss_kb "$mq_pid")"; }
  record "$broker" register "$out"
  if [ "$PROFILE" = 1 ]; then
    wait "$prof_pid" || true
    fetch "http://$pprof_addr/debug/pprof/heap" "$work/heap-register-$broker.pprof"
  fi
  sleep "$SETTLE"
  local rss2 mrss2=0 registered online
  rss2="$(rss_kb "$bridge_pid")"
  [ -n "$mq_pid" ] && mrss2="$(rss_kb "$mq_pid")"
  registered="$(metric myno_devices_registered)"
  online="$(metric myno_devices_online)"
  record "$broker" proc "{\"hz\":$hz,\"bridge_cpu_ticks\":$((cpu1 - cpu0)),\"fleet_cpu_ticks\":$fcpu,\"mosquitto_cpu_ticks\":$mcpu,\"rss0_kb\":$rss0,\"rss1_kb\":$rss1,\"rss2_kb\":$rss2,\"heap0\":${heap0:-0},\"heap1\":${heap1:-0},\"mrss0_kb\":$mrss0,\"mrss1_kb\":$mrss1,\"mrss2_kb\":$mrss2,\"fleet_rss_kb\":$(rss_kb "$fleet_pid"),\"registered\":${registered:-0},\"online\":${online:-0},\"fleet\":\"$(grep '^fleet:' "$work/fleet-$broker.log" | tail -1 | sed 's/^fleet: //')\"}"

  # 2. the whole <get/>.
  say "[$broker] $GET_RUNS x <get/>"
  # shellcheck disable=SC2046
  out="$(timeout 300 "$work/ncscale" get $(nc_args) -runs "$GET_RUNS")" || out="{\"error\":\"failed\"}"
  record "$broker" get "$out"

  # 3. restart, the fleet running.
  say "[$broker] restarting the bridge"
  local stopped t1 ready_out online_out
  stopped="$(stop_pid "$bridge_pid" 60)"
  start_bridge "$broker"
  t1="$bridge_started"
  if [ "$PROFILE" = 1 ]; then
    # From as soon as the new process serves pprof (its first milliseconds).
    (for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${pprof_addr/://}") 2>/dev/null && break; sleep 0.02; done
     fetch "http://$pprof_addr/debug/pprof/profile?seconds=$PROFILE_SECONDS" "$work/cpu-restart-$broker.pprof") &
    prof_pid=$!
  fi
  # shellcheck disable=SC2046
  timeout $((RESTART_TIMEOUT + 30)) "$work/ncscale" ready $(nc_args) -since "$t1" -want "$DEVICES" \
    -wait "${RESTART_TIMEOUT}s" >"$work/ready.json" 2>>"$work/ncscale.err" &
  local ready_pid=$!
  timeout $((RESTART_TIMEOUT + 30)) "$work/ncscale" metric -url "http://127.0.0.1:$http_port/metrics" \
    -name myno_devices_online -want "$DEVICES" -since "$t1" -timeout "${RESTART_TIMEOUT}s" \
    >"$work/online.json" 2>>"$work/ncscale.err" || true
  wait "$ready_pid" || true
  ready_out="$(cat "$work/ready.json")"
  online_out="$(cat "$work/online.json")"
  # Reachable: one rpc to every device, right after that.
  say "[$broker] one rpc to each of the $DEVICES devices"
  local sweep_out
  # shellcheck disable=SC2046
  sweep_out="$(timeout $((RESTART_TIMEOUT + 60)) "$work/ncscale" rpcs $(nc_args) -base bench-scale -shapes "$shapes_arg" \
    -sessions "$RPC_SESSIONS" -sweep -since "$t1" -duration "${RESTART_TIMEOUT}s" 2>>"$work/ncscale.err")" || true
  [ "$PROFILE" = 1 ] && { wait "$prof_pid" || true; }
  record "$broker" restart "{\"stop_ms\":\"$stopped\",\"ready\":${ready_out:-null},\"online\":${online_out:-null},\"sweep\":${sweep_out:-null}}"

  # 4. device rpcs on random devices.
  if [ "$RPC_DURATION" != 0 ]; then
    say "[$broker] device rpcs: $RPC_SESSIONS sessions, ${RPC_DURATION}s"
    local rcpu0 rcpu1 fcpu0 fcpu1
    rcpu0="$(cpu_ticks "$bridge_pid")"; fcpu0="$(cpu_ticks "$fleet_pid")"
    # shellcheck disable=SC2046
    out="$(timeout $((RPC_DURATION + 120)) "$work/ncscale" rpcs $(nc_args) -base bench-scale -shapes "$shapes_arg" \
      -sessions "$RPC_SESSIONS" -duration "${RPC_DURATION}s")" || true
    [ -n "$out" ] || out='{"error":"failed"}'
    rcpu1="$(cpu_ticks "$bridge_pid")"; fcpu1="$(cpu_ticks "$fleet_pid")"
    record "$broker" rpcs "{\"hz\":$hz,\"bridge_cpu_ticks\":$((rcpu1 - rcpu0)),\"fleet_cpu_ticks\":$((fcpu1 - fcpu0)),\"r\":${out}}"

    # 5. the same, while one more session asks for the whole <get/> every
    # second.
    say "[$broker] device rpcs with a whole <get/> every second: $RPC_SESSIONS sessions, ${RPC_DURATION}s"
    # shellcheck disable=SC2046
    out="$(timeout $((RPC_DURATION + 120)) "$work/ncscale" rpcs $(nc_args) -base bench-scale -shapes "$shapes_arg" \
      -sessions "$RPC_SESSIONS" -duration "${RPC_DURATION}s" -full-get-every 1s)" || true
    [ -n "$out" ] || out='{"error":"failed"}'
    record "$broker" rpcs_get "{\"r\":${out}}"
  fi

  # What went wrong, if anything: warnings and errors in the logs.
  local warns errs ffail
  warns="$(grep -c 'level=WARN' "$work/bridge-$broker.log" || true)"
  errs="$(grep -c 'level=ERROR' "$work/bridge-$broker.log" || true)"
  ffail="$(grep -c 'level=WARN\|level=ERROR' "$work/fleet-$broker.log" || true)"
  record "$broker" logs "{\"bridge_warnings\":${warns:-0},\"bridge_errors\":${errs:-0},\"fleet_warnings\":${ffail:-0}}"
  if [ "${warns:-0}" -gt 0 ] || [ "${errs:-0}" -gt 0 ]; then
    say "[$broker] the bridge's warnings and errors, by message:"
    grep -o 'level=[A-Z]* msg=\("[^"]*"\|[^ ]*\)' "$work/bridge-$broker.log" | sort | uniq -c | sort -rn | head -10 >&2
  fi

  say "[$broker] stopping"
  stop_pid "$fleet_pid" 30 >/dev/null
  stop_pid "$bridge_pid" 60 >/dev/null
  [ -n "$mq_pid" ] && stop_pid "$mq_pid" 30 >/dev/null
  return 0
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for b in $BROKERS; do
  run_pass "$b"
done

# --- the table --------------------------------------------------------------
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo
echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(uname -sr); $("$GO" env GOVERSION); mosquitto $("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p' | head -1)"
echo "myno $myno_version; $(date -u +%Y-%m-%d)"
echo "Load average (1, 5, 15 min) before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Runs: DEVICES=$DEVICES (${counts[*]} of ${SHAPES[*]}) BROKERS=\"$BROKERS\" SETTLE=$SETTLE GET_RUNS=$GET_RUNS RPC_SESSIONS=$RPC_SESSIONS RPC_DURATION=$RPC_DURATION LOG_LEVEL=$LOG_LEVEL${CONNECT_INTERVAL:+ CONNECT_INTERVAL=$CONNECT_INTERVAL}${CONNECT_CONCURRENCY:+ CONNECT_CONCURRENCY=$CONNECT_CONCURRENCY}"
echo
"$PY" - "$results" "$DEVICES" "$BROKERS" "$GET_RUNS" "$RPC_SESSIONS" <<'EOF'
import json, sys
path, n, brokers = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
get_runs, sessions = sys.argv[4], sys.argv[5]
r = {}
for line in open(path):
    x = json.loads(line)
    r[(x["broker"], x["step"])] = x["data"]

def g(b, step, *keys):
    v = r.get((b, step))
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v

def secs(ms):
    return "—" if ms is None else "%.2f s" % (ms / 1000)

def row(label, target, f):
    cells = []
    for b in brokers:
        try:
            cells.append(f(b))
        except Exception as e:  # a step that did not run or failed
            cells.append("— (%s)" % type(e).__name__)
    print("| %s | %s | %s |" % (label, target, " | ".join(cells)))

names = {"embedded": "embedded broker", "mosquitto": "Mosquitto"}
print("| measured from outside, %s devices | issue 17's target | %s |" % ("{:,}".format(n), " | ".join(names.get(b, b) for b in brokers)))
print("|---|---|" + "---|" * len(brokers))

def reg(b):
    d = r[(b, "register")]
    if not d.get("reached"):
        return "**timeout**: %s of %s after %ss" % ("{:,.0f}".format(d.get("last", 0)), "{:,}".format(n), len(d.get("progress", [])))
    return secs(d["ms"])
row("registration: fleet start → `myno_devices_registered` = N", "≤ 10 s", reg)
def regcpu(b):
    p = r[(b, "proc")]
    ms = p["bridge_cpu_ticks"] / p["hz"] * 1000
    return "%.2f ms (%.1f s in all)" % (ms / n, ms / 1000)
row("bridge CPU per registration (user+sys)", "≤ 0.3 ms (known shape)", regcpu)
def othercpu(b):
    p = r[(b, "proc")]
    s = "fleet %.1f s" % (p["fleet_cpu_ticks"] / p["hz"])
    if b == "mosquitto":
        s += ", Mosquitto %.1f s" % (p["mosquitto_cpu_ticks"] / p["hz"])
    return s
row("CPU of the other processes until then", "", othercpu)
def rssrow(b):
    p = r[(b, "proc")]
    return "%.1f KiB; %.1f KiB settled" % ((p["rss1_kb"] - p["rss0_kb"]) / n, (p["rss2_kb"] - p["rss0_kb"]) / n)
row("bridge RSS per device (VmRSS after − before, ÷ N)", "≤ 100 KiB embedded, ≤ 40 KiB external", rssrow)
def rssabs(b):
    p = r[(b, "proc")]
    return "%.0f → %.0f MiB" % (p["rss0_kb"] / 1024, p["rss2_kb"] / 1024)
row("bridge RSS before → after", "", rssabs)
def heap(b):
    p = r[(b, "proc")]
    return "%.1f KiB" % ((p["heap1"] - p["heap0"]) / 1024 / n)
row("bridge Go heap in use per device (`/metrics`)", "", heap)
def mq(b):
    if b != "mosquitto":
        return "(in the bridge)"
    p = r[(b, "proc")]
    return "%.1f KiB" % ((p["mrss2_kb"] - p["mrss0_kb"]) / n)
row("broker RSS per device", "", mq)
def fleet(b):
    return r[(b, "proc")]["fleet"] or "—"
row("the fleet's last progress line", "", fleet)
def get(b):
    d = r[(b, "get")]
    return "%.0f ms / %.0f ms" % (d["p50_ms"], d["max_ms"])
row("whole `<get/>`: median / max of %s, one session" % get_runs, "≤ 300 ms", get)
def getsize(b):
    d = r[(b, "get")]
    return "%.1f MB, %s devices (%s online)" % (d["reply_bytes"] / 1e6, "{:,}".format(d["devices"]), "{:,}".format(d["online"]))
row("`<get/>` reply", "", getsize)
def stop(b):
    s = r[(b, "restart")]["stop_ms"]
    return s if s == "killed" else secs(int(s))
row("restart: SIGTERM → exit", "", stop)
def ready(b):
    d = r[(b, "restart")]["ready"]
    if d.get("timeout") and not d.get("answered_ms"):
        return "**timeout**"
    return "%s (%s devices)" % (secs(d.get("answered_ms")), "{:,}".format(d.get("devices", 0)))
row("restart: start → NETCONF answers a `<get>`", "≤ 2 s", ready)
def full(b):
    d = r[(b, "restart")]["ready"]
    return "**timeout**" if d.get("timeout") else secs(d.get("full_ms"))
row("restart: start → that `<get>` shows N devices", "", full)
def online(b):
    d = r[(b, "restart")]["online"]
    if not d.get("reached"):
        return "**timeout**: %s online" % "{:,.0f}".format(d.get("last", 0))
    return secs(d["ms"])
row("restart: start → `myno_devices_online` = N", "every device reachable", online)
def sweep(b):
    d = r[(b, "restart")]["sweep"]
    ok = d["rpcs"]
    s = "%s of %s answered by %s (from %s)" % ("{:,}".format(ok), "{:,}".format(n), secs(d["sweep_end_ms"]), secs(d["sweep_start_ms"]))
    if d["errors"] or d.get("untried"):
        s += ", **%d failed, %d not tried**" % (d["errors"], d.get("untried", 0))
    return s
row("restart: then one rpc to every device (%s sessions)" % sessions, "every device reachable", sweep)
def rpcs(b):
    d = r[(b, "rpcs")]["r"]
    return "{:,.0f}".format(d["rps"]) + " rpc/s, p50 %.1f ms, p99 %.1f ms, %d errors" % (d["p50_ms"], d["p99_ms"], d["errors"])
row("device rpcs, random devices, %s sessions" % sessions, "≥ 5,000 rpc/s, p99 ≤ 20 ms (16 sessions)", rpcs)
def rpcsget(b):
    d = r[(b, "rpcs_get")]["r"]
    return ("{:,.0f}".format(d["rps"]) + " rpc/s, p50 %.1f ms, p99 %.1f ms, %d errors; %d whole `<get/>`s, median %.0f ms, max %.0f ms%s" % (
        d["p50_ms"], d["p99_ms"], d["errors"], d.get("full_gets", 0), d.get("full_get_p50_ms", 0), d.get("full_get_max_ms", 0),
        ", **get failed: %s**" % d["full_get_error"] if d.get("full_get_error") else ""))
row("the same while a whole `<get/>` runs every second", "p99 ≤ 20 ms; `<get/>` ≤ 300 ms", rpcsget)
def rpccpu(b):
    d = r[(b, "rpcs")]
    rr = d["r"]
    us = 1e6 / d["hz"] / max(rr["rpcs"], 1)
    return "bridge %.0f µs, fleet %.0f µs" % (d["bridge_cpu_ticks"] * us, d["fleet_cpu_ticks"] * us)
row("CPU per device rpc", "", rpccpu)
def logs(b):
    d = r[(b, "logs")]
    return "%d warnings, %d errors (fleet: %d)" % (d["bridge_warnings"], d["bridge_errors"], d["fleet_warnings"])
row("bridge log", "", logs)
print()
print("Registration progress (registered devices at each second after the fleet's start):")
for b in brokers:
    print("- %s: %s" % (names.get(b, b), " ".join("{:.0f}".format(v) for v in g(b, "register", "progress") or [])))
EOF
echo
echo "JSON lines:"
cat "$results"
if [ "$PROFILE" = 1 ]; then
  for f in "$work"/cpu-*.pprof "$work"/heap-*.pprof; do
    [ -s "$f" ] || continue
    echo
    echo "== $(basename "$f") (go tool pprof -top $f)"
    "$GO" tool pprof -top -nodecount=30 "$work/myno" "$f" 2>/dev/null | head -40
    case "$f" in *cpu-*)
      echo "-- cumulative"
      "$GO" tool pprof -top -cum -nodecount=40 "$work/myno" "$f" 2>/dev/null | tail -n +6 | head -45 ;;
    esac
  done
fi
[ -n "${RESULTS:-}" ] && cp "$results" "$RESULTS"
exit 0
