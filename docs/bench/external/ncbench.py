#!/usr/bin/python3
"""ncbench.py: a NETCONF server measured from outside with raw paramiko.

The paramiko half of docs/bench/external (make bench-external); the Go
half is ncbench/main.go, and both print the same JSON line. Each session
is its own SSH connection (paramiko.Transport) with the netconf
subsystem; it says hello with base:1.0 and base:1.1 and uses NETCONF 1.1
chunked framing when the server offers base:1.1, else 1.0 end-of-message
framing. Every session sends the same rpc back to back, one at a time,
waiting for each reply, for a duration or a number of rpcs. Sessions are
set up, one after another, before the clock starts.

Sessions run as threads of one process by default, as a Python client
(ncclient, a script) usually does; --procs P spreads them over P
processes, which the GIL otherwise keeps to one core.

Needs only Debian's python3-paramiko:

  /usr/bin/python3 docs/bench/external/ncbench.py --addr 127.0.0.1:8830 \\
      --user admin --password secret --sessions 16 --duration 10
"""

import argparse
import json
import math
import multiprocessing
import os
import re
import socket
import sys
import threading
import time

try:
    import paramiko
except ImportError:
    sys.exit("ncbench.py: paramiko is missing: apt-get install python3-paramiko")

DEFAULT_RPC = (
    '<get><filter type="subtree">'
    '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
    "<schemas><schema><identifier>ietf-netconf-monitoring</identifier><version/>"
    "</schema></schemas></netconf-state></filter></get>"
)
BASE10 = "urn:ietf:params:netconf:base:1.0"
BASE11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"


class TransportError(Exception):
    """The session cannot go on."""


class Session:
    def __init__(self, args):
        self.args = args
        host, port = args.addr.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=args.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = paramiko.Transport(sock)
        self.transport.start_client(timeout=args.timeout)
        # A benchmark on loopback against servers the harness started with
        # fresh host keys: there is nothing to check the key against.
        authenticated = False
        if args.key:
            key = load_key(args.key)
            self.transport.auth_publickey(args.user, key)
            authenticated = self.transport.is_authenticated()
        if not authenticated:
            if not args.password:
                raise SystemExit("ncbench.py: give --password (or $NCBENCH_PASSWORD) or --key")
            self.transport.auth_password(args.user, args.password)
        self.chan = self.transport.open_session(timeout=args.timeout)
        self.chan.settimeout(args.timeout)
        self.chan.invoke_subsystem("netconf")
        self.buf = bytearray()
        self.id = 0
        self.latencies = []
        self.errors = 0
        self.first_error = None
        self.hello()

    def hello(self):
        server = self.read_eom()
        offers11 = (">" + BASE11 + "<").encode() in server
        caps = "<capability>" + BASE10 + "</capability>"
        framing = self.args.framing
        if framing == "auto":
            caps += "<capability>" + BASE11 + "</capability>"
            self.chunked = offers11
        elif framing == "1.1":
            if not offers11:
                raise SystemExit("ncbench.py: --framing 1.1: the server does not offer base:1.1")
            caps = "<capability>" + BASE11 + "</capability>"
            self.chunked = True
        else:
            self.chunked = False
        self.framing = "1.1" if self.chunked else "1.0"
        msg = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
            + caps
            + "</capabilities></hello>"
        )
        self.chan.sendall(msg.encode() + EOM)
        # netconfd 2.13 fails a session whose first chunked rpc arrives in
        # the same read as the client's hello.
        time.sleep(self.args.hello_pause)

    def fill(self):
        try:
            data = self.chan.recv(65536)
        except socket.timeout:
            raise TransportError("no reply within %ss" % self.args.timeout)
        if not data:
            raise TransportError("EOF")
        self.buf += data

    def read_eom(self):
        start = 0
        while True:
            i = self.buf.find(EOM, start)
            if i >= 0:
                msg = bytes(self.buf[:i])
                del self.buf[: i + len(EOM)]
                return msg
            start = max(0, len(self.buf) - len(EOM) + 1)
            self.fill()

    def read_chunked(self):
        parts = []
        buf = self.buf
        while True:
            # A chunk header: \n#<size>\n, or the end of message: \n##\n.
            while True:
                nl = buf.find(b"\n", 2)
                if len(buf) >= 2 and nl > 0:
                    break
                self.fill()
                buf = self.buf
            if buf[0:2] != b"\n#":
                raise TransportError("bad chunk header %r" % bytes(buf[:20]))
            size = bytes(buf[2:nl])
            if size == b"#":
                del buf[: nl + 1]
                return b"".join(parts)
            n = int(size)
            while len(buf) < nl + 1 + n:
                self.fill()
                buf = self.buf
            parts.append(bytes(buf[nl + 1 : nl + 1 + n]))
            del buf[: nl + 1 + n]

    def frame(self, rpc):
        data = rpc.encode()
        if self.chunked:
            return b"\n#%d\n" % len(data) + data + b"\n##\n"
        return data + EOM

    def call(self, body, expect):
        """One rpc; returns its latency in nanoseconds."""
        self.id += 1
        mid = str(self.id)
        out = self.frame(
            '<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="'
            + mid + '">' + body + "</rpc>"
        )
        start = time.perf_counter_ns()
        try:
            self.chan.sendall(out)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise TransportError(str(e))
        reply = self.read_chunked() if self.chunked else self.read_eom()
        elapsed = time.perf_counter_ns() - start
        if ('message-id="' + mid + '"').encode() not in reply:
            raise TransportError("reply without message-id %s: %.300r" % (mid, reply))
        if b"rpc-error>" in reply:
            raise RuntimeError("rpc-error: %.500r" % reply)
        if not expect.search(reply):
            raise RuntimeError("reply without a non-empty %s: %.500r" % (self.args.expect, reply))
        return elapsed

    def close(self):
        if self.first_error is None:
            try:
                self.chan.settimeout(2)
                self.call("<close-session/>", re.compile(b"ok"))
            except Exception:
                pass
        self.transport.close()


