#!/usr/bin/env bash
# NETCONF measured from outside the bridge, as users measure it, with
# yuma123's netconfd as the anchor in the same run (issue 17).
#
# Every party is its own process, over loopback SSH:
#   - the bridge under test: `myno bridge` (built here), user admin;
#   - the anchor: Debian's netconfd behind OpenSSH's sshd, each started
#     here in the foreground with its own configuration in a temp dir;
#   - optionally DEVICES simulated devices (`myno device --count`);
#   - two clients: ncbench/ (Go, golang.org/x/crypto/ssh) and ncbench.py
#     (raw paramiko), each session its own SSH connection, sending the same
#     one-leaf <get> back to back, one at a time.
# Prints a Markdown table: p50 of one sequential session, rpc/s and p99
# over SESSIONS sessions, per server and client, and bridge/netconfd.
#
# Usage: make bench-netconf (also a step of make bench-external), or
# docs/bench/external/run.sh, with
#   SESSIONS=16      sessions in parallel
#   DURATION=8       seconds of each parallel run
#   SEQ_DURATION=4   seconds of each one-session (sequential) run
#   ROUNDS=2         rounds of every run (the table shows medians)
#   WARMUP=50        rpcs per session before the clock starts
#   DEVICES=0        devices registered with the bridge (led-color)
#   PY_PROCS=1       processes of the paramiko client (1: threads only)
#   RESULTS=FILE     also keep the JSON lines in FILE
#   REV=COMMIT       build the bridge of COMMIT (git archive) instead of the
#                    working tree
#   KEEP=1           keep the temp dir (logs, configurations)
#   NC_USER=NAME     netconfd's NETCONF user (as root, default ncbench: a system
#                    user with /bin/sh, created if missing; see below)
# Needs (installs nothing): go, Debian's netconfd, openssh-server,
# openssh-client (ssh-keygen) and python3-paramiko (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../../.."
# shellcheck source=docs/bench/external/lib.sh
. docs/bench/external/lib.sh

SESSIONS="${SESSIONS:-16}"
DURATION="${DURATION:-8}"
SEQ_DURATION="${SEQ_DURATION:-4}"
ROUNDS="${ROUNDS:-2}"
WARMUP="${WARMUP:-50}"
DEVICES="${DEVICES:-0}"
PY_PROCS="${PY_PROCS:-1}"
GO="${GO:-go}"
PY="${PYTHON:-/usr/bin/python3}"
NETCONFD="${NETCONFD:-/usr/sbin/netconfd}"
SUBSYSTEM="${NETCONF_SUBSYSTEM:-/usr/sbin/netconf-subsystem}"
SSHD="${SSHD:-/usr/sbin/sshd}"

say() { echo "bench-external: $*" >&2; }
unset_myno_env

# --- what must be there -----------------------------------------------
need_netconfd_tools paramiko python3-paramiko

make_work bench-external "logs and configurations"

read -r nc_port ssh_port mqtt_port http_port <<<"$(free_ports 4)"
admin_pw="bench-external-$RANDOM$RANDOM"

if [ -n "${REV:-}" ]; then
  # The bridge of a commit, not of the working tree (which may hold
  # someone's unfinished change).
  say "building myno at $REV and ncbench in $work"
  mkdir "$work/src"
  git archive "$REV" | tar -x -C "$work/src"
  (cd "$work/src" && "$GO" build -o "$work/myno" ./cmd/myno)
  myno_version="$(git rev-parse --short "$REV")"
else
  say "building myno and ncbench in $work"
  "$GO" build -o "$work/myno" ./cmd/myno
  myno_version="$(git describe --always --dirty 2>/dev/null || echo '?') (working tree)"
fi
"$GO" build -o "$work/ncbench" ./docs/bench/external/ncbench

# smoke LABEL ARGS...: one rpc through the Go client, retried for 15 s.
smoke() {
  local label="$1"; shift
  for _ in $(seq 1 75); do
    if "$work/ncbench" -sessions 1 -rpcs 1 -warmup 0 -timeout 5s "$@" >"$work/smoke-$label.out" 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  say "$label does not answer the rpc:"; cat "$work/smoke-$label.out" >&2
  return 1
}

