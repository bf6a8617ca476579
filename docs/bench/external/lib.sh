# shellcheck shell=bash
# The parts of docs/bench/external/run.sh, scale.sh, firmware.sh, cluster.sh and config.sh that
# are the same, sourced by each from the repository's root. Functions only: nothing runs
# on sourcing. They use the script's `say` and $PY (a python3).

# unset_myno_env: the bridge and the devices read MYNO_* variables
# (MYNO_MQTT_URL, MYNO_CONFIG, ...): none of the caller's may change what
# is measured.
unset_myno_env() {
  while read -r v; do unset "$v"; done < <(compgen -e | grep '^MYNO_' || true)
}

# make_work NAME WHAT: a temp dir /tmp/NAME.XXXXXX in $work and an empty
# pids array; on exit, the processes in pids are killed and reaped, and
# $work is removed, unless KEEP=1 or the script failed (then "WHAT kept in
# $work" is said).
make_work() {
  work="$(mktemp -d "/tmp/$1.XXXXXX")"
  work_kept="$2"
  pids=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
    say "$work_kept kept in $work"
  else
    rm -rf "$work"
  fi
}

# free_ports N: N distinct free loopback ports.
free_ports() {
  "$PY" - "$1" <<'PYEOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PYEOF
}
# http_get URL: the body, or nothing (and failure) within 2 s.
http_get() { "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1" 2>/dev/null; }

# now_ns: wall clock, Unix nanoseconds, without a fork.
now_ns() { local t="$EPOCHREALTIME"; echo "${t//[.,]/}000"; }

# wait_port PORT: true once something listens on 127.0.0.1:PORT, within 10 s.
wait_port() {
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_mosquitto PORT [LINE...]: Debian's Mosquitto ($MOSQUITTO) on
# 127.0.0.1:PORT, its files in $work/mosquitto, each LINE added to its
# configuration. Anonymous clients on loopback, for a benchmark: no ACL, no
# passwords (the bridge's export would add both), as internal/testenv's
# Mosquitto. Sets mq_pid and adds it to pids; fails, showing the log, if
# it does not listen within 10 s.
start_mosquitto() {
  local port="$1" line
  shift
  mkdir -p "$work/mosquitto"
  {
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence false"
    for line in "$@"; do echo "$line"; done
    echo "set_tcp_nodelay true"
    echo "log_dest file $work/mosquitto/mosquitto.log"
    [ "$(id -u)" = 0 ] && echo "user root"
  } >"$work/mosquitto/mosquitto.conf"
  "$MOSQUITTO" -c "$work/mosquitto/mosquitto.conf" </dev/null >>"$work/mosquitto/stderr.log" 2>&1 &
  mq_pid=$!
  pids+=("$mq_pid")
  wait_port "$port" || { say "mosquitto did not start:"; cat "$work/mosquitto/"*.log >&2; return 1; }
}

# need_netconfd_tools PYMODULE PACKAGE: fails, naming what is missing and
# the Debian packages to install, unless netconfd ($NETCONFD, $SUBSYSTEM),
# sshd ($SSHD), ssh-keygen, go ($GO) and $PY with PYMODULE (Debian's
# PACKAGE) are there. Installs nothing.
need_netconfd_tools() {
  local module="$1" package="$2" missing=()
  [ -x "$NETCONFD" ] && [ -x "$SUBSYSTEM" ] || missing+=("netconfd ($NETCONFD, $SUBSYSTEM)")
  [ -x "$SSHD" ] || missing+=("openssh-server ($SSHD)")
  command -v ssh-keygen >/dev/null || missing+=("openssh-client (ssh-keygen)")
  if ! [ -x "$PY" ]; then
    missing+=("python3 ($PY)")
  elif ! "$PY" -c "import $module" 2>/dev/null; then
    missing+=("$package (import $module in $PY)")
  fi
  command -v "$GO" >/dev/null || missing+=("go ($GO)")
  if [ ${#missing[@]} -gt 0 ]; then
    say "missing:"
    printf '  - %s\n' "${missing[@]}" >&2
    echo "Install the Debian packages: apt-get install netconfd openssh-server openssh-client $package" >&2
    exit 1
  fi
}

# start_netconfd PORT [NETCONFD-ARG...]: Debian's netconfd ($NETCONFD,
# $SUBSYSTEM) behind OpenSSH's sshd ($SSHD) on 127.0.0.1:PORT, the
# anchor of the NETCONF measurements, its files in $work/netconfd and
# $work/ssh. Sets user (the NETCONF user, who logs in with the key
# $work/ssh/client_key), sock, netconfd_pid and sshd_pid, and adds the
# pids to pids.
start_netconfd() {
local port="$1"; shift
local extra=("$@") i
# The NETCONF user logs in with a key. sshd runs each session's
# netconf-subsystem through the user's login shell, and bash then reads the
# user's ~/.bashrc (root's here runs `pyenv init`: over a second per
# session). So as root the harness uses a system user with /bin/sh and no
# home, ncbench, created (useradd) if missing; NC_USER overrides it. As
# another user, sshd runs as that user and only that user can log in.
if [ -n "${NC_USER:-}" ]; then
  user="$NC_USER"
elif [ "$(id -u)" = 0 ]; then
  user=ncbench
  if ! id "$user" >/dev/null 2>&1; then
    say "creating the system user $user (shell /bin/sh, no home) for netconfd's sessions"
    # Password "*": none, but not locked ("!"), which sshd without PAM refuses
    # even for keys.
    useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh --password '*' "$user"
  fi
else
  user="$(id -un)"
fi
mkdir -m 755 "$work/netconfd" "$work/ssh"
chmod 755 "$work"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/client_key"
cp "$work/ssh/client_key.pub" "$work/ssh/authorized_keys"
chmod 644 "$work/ssh/authorized_keys"
sock="$work/netconfd/ncxserver.sock"
cat >"$work/ssh/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
PidFile $work/ssh/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
AllowUsers $user
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The keys live under /tmp, which sshd's StrictModes refuses (world-writable).
StrictModes no
MaxStartups 64
LogLevel ERROR
Subsystem netconf "$SUBSYSTEM --ncxserver-sockname=$port@$sock"
EOF
# sshd started as root wants its privilege-separation directory, which
# Debian's service creates at boot; without systemd nobody has.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
  mkdir -p -m 0755 /run/sshd
fi
"$SSHD" -t -f "$work/ssh/sshd_config"
say "starting netconfd (superuser $user) and sshd on 127.0.0.1:$port"
# No --log FILE: with it, netconfd 2.13 failed sessions here ("IO failed
# on session"); its stderr goes to the file instead. stdin is /dev/null.
(cd "$work/netconfd" && exec env HOME="$work/netconfd" "$NETCONFD" --no-startup --superuser="$user" "${extra[@]}" \
  --log-level=error --port="$port" --ncxserver-sockname="$sock" \
  </dev/null >"$work/netconfd.log" 2>&1) &
netconfd_pid=$!
pids+=($netconfd_pid)
for i in $(seq 1 100); do
  [ -S "$sock" ] && break
  [ "$i" = 100 ] && { say "netconfd did not start:"; cat "$work/netconfd.log" >&2; exit 1; }
  sleep 0.1
done
"$SSHD" -D -e -f "$work/ssh/sshd_config" </dev/null >"$work/sshd.log" 2>&1 &
sshd_pid=$!
pids+=($sshd_pid)
}
