#!/usr/bin/env bash
# make bench-external: every measurement from outside the bridge (issue 17),
# one after another on an otherwise idle machine, with the anchors in the
# same run, and the tables they print written to one Markdown file:
#   1. run.sh: NETCONF, the bridge against yuma123's netconfd (Go and
#      paramiko clients), with no devices;
#   2. run.sh again with DEVICES=10000 registered: the one-leaf filtered
#      <get> must cost what it costs with none (within 20 %);
#   3. firmware.sh: `myno update` against the broker's raw-publish ceiling
#      and round trip, on the embedded broker and on Mosquitto;
#   4. scale.sh: 10,000 devices of 3 shapes on each broker;
#   5. cluster.sh: a 3-instance cluster's lag at 2,000 devices (etcd).
# About 20 minutes on 2 cores. docs/benchmarks.md quotes these tables, with
# the commit and the machine they name.
#
#   OUT=docs/bench/external/RESULTS.md   where the tables go
#   SCALE_DEVICES=10000                  devices of steps 2 and 4
#   STEPS="netconf netconf-devices firmware scale cluster"   which to run
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="${OUT:-docs/bench/external/RESULTS.md}"
SCALE_DEVICES="${SCALE_DEVICES:-10000}"
STEPS="${STEPS:-netconf netconf-devices firmware scale cluster}"
say() { echo "bench-external: $*" >&2; }

tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.step"' EXIT
{
  echo "# Measured from outside the bridge (make bench-external)"
  echo
  echo "Written by \`docs/bench/external/all.sh\` on $(date -u +%Y-%m-%d) at commit" \
    "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!'"$OUT" || echo ' (with uncommitted changes)'):" \
    "every party is its own process on loopback. Machine: $(nproc) cores," \
    "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -sr)."
  echo "What each table measures, and the knobs: the scripts' headers in docs/bench/external/."
} >"$tmp"

# step TITLE COMMAND...: runs COMMAND, keeps its stdout's tables and
# summary lines (not the JSON lines) under TITLE.
step() {
  local title="$1"; shift
  say "$title"
  "$@" >"$tmp.step"
  { echo; echo "## $title"; echo; sed -e '/^JSON lines:$/,$d' -e '/^{/d' "$tmp.step"; } >>"$tmp"
}

for s in $STEPS; do
  case "$s" in
    netconf) step "NETCONF against netconfd, no devices (run.sh)" docs/bench/external/run.sh ;;
    netconf-devices) step "NETCONF against netconfd, $SCALE_DEVICES devices registered (run.sh, DEVICES=$SCALE_DEVICES)" \
      env DEVICES="$SCALE_DEVICES" docs/bench/external/run.sh ;;
    firmware) step "Firmware updates against the broker's floors (firmware.sh)" docs/bench/external/firmware.sh ;;
    scale) step "$SCALE_DEVICES devices of 3 shapes (scale.sh)" env DEVICES="$SCALE_DEVICES" docs/bench/external/scale.sh ;;
    cluster) step "A cluster's lag: 3 instances, 2,000 devices, a 3-member etcd (cluster.sh)" docs/bench/external/cluster.sh ;;
    *) say "unknown step $s"; exit 2 ;;
  esac
done
mv "$tmp" "$OUT"
say "tables written to $OUT"