# --- the bridge under test ------------------------------------------------
bridge_flags=(--netconf-listen "127.0.0.1:$nc_port" --mqtt-listen "127.0.0.1:$mqtt_port"
  --http-listen "127.0.0.1:$http_port" --data-dir "$work/bridge" --log-level warn)
[ "$DEVICES" -gt 0 ] && bridge_flags+=(--enrol open)
say "starting myno bridge on 127.0.0.1:$nc_port"
MYNO_ADMIN_PASSWORD="$admin_pw" "$work/myno" bridge "${bridge_flags[@]}" \
  </dev/null >"$work/bridge.log" 2>&1 &
bridge_pid=$!
pids+=($bridge_pid)
for i in $(seq 1 150); do
  [ "$(http_get "http://127.0.0.1:$http_port/readyz")" = ready ] && break
  [ "$i" = 150 ] && { say "the bridge is not ready:"; cat "$work/bridge.log" >&2; exit 1; }
  sleep 0.2
done
if [ "$DEVICES" -gt 0 ]; then
  say "starting $DEVICES devices (led-color)"
  # --enrol open: each device logs in as its uuid with this (shared) token.
  MYNO_MQTT_PASSWORD="bench-external-device-token-$RANDOM$RANDOM" "$work/myno" device \
    --count "$DEVICES" --description testdata/descriptions/led-color.jsonld \
    --mqtt-url "mqtt://127.0.0.1:$mqtt_port" --uuid bench-led --log-level warn \
    </dev/null >"$work/devices.log" 2>&1 &
  pids+=($!)
  deadline=$((SECONDS + 60 + DEVICES / 20))
  while :; do
    n="$(http_get "http://127.0.0.1:$http_port/metrics" | awk '$1 == "myno_devices_registered" {print $2}')"
    [ "${n:-0}" -ge "$DEVICES" ] && break
    if [ $SECONDS -ge $deadline ]; then
      say "only ${n:-0} of $DEVICES devices registered:"; tail -20 "$work/devices.log" "$work/bridge.log" >&2; exit 1
    fi
    sleep 0.5
  done
  say "$n devices registered"
fi
bridge_go=(-addr "127.0.0.1:$nc_port" -user admin -password "$admin_pw" -server "myno bridge" -cpu-pids "$bridge_pid")
bridge_py=(--addr "127.0.0.1:$nc_port" --user admin --password "$admin_pw" --server "myno bridge" --cpu-pids "$bridge_pid")
smoke bridge "${bridge_go[@]}"

# --- the anchor: netconfd behind sshd -----------------------------------
start_netconfd "$ssh_port"
# netconfd's CPU time includes sshd's: each session's sshd processes and
# netconf-subsystem are descendants of the listener.
netconfd_go=(-addr "127.0.0.1:$ssh_port" -user "$user" -key "$work/ssh/client_key" -server netconfd -cpu-pids "$netconfd_pid,$sshd_pid")
netconfd_py=(--addr "127.0.0.1:$ssh_port" --user "$user" --key "$work/ssh/client_key" --server netconfd --cpu-pids "$netconfd_pid,$sshd_pid")
smoke netconfd "${netconfd_go[@]}"

# --- the runs -------------------------------------------------------------
results="$work/results.jsonl"
: >"$results"
failed=0
# measure CLIENT SERVER MODE: one run; its JSON line goes to $results.
measure() {
  local client="$1" server="$2" mode="$3" out rc=0
  local -n go_args="${server}_go" py_args="${server}_py"
  local sessions="$SESSIONS" duration="$DURATION"
  if [ "$mode" = seq ]; then sessions=1 duration="$SEQ_DURATION"; fi
  if [ "$client" = go ]; then
    out="$("$work/ncbench" "${go_args[@]}" -tool go -sessions "$sessions" -duration "${duration}s" -warmup "$WARMUP" 2>>"$work/clients.err")" || rc=$?
  else
    out="$("$PY" docs/bench/external/ncbench.py "${py_args[@]}" --tool paramiko --sessions "$sessions" \
      --duration "$duration" --warmup "$WARMUP" --procs "$PY_PROCS" 2>>"$work/clients.err")" || rc=$?
  fi
  if [ -z "$out" ] || [ $rc -ne 0 ]; then
    failed=1
    say "$client against $server ($mode) failed (exit $rc): ${out:-no result}"
    tail -5 "$work/clients.err" >&2
  fi
  if [ -n "$out" ]; then
    echo "$out" >>"$results"
    say "$out"
  fi
}
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
total=$((ROUNDS * 2 * 2 * (DURATION + SEQ_DURATION)))
say "measuring: $ROUNDS round(s) of 2 clients x 2 servers, about ${total}s"
for round in $(seq 1 "$ROUNDS"); do
  # Odd rounds measure the bridge first, even rounds netconfd.
  servers="bridge netconfd"
  [ $((round % 2)) = 0 ] && servers="netconfd bridge"
  for client in go paramiko; do
    for server in $servers; do
      measure "$client" "$server" seq
      measure "$client" "$server" par
    done
  done
done

# --- the table ------------------------------------------------------------
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo
echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}; $(uname -sr); $("$GO" env GOVERSION)"
echo "netconfd $(dpkg-query -W -f='${Version}' netconfd 2>/dev/null || echo '?'), $("$SSHD" -V 2>&1 | head -1 | cut -d, -f1)," \
  "paramiko $("$PY" -c 'import paramiko; print(paramiko.__version__)'), myno $myno_version"
