"""A NETCONF client written like MYNO's Update Server and web client
(ncclient, ElementTree), for `myno bridge --profile myno` (issue 13).

It reads <get> as they do (children whose tag contains "data", then
"device", with {NS}device-id/{NS}uuid and {NS}device-category), fetches every
module with get-schema and an empty identifier and splits the text on
"module", checks that each device namespace is a module's namespace, and
sends unqualified rpcs whose first child is <uuidInput>, reading the answer
as ./data/retval. Arguments: host port user password uuid rpc [rpc ...].
It prints one line per finding; the Go test checks them.
"""
import sys
import xml.etree.ElementTree as ET

from ncclient import manager
from ncclient.xml_ import to_ele

host, port, user, password, uuid = sys.argv[1:6]
rpcs = sys.argv[6:]

m = manager.connect(host=host, port=int(port), username=user, password=password,
                    hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)

# <get>, as interpret_get.py reads it.
root = ET.fromstring(m.get().xml)
devices = {}
for data in root:
    if "data" not in data.tag:
        continue
    for dev in data:
        if "device" not in dev.tag or not dev.tag.startswith("{"):
            continue
        ns = dev.tag[1:].split("}")[0]
        u = dev.find("{%s}device-id/{%s}uuid" % (ns, ns))
        cat = dev.find("{%s}device-category" % ns)
        if u is not None and cat is not None:
            devices[u.text] = (ns, cat.text)
print("get: %d devices" % len(devices))
ns, category = devices[uuid]
print("device %s: category %s namespace %s" % (uuid, category, ns))

# get-schema with an empty identifier: every module, split on "module".
reply = m.dispatch(to_ele(
    '<ncm:get-schema xmlns:ncm="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
    '<ncm:identifier></ncm:identifier></ncm:get-schema>'))
text = ""
for child in ET.fromstring(reply.xml):
    if "data" in child.tag:
        text = child.text or ""
modules = [p for p in text.split("module ") if p.strip()]
print("schema: %d modules" % len(modules))
if any(('namespace "%s";' % ns) in p for p in modules):
    print("namespace of %s is a module's namespace" % uuid)
if any('default "' in p for p in modules):
    print("an rpc carries its input topic as default")

# Unqualified rpcs; the answer read as ./data/retval.
for rpc in rpcs:
    reply = m.dispatch(to_ele("<%s><uuidInput>%s</uuidInput></%s>" % (rpc, uuid, rpc)))
    retval = ET.fromstring(reply.xml).find("./data/retval")
    print("%s: %s" % (rpc, "NONE" if retval is None else retval.text))
m.close_session()
