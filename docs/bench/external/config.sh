#!/usr/bin/env bash
# The configuration datastore (issue 20) measured from outside the bridge,
# with yuma123's netconfd as the anchor in the same run.
#
# Every party is its own process, over loopback:
#   - `myno bridge` (built here) on its embedded broker, and a fleet of
#     DEVICES thermostats (`myno device --count`), each configured through
#     its setThreshold operation;
#   - the anchor: Debian's netconfd behind OpenSSH's sshd, holding the same
#     configuration shape (config/bench-thermo.yang) with no devices
#     behind it: what a datastore alone costs;
#   - the clients: config/config_bench.py, ncclient (Debian's
#     python3-ncclient, the library Ansible's netconf modules use), for
#     one edit-config filling running with an entry per device (the
#     bridge calls every device); ncbench/ (Go), for EDITS sequential
#     edit-configs of one device's threshold, a new value each time
#     (ncclient sends a request only on its 0.1 s poll tick, which would
#     hide both servers' own time).
# Measured: the fill, the edits' p50 and p99, and, for the bridge, the
# time from the fleet's restart (SIGKILL, then started again) until every
# device was told its configuration again, read from
# myno_configuration_calls_total.
#
# Usage: make bench-config, or docs/bench/external/config.sh, with
#   DEVICES=1000   thermostats
#   EDITS=200      single-device edits per server
#   KEEP=1         keep the temp dir (logs)
# Needs (installs nothing): go, Debian's netconfd, openssh-server,
# openssh-client (ssh-keygen) and python3-ncclient (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../../.."
# shellcheck source=docs/bench/external/lib.sh
. docs/bench/external/lib.sh

DEVICES="${DEVICES:-1000}"
EDITS="${EDITS:-200}"
GO="${GO:-go}"
PY="${PYTHON:-/usr/bin/python3}"
NETCONFD="${NETCONFD:-/usr/sbin/netconfd}"
SUBSYSTEM="${NETCONF_SUBSYSTEM:-/usr/sbin/netconf-subsystem}"
SSHD="${SSHD:-/usr/sbin/sshd}"
bench_py=docs/bench/external/config/config_bench.py

say() { echo "bench-config: $*" >&2; }
unset_myno_env

need_netconfd_tools ncclient python3-ncclient