def load_key(path):
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(path)
        except paramiko.SSHException:
            continue
    raise SystemExit("ncbench.py: cannot read the key %s" % path)


def tree_ticks(roots):
    """CPU time (user and system, own and reaped children's) of the
    processes roots and all their descendants, in clock ticks. Counting
    the reaped children's too keeps a process that ends between two calls
    counted once: first on its own, then in its parent's."""
    if not roots:
        return 0
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue  # gone
        fields = data[data.rindex(")") + 2:].split()
        procs[int(name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    inside = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if pid not in inside and ppid in inside:
                inside.add(pid)
                changed = True
    return sum(procs[pid][1] for pid in inside if pid in procs)


def percentile(sorted_ns, p):
    if not sorted_ns:
        return 0
    rank = max(0, min(math.ceil(p / 100 * len(sorted_ns)) - 1, len(sorted_ns) - 1))
    return round(sorted_ns[rank] / 1e3, 1)


def expect_pattern(args):
    """<version>x or <p:version>x: the element, with text in it."""
    tag = re.escape(args.expect.rstrip(">"))
    return re.compile(rb"<(?:[\w.-]+:)?" + tag.encode() + rb"(?:\s[^>]*)?>[^<]")


def open_sessions(args, n):
    """Sets up n sessions, one after another, and warms them up."""
    expect = expect_pattern(args)
    sessions = [Session(args) for _ in range(n)]
    for s in sessions:
        for _ in range(args.warmup):
            s.call(args.rpc, expect)
    return sessions


def run_sessions(args, sessions, t0):
    """Runs the sessions, one thread each, from time.time() t0 for
    --duration seconds or --rpcs rpcs; returns (latencies, errors, end)."""
    expect = expect_pattern(args)
    stop = threading.Event()

    def loop(s):
        n = 0
        while not (args.rpcs and n >= args.rpcs or not args.rpcs and stop.is_set()):
            n += 1
            try:
                s.latencies.append(s.call(args.rpc, expect))
            except TransportError as e:
                s.errors += 1
                s.first_error = s.first_error or e
                return
            except RuntimeError as e:
                s.errors += 1
                s.first_error = s.first_error or e

    while time.time() < t0:
        time.sleep(0.0005)
    cpu = -tree_ticks(args.cpu_pids)
    threads = [threading.Thread(target=loop, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    if not args.rpcs:
        time.sleep(max(0, t0 + args.duration - time.time()))
        stop.set()
    for t in threads:
        t.join()
    end = time.time()
    cpu += tree_ticks(args.cpu_pids)
    latencies, errors = [], 0
    for s in sessions:
        latencies += s.latencies
        errors += s.errors
        if s.first_error is not None:
            print("ncbench.py: first error of a session:", s.first_error, file=sys.stderr)
        s.close()
    return latencies, errors, end, cpu


def measure(args):
    """All sessions as threads of this process."""
    sessions = open_sessions(args, args.sessions)
    t0 = time.time()
    latencies, errors, end, cpu = run_sessions(args, sessions, t0)
    return latencies, errors, end - t0, sessions[0].framing, cpu


def worker(args, nsessions, ready, start_at, results):
    """One of --procs processes: sets up its sessions, waits for the common
    start, measures, and hands its latencies back."""
    try:
        sessions = open_sessions(args, nsessions)
    except Exception as e:  # reported by the parent
        ready.put(repr(e))
        return
    ready.put(None)
    t0 = start_at.get()
    if not t0:
        return
    latencies, errors, end, _ = run_sessions(args, sessions, t0)
    results.put((latencies, errors, end, sessions[0].framing))


def measure_procs(args):
    ctx = multiprocessing.get_context("fork")
    ready, start_at, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    shares = [args.sessions // args.procs + (1 if i < args.sessions % args.procs else 0) for i in range(args.procs)]
    shares = [n for n in shares if n]
    procs, failures = [], []
    for n in shares:
        # One process at a time: sessions are set up one after another.
        p = ctx.Process(target=worker, args=(args, n, ready, start_at, results))
        p.start()
        procs.append(p)
        err = ready.get()
        if err:
            failures.append(err)
            break
    if failures:
        for _ in procs:
            start_at.put(0)
        for p in procs:
            p.join()
        raise SystemExit("ncbench.py: " + failures[0])
    t0 = time.time() + 0.2
    for _ in procs:
        start_at.put(t0)
    while time.time() < t0:
        time.sleep(0.0005)
    cpu = -tree_ticks(args.cpu_pids)
    latencies, errors, end, framing = [], 0, t0, "?"
    for _ in procs:
        lat, errs, e, framing = results.get()
        latencies += lat
        errors += errs
        end = max(end, e)
    cpu += tree_ticks(args.cpu_pids)
    for p in procs:
        p.join()
    return latencies, errors, end - t0, framing, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--addr", default="127.0.0.1:8830", help="NETCONF over SSH server host:port")
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default=os.environ.get("NCBENCH_PASSWORD", ""),
                    help="SSH password (default $NCBENCH_PASSWORD)")
    ap.add_argument("--key", default="", help="SSH private key file (instead of, or besides, the password)")
    ap.add_argument("--server", default="", help="label of the server in the JSON line (default: --addr)")
    ap.add_argument("--tool", default="paramiko", help="label of the client in the JSON line")
    ap.add_argument("--sessions", type=int, default=16, help="sessions in parallel, each its own SSH connection")
    ap.add_argument("--duration", type=float, default=10, help="seconds to measure (when --rpcs is 0)")
    ap.add_argument("--rpcs", type=int, default=0, help="rpcs per session instead of --duration")
    ap.add_argument("--warmup", type=int, default=20, help="rpcs per session before the clock starts")
    ap.add_argument("--timeout", type=float, default=10, help="SSH setup timeout, and longest wait for a reply")
    ap.add_argument("--rpc", default=DEFAULT_RPC, help="the rpc's content (inside <rpc>)")
    ap.add_argument("--expect", default="version>", help="a reply must have this element, with text (and no <rpc-error>)")
    ap.add_argument("--framing", choices=["auto", "1.0", "1.1"], default="auto")
    ap.add_argument("--hello-pause", type=float, default=0.05,
                    help="seconds to pause after our hello (netconfd 2.13 fails a session whose first chunked rpc arrives with it)")
    ap.add_argument("--procs", type=int, default=1, help="processes to spread the sessions over (default 1: threads)")
    ap.add_argument("--cpu-pids", default="",
                    help="comma-separated server pids: report the CPU time they and their descendants spend "
                    "while the clock runs, per rpc (Linux /proc)")
    ap.add_argument("--sequential", action="store_true", help="one session, sequential: the same as --sessions 1")
    args = ap.parse_args()
    if args.sequential:
        args.sessions = 1
    if args.sessions < 1 or args.procs < 1:
        ap.error("--sessions and --procs must be at least 1")
    args.cpu_pids = [int(p) for p in re.split(r"[,\s]+", args.cpu_pids) if p]
    if args.procs > 1:
        latencies, errors, seconds, framing, cpu = measure_procs(args)
    else:
        latencies, errors, seconds, framing, cpu = measure(args)
    latencies.sort()
    res = {
        "tool": args.tool,
        "server": args.server or args.addr,
        "sessions": args.sessions,
        "rpcs": len(latencies),
        "errors": errors,
        "seconds": round(seconds, 3),
        "rps": round(len(latencies) / seconds, 1) if seconds > 0 else 0,
        "p50_us": percentile(latencies, 50),
        "p90_us": percentile(latencies, 90),
        "p99_us": percentile(latencies, 99),
        "framing": framing,
    }
    if args.cpu_pids and latencies:
        res["server_cpu_us_per_rpc"] = round(cpu / os.sysconf("SC_CLK_TCK") * 1e6 / len(latencies), 1)
    if args.procs > 1:
        res["procs"] = args.procs
    print(json.dumps(res))
    sys.exit(2 if errors else 0)


if __name__ == "__main__":
    main()