echo "Load average (1, 5, 15 min) before the runs: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Runs: SESSIONS=$SESSIONS DURATION=$DURATION SEQ_DURATION=$SEQ_DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP DEVICES=$DEVICES PY_PROCS=$PY_PROCS"
echo
"$PY" - "$results" "$SESSIONS" <<'EOF'
import json, statistics, sys
path, sessions = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(path):
    r = json.loads(line)
    mode = "seq" if r["sessions"] == 1 else "par"
    runs.setdefault((r["server"], r["tool"], mode), []).append(r)

def med(server, tool, mode, key):
    rs = runs.get((server, tool, mode))
    if not rs:
        return None
    return statistics.median(r[key] for r in rs)

def us(v):
    if v is None:
        return "—"
    return "%.0f µs" % v if v < 1000 else "%.2f ms" % (v / 1000)

def num(v):
    return "—" if v is None else "{:,.0f}".format(v)

tools = [("go", "Go (x/crypto/ssh)"), ("paramiko", "paramiko")]
servers = [("myno bridge", "myno bridge"), ("netconfd", "netconfd (sshd)")]
print("| server | client | p50, 1 session | rpc/s, %d sessions | p99, %d sessions | p50, %d sessions | server CPU per rpc, %d sessions |" % ((sessions,) * 4))
print("|---|---|---|---|---|---|---|")
for tool, tname in tools:
    for server, sname in servers:
        print("| %s | %s | %s | %s | %s | %s | %s |" % (sname, tname,
              us(med(server, tool, "seq", "p50_us")), num(med(server, tool, "par", "rps")),
              us(med(server, tool, "par", "p99_us")), us(med(server, tool, "par", "p50_us")),
              us(med(server, tool, "par", "server_cpu_us_per_rpc"))))
    def ratio(mode, key, better_low):
        b, n = med("myno bridge", tool, mode, key), med("netconfd", tool, mode, key)
        if not b or not n:
            return "—"
        r = b / n
        ok = r < 1 if better_low else r > 1
        return "%.2f %s" % (r, "✓" if ok else "✗")
    print("| **bridge/netconfd** | %s | %s | %s | %s | %s | %s |" % (tname,
          ratio("seq", "p50_us", True), ratio("par", "rps", False),
          ratio("par", "p99_us", True), ratio("par", "p50_us", True),
          ratio("par", "server_cpu_us_per_rpc", True)))
errors = sum(r["errors"] for rs in runs.values() for r in rs)
print()
print("Ratios: latency below 1 and rpc/s above 1 mean the bridge is ahead (✓). "
      "Issue 17's target: ✓ for p50 (1 session) and rpc/s with both clients: %s."
      % ("met" if all(
          (med("myno bridge", t, "seq", "p50_us") or 1e18) < (med("netconfd", t, "seq", "p50_us") or 0)
          and (med("myno bridge", t, "par", "rps") or 0) > (med("netconfd", t, "par", "rps") or 1e18)
          for t, _ in tools) else "not met"))
print("rpc errors in all runs: %d" % errors)
EOF
echo
echo "JSON lines:"
cat "$results"
[ -n "${RESULTS:-}" ] && cp "$results" "$RESULTS"
if [ $failed -ne 0 ]; then
  say "some runs failed (see above)"
  exit 1
fi
