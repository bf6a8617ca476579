"""The configuration datastore measured from outside (docs/bench/external/config.sh).

ncclient (Debian's python3-ncclient) against a NETCONF server:
  uuids  print the uuids of the devices the bridge lists (one per line);
  fill   fill running with one setThreshold entry per uuid in one
         edit-config; print one JSON line: devices, fill_s.
The namespace is the server's: the bridge's thermostat module, or
bench-thermo on netconfd.
"""
import argparse
import json
import sys
import time

from ncclient import manager
from ncclient.xml_ import to_ele

p = argparse.ArgumentParser()
p.add_argument("mode", choices=["uuids", "fill"])
p.add_argument("--addr", required=True)
p.add_argument("--user", required=True)
p.add_argument("--password")
p.add_argument("--key")
p.add_argument("--ns", required=True)
p.add_argument("--uuids", help="file of uuids, one per line (fill)")
p.add_argument("--server", default="?")
a = p.parse_args()
host, port = a.addr.rsplit(":", 1)
kw = dict(host=host, port=int(port), username=a.user, hostkey_verify=False, allow_agent=False, timeout=600)
if a.key:
    kw.update(key_filename=a.key, look_for_keys=False)
else:
    kw.update(password=a.password, look_for_keys=False)


def entry(uuid, threshold):
    return ('<device><uuid>%s</uuid><setThreshold><input_1_Operator>gt</input_1_Operator>'
            '<input_2_Threshold>%d</input_2_Threshold></setThreshold></device>' % (uuid, threshold))


def config(entries):
    return ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><configuration xmlns="%s">%s</configuration></config>'
            % (a.ns, "".join(entries)))


with manager.connect(**kw) as m:
    if a.mode == "uuids":
        r = m.get(filter=("subtree", '<devices xmlns="%s"><device><uuid/></device></devices>' % a.ns))
        for e in to_ele(r.xml).xpath("//*[local-name()='uuid']"):
            print(e.text)
        sys.exit(0)
    uuids = [line.strip() for line in open(a.uuids) if line.strip()]
    start = time.perf_counter()
    m.edit_config(target="running", config=config(entry(u, 20) for u in uuids))
    fill = time.perf_counter() - start
    print(json.dumps({"server": a.server, "devices": len(uuids), "fill_s": round(fill, 3)}))