make_work bench-config "logs"
read -r nc_port ssh_port mqtt_port http_port <<<"$(free_ports 4)"
admin_pw="bench-config-$RANDOM$RANDOM"
say "building myno in $work"
"$GO" build -o "$work/myno" ./cmd/myno
"$GO" build -o "$work/ncbench" ./docs/bench/external/ncbench
myno_version="$(git describe --always --dirty 2>/dev/null || echo '?')"
ns="$("$work/myno" yang testdata/descriptions/thermostat.jsonld | sed -n 's/^ *namespace "\(.*\)";/\1/p' | head -1)"
metric() { http_get "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

say "starting myno bridge on 127.0.0.1:$nc_port"
MYNO_ADMIN_PASSWORD="$admin_pw" "$work/myno" bridge --netconf-listen "127.0.0.1:$nc_port" --mqtt-listen "127.0.0.1:$mqtt_port" \
  --http-listen "127.0.0.1:$http_port" --data-dir "$work/bridge" --enrol open --log-level warn </dev/null >"$work/bridge.log" 2>&1 &
bridge_pid=$!
pids+=($bridge_pid)
for i in $(seq 1 150); do
  [ "$(http_get "http://127.0.0.1:$http_port/readyz")" = ready ] && break
  [ "$i" = 150 ] && { say "the bridge is not ready:"; cat "$work/bridge.log" >&2; exit 1; }
  sleep 0.2
done
device_token="bench-config-device-token-$RANDOM$RANDOM"
start_fleet() {
  MYNO_MQTT_PASSWORD="$device_token" "$work/myno" device --count "$DEVICES" --description testdata/descriptions/thermostat.jsonld \
    --mqtt-url "mqtt://127.0.0.1:$mqtt_port" --uuid bench-th --log-level warn </dev/null >>"$work/devices.log" 2>&1 &
  fleet_pid=$!
  pids+=($fleet_pid)
}
# wait_metric NAME AT-LEAST SECONDS WHAT
wait_metric() {
  local deadline=$((SECONDS + $3)) n
  while :; do
    n="$(metric "$1")"
    [ "${n:-0}" -ge "$2" ] 2>/dev/null && return 0
    if [ $SECONDS -ge $deadline ]; then
      say "$4: $1 is ${n:-0}, not $2"; tail -20 "$work/devices.log" "$work/bridge.log" >&2; exit 1
    fi
    sleep 0.1
  done
}
say "starting $DEVICES thermostats"
start_fleet
wait_metric myno_devices_online "$DEVICES" $((60 + DEVICES / 20)) "the fleet did not come online"
"$PY" "$bench_py" uuids --addr "127.0.0.1:$nc_port" --user admin --password "$admin_pw" --ns "$ns" >"$work/uuids"
[ "$(wc -l <"$work/uuids")" -ge "$DEVICES" ] || { say "the bridge lists $(wc -l <"$work/uuids") devices"; exit 1; }

# edits SERVER NS NCBENCH-ARGS...: EDITS edit-configs of the first device's
# threshold, one at a time; the JSON line of ncbench.
edits() {
  local server="$1" ns="$2"; shift 2
  local first; first="$(head -1 "$work/uuids")"
  "$work/ncbench" "$@" -server "$server" -sessions 1 -rpcs "$EDITS" -warmup 5 -expect '<ok/>' \
    -rpc "<edit-config><target><running/></target><config><configuration xmlns=\"$ns\"><device><uuid>$first</uuid><setThreshold><input_2_Threshold>{n}</input_2_Threshold></setThreshold></device></configuration></config></edit-config>"
}
say "measuring the bridge"
bridge_line="$("$PY" "$bench_py" fill --server "myno bridge" --addr "127.0.0.1:$nc_port" --user admin --password "$admin_pw" \
  --ns "$ns" --uuids "$work/uuids")"
bridge_edits="$(edits "myno bridge" "$ns" -addr "127.0.0.1:$nc_port" -user admin -password "$admin_pw")"
say "$bridge_line"; say "$bridge_edits"

say "killing the fleet (SIGKILL) and starting it again"
kill -KILL "$fleet_pid"
wait "$fleet_pid" 2>/dev/null || true
deadline=$((SECONDS + 120))
until [ "$(metric myno_devices_online)" = 0 ]; do
  [ $SECONDS -ge $deadline ] && { say "the killed fleet is still online"; exit 1; }
  sleep 0.2
done
before="$(metric 'myno_configuration_calls_total{cause="reconcile",result="applied"}')"
before="${before:-0}"
t0="$(now_ns)"
start_fleet
wait_metric 'myno_configuration_calls_total{cause="reconcile",result="applied"}' $((before + DEVICES)) $((120 + DEVICES / 10)) \
  "the restarted fleet was not configured again"
t1="$(now_ns)"
reconcile_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')"
failed_calls="$(metric 'myno_configuration_calls_total{cause="reconcile",result="failed"}')"
say "every thermostat configured again ${reconcile_s}s after the fleet started (failed calls: ${failed_calls:-0})"

start_netconfd "$ssh_port" --module="$PWD/docs/bench/external/config/bench-thermo.yang" --target=running
say "measuring netconfd"
netconfd_line="$("$PY" "$bench_py" fill --server netconfd --addr "127.0.0.1:$ssh_port" --user "$user" --key "$work/ssh/client_key" \
  --ns urn:myno:bench:thermo --uuids "$work/uuids")"
netconfd_edits="$(edits netconfd urn:myno:bench:thermo -addr "127.0.0.1:$ssh_port" -user "$user" -key "$work/ssh/client_key")"
say "$netconfd_line"; say "$netconfd_edits"

cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo
echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}; $(uname -sr); $("$GO" env GOVERSION); myno $myno_version;" \
  "netconfd $(dpkg-query -W -f='${Version}' netconfd 2>/dev/null || echo '?'); ncclient $("$PY" -c 'import ncclient; print(ncclient.__version__)' 2>/dev/null || echo '?')"
echo
"$PY" - "$bridge_line" "$netconfd_line" "$reconcile_s" "$bridge_edits" "$netconfd_edits" <<'PYEOF'
import json, sys
b, n, rec, be, ne = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
print("| server | devices | fill running (one edit-config, ncclient) | edit one device p50 (Go) | p99 |")
print("|---|---|---|---|---|")
for r, e, what in ((b, be, "myno bridge (calls each device)"), (n, ne, "netconfd (no devices)")):
    print("| %s | %d | %.2f s | %.2f ms | %.2f ms |" % (what, r["devices"], r["fill_s"], e["p50_us"] / 1000, e["p99_us"] / 1000))
print()
print("Fleet of %d killed and started again: every device told its configuration again %s s after the fleet started." % (b["devices"], rec))
PYEOF
