"""ncclient against the bridge: device rpcs, an invalid value, get-schema, get.

Usage: ncclient_bridge.py HOST PORT USER PASSWORD LED_NS RGB_NS
Prints one line per check; bridge/lifecycle_test.go reads them.
"""
import sys

from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

host, port, user, password, led_ns, rgb_ns = sys.argv[1:7]
with manager.connect(host=host, port=int(port), username=user, password=password,
                     hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=20) as m:
    r = m.dispatch(to_ele('<setColor xmlns="%s"><uuidInput>led-nc</uuidInput><input_1_Color>blue</input_1_Color></setColor>' % led_ns))
    print("setColor:", to_ele(r.xml).xpath("//*[local-name()='retval']")[0].text)
    r = m.dispatch(to_ele('<setRgb xmlns="%s"><uuidInput>rgb-nc</uuidInput><input_1_Rgb><var_1_Red>1</var_1_Red>'
                          '<var_2_Green>2</var_2_Green><var_3_Blue>3</var_3_Blue></input_1_Rgb></setRgb>' % rgb_ns))
    print("setRgb:", to_ele(r.xml).xpath("//*[local-name()='retval']")[0].text)
    try:
        m.dispatch(to_ele('<setColor xmlns="%s"><uuidInput>led-nc</uuidInput><input_1_Color>purple</input_1_Color></setColor>' % led_ns))
        print("bad colour: accepted")
    except RPCError as e:
        print("bad colour:", e.tag)
    name = led_ns.split(":")[-1]
    print("schema:", m.get_schema(name).data.splitlines()[0])
    r = m.get(filter=("subtree", '<devices xmlns="%s"/>' % led_ns))
    print("get:", to_ele(r.xml).xpath("//*[local-name()='uuid']")[0].text)
