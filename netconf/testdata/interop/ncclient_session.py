"""One ncclient session against the test server; prints one JSON object.

Usage: ncclient_session.py HOST PORT USER PASSWORD
The Go test (netconf/interop_test.go) runs it with /usr/bin/python3 and
checks every field. Base:1.1 with chunked framing is ncclient's default.
"""
import json
import sys

from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
with manager.connect(host=host, port=port, username=user, password=password,
                     hostkey_verify=False, look_for_keys=False, allow_agent=False,
                     timeout=20) as m:
    out["session_id"] = m.session_id
    out["capabilities"] = sorted(m.server_capabilities)
    out["base11"] = ":base:1.1" in m.server_capabilities
    r = m.get(filter=("subtree", '<demo-state xmlns="urn:myno:test:demo"><greeting/></demo-state>'))
    out["get"] = r.data_xml
    out["get_schema"] = m.get_schema("myno-demo").data
    r = m.dispatch(to_ele('<echo xmlns="urn:myno:test:demo"><msg>from ncclient</msg></echo>'))
    out["dispatch"] = r.xml
    try:
        m.dispatch(to_ele('<fail xmlns="urn:myno:test:demo"/>'))
        out["fail"] = "no error"
    except RPCError as e:
        out["fail"] = {"tag": e.tag, "type": e.type, "message": e.message, "app_tag": getattr(e, "app_tag", None)}
    # NMDA get-data with an XPath filter (ncclient 0.6.13 has no get_data:
    # dispatched as the RFC 8526 rpc).
    r = m.dispatch(to_ele(
        '<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" '
        'xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
        '<datastore>ds:operational</datastore>'
        '<xpath-filter xmlns:d="urn:myno:test:demo">/d:demo-state/d:item[d:value=2]/d:name</xpath-filter>'
        '</get-data>'))
    out["get_data"] = r.xml
    m.create_subscription()
    m.dispatch(to_ele('<emit xmlns="urn:myno:test:demo"><n>42</n></emit>'))
    n = m.take_notification(block=True, timeout=20)
    out["notification"] = n.notification_xml if n is not None else None
# A filtered subscription, as ncclient sends it (<filter> in the base
# namespace): only the tick it selects arrives.
with manager.connect(host=host, port=port, username=user, password=password,
                     hostkey_verify=False, look_for_keys=False, allow_agent=False,
                     timeout=20) as m:
    m.create_subscription(filter=("subtree", '<tick xmlns="urn:myno:test:demo"><n>2</n></tick>'))
    for n in ("1", "2", "3"):
        m.dispatch(to_ele('<emit xmlns="urn:myno:test:demo"><n>%s</n></emit>' % n))
    n = m.take_notification(block=True, timeout=20)
    out["filtered_notification"] = n.notification_xml if n is not None else None
    n = m.take_notification(block=True, timeout=1)
    out["filtered_more"] = n.notification_xml if n is not None else None
print(json.dumps(out))
