"""ncclient configures a thermostat through the bridge (issue 20).

Usage: ncclient_config.py HOST PORT USER PASSWORD NS UUID
edit-config on the candidate, commit, a confirmed commit left to time out
(rolled back), one confirmed in time, an invalid value, discard-changes
under a lock. Prints one line per check; bridge/configuration_test.go
reads them.
"""
import sys
import time

from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

host, port, user, password, ns, uuid = sys.argv[1:7]


def config(threshold):
    return ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><configuration xmlns="%s"><device><uuid>%s</uuid>'
            '<setThreshold><input_1_Operator>gt</input_1_Operator><input_2_Threshold>%s</input_2_Threshold></setThreshold>'
            '</device></configuration></config>' % (ns, uuid, threshold))


def running(m):
    r = m.get_config(source="running", filter=("subtree", '<configuration xmlns="%s"/>' % ns))
    found = to_ele(r.xml).xpath("//*[local-name()='input_2_Threshold']")
    return found[0].text if found else None


with manager.connect(host=host, port=int(port), username=user, password=password,
                     hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=20) as m:
    print("candidate:", ":candidate" in m.server_capabilities, "confirmed-commit:", ":confirmed-commit:1.1" in m.server_capabilities)
    m.edit_config(target="candidate", config=config(10))
    print("before commit:", running(m))
    m.commit()
    print("committed:", running(m))

    m.edit_config(target="candidate", config=config(50))
    m.commit(confirmed=True, timeout="2")
    print("confirmed commit:", running(m))
    deadline = time.time() + 30
    while running(m) != "10" and time.time() < deadline:
        time.sleep(0.2)
    print("after its timeout:", running(m))

    m.edit_config(target="candidate", config=config(60))
    m.commit(confirmed=True, timeout="60")
    m.commit()
    print("confirmed in time:", running(m))

    try:
        m.edit_config(target="running", config=config(126))
        print("126: accepted")
    except RPCError as e:
        print("126:", e.tag, e.path)

    with m.locked("candidate"):
        m.edit_config(target="candidate", config=config(70))
        m.discard_changes()
    r = m.get_config(source="candidate", filter=("subtree", '<configuration xmlns="%s"/>' % ns))
    print("candidate after discard:", to_ele(r.xml).xpath("//*[local-name()='input_2_Threshold']")[0].text)
