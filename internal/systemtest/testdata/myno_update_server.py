"""An Update Server that drives a MUP v1 update through the bridge exactly
as MYNO's Update Server does (myno-update-protocol/update-server, read
from its code; MUP-V1.md §1-§4, §8), for `myno bridge --profile myno`
(issue 14). Written for the tests; it shares no code with MYNO's.

NETCONF with ncclient, replies read with ElementTree:
  * before each step, <get> and get-schema with an empty identifier, as
    MYNO does before each page and POST: the device's namespace from
    <get>, its module (the one with funcGetDeviceToken,
    funcPubUpdateManifest and funcPubUpdateImage) from the schema text,
    the slice topic base from funcPubUpdateImage's `default`;
  * unqualified rpcs whose first child is <uuidInput>, at most one more
    leaf, the answer read as ./data/retval;
  * the manifest one field per rpc, `<i>,<value>` numbered by position
    of the sorted form fields, then the outer signature (index 8) and
    START-UPDATE (index 9) in leaf input_9_OuterSignature.
MQTT with paho-mqtt 1.6 (MQTT 3.1.1, QoS 0): the image in 600-byte slices
published directly on the slice topic, each waited for its `<i>,OK` on
the slice topic + "/response", resent every 5 s, given up after 60 s.

Arguments: host port user password uuid image vendor server-key
mqtt-host mqtt-port mqtt-user mqtt-password. The vendor file holds the
inner string and the inner signature, one a line; the server key is 64
hex digits (MYNO's raw P-256 key). One line per finding is printed; the Go
test judges them. The exit status is 0 when the flow ran, whatever the
device answered, and 1 on an exception.
"""
import argparse
import re
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from ncclient import manager
from ncclient.xml_ import to_ele

UPDATE_RPCS = ("funcGetDeviceToken", "funcPubUpdateManifest", "funcPubUpdateImage")
SLICE_SIZE = 600        # MYNO's UPDATE_SLICE_SIZE
RESEND_AFTER = 5.0      # s, MYNO re-publishes an unacked slice every 5 s
GIVE_UP_AFTER = 60.0    # s, and gives up on it after 60 s
ACK = "OK"              # MYNO's UPDATE_SLICE_ACK


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("host", "port", "user", "password", "uuid", "image", "vendor", "server_key",
                 "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password"):
        p.add_argument(name)
    p.add_argument("--poll", type=float, default=0.0,
                   help="look for each ack every POLL seconds, as MYNO does (0.1), instead of waiting for it; "
                        "for docs/bench/mup-protocols.sh, which measures what MYNO's Update Server would take")
    return p.parse_args()


def discover(m, uuid):
    """<get> and get-schema as MYNO's interpret_get and
    interpret_get_scheme read them: returns the device's namespace and the
    slice topic base of its module's funcPubUpdateImage."""
    root = ET.fromstring(m.get().xml)
    namespace = None
    for data in root:
        if "data" not in data.tag:
            continue
        for dev in data:
            if "device" not in dev.tag or not dev.tag.startswith("{"):
                continue
            ns = dev.tag[1:].split("}")[0]
            u = dev.find("{%s}device-id/{%s}uuid" % (ns, ns))
            if u is not None and u.text == uuid:
                namespace = ns
    if namespace is None:
        raise RuntimeError("device %s is not in <get>" % uuid)

    root = ET.fromstring(m.get_schema("").xml)
    text = ""
    for child in root:
        if "data" in child.tag:
            text = child.text or ""
    modules = [p for p in text.split("module ") if p.strip()]
    # MYNO splits on "module" without the space and hands each part to
    # pyang: a module whose text says "module" elsewhere breaks it.
    bare = len(text.split("module")) - 1
    if bare != len(modules):
        print("schema: %d modules but \"module\" %d times" % (len(modules), bare))
    base = None
    for mod in modules:
        if ('namespace "%s";' % namespace) not in mod:
            continue
        rpcs = re.findall(r"\brpc\s+([A-Za-z_][\w.-]*)\s*\{", mod)
        if not all(r in rpcs for r in UPDATE_RPCS):
            continue
        after = mod[mod.index("rpc funcPubUpdateImage"):]
        nxt = re.search(r"\n\s*(rpc|container)\s", after[1:])
        block = after if nxt is None else after[:nxt.start() + 1]
        d = re.search(r'\bdefault\s+"([^"]*)"\s*;', block)
        if d is not None:
            base = d.group(1)
    if base is None:
        raise RuntimeError("no module in namespace %s with %s and a default on funcPubUpdateImage"
                           % (namespace, ", ".join(UPDATE_RPCS)))
    return namespace, base


def call(m, uuid, rpc, leaf=None, value=None):
    """One unqualified rpc, as MYNO builds it; returns ./data/retval."""
    xml = "<%s><uuidInput>%s</uuidInput>" % (rpc, escape(uuid))
    if leaf is not None:
        xml += "<%s>%s</%s>" % (leaf, escape(value), leaf)
    xml += "</%s>" % rpc
    reply = m.dispatch(to_ele(xml))
    retval = ET.fromstring(reply.xml).find("./data/retval")
    return "NONE" if retval is None else retval.text


def outer_signature(key_hex, signing_string):
    """What MYNO's `createSig signU` prints: ECDSA P-256 over SHA-256 of
    the string, r||s as 128 lower-case hex."""
    key = ec.derive_private_key(int(key_hex, 16), ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(signing_string.encode(), ec.ECDSA(hashes.SHA256())))
    return "%064x%064x" % (r, s)


class Slicer:
    """The slice phase with paho-mqtt, flow control as MYNO's type 0."""

    def __init__(self, host, port, user, password, poll=0.0):
        self.poll = poll
        self.cond = threading.Condition()
        self.connected = None
        self.subscribed = {}
        self.unacked = set()
        self.unknown = 0
        # Flask-MQTT's default: an empty client identifier, clean session.
        self.c = mqtt.Client(client_id="", clean_session=True, protocol=mqtt.MQTTv311)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_connect = self.on_connect
        self.c.on_subscribe = self.on_subscribe
        self.c.on_message = self.on_message
        self.c.connect(host, int(port), keepalive=60)
        self.c.loop_start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.connected is not None, timeout=10):
                raise RuntimeError("MQTT: no CONNACK")
        if self.connected != 0:
            raise RuntimeError("MQTT: connection refused, rc %d" % self.connected)

    def on_connect(self, client, userdata, flags, rc):
        with self.cond:
            self.connected = rc
            self.cond.notify_all()

    def on_subscribe(self, client, userdata, mid, granted_qos):
        with self.cond:
            self.subscribed[mid] = granted_qos
            self.cond.notify_all()

    def on_message(self, client, userdata, msg):
        # As MYNO: split on ",", field 0 an unacked slice number, field 1
        # exactly OK; anything else is an "unknown slice", dropped.
        fields = msg.payload.decode("utf-8", "replace").split(",")
        with self.cond:
            try:
                n = int(fields[0])
            except ValueError:
                n = None
            if n in self.unacked and len(fields) > 1 and fields[1] == ACK:
                self.unacked.discard(n)
                self.cond.notify_all()
            else:
                self.unknown += 1

    def subscribe(self, topic):
        rc, mid = self.c.subscribe(topic, qos=0)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("MQTT: subscribe %s: rc %d" % (topic, rc))
        with self.cond:
            if not self.cond.wait_for(lambda: mid in self.subscribed, timeout=10):
                raise RuntimeError("MQTT: no SUBACK for %s" % topic)
            if 0x80 in self.subscribed[mid]:
                raise RuntimeError("MQTT: subscription to %s refused" % topic)

    def send(self, topic, image):
        """Publishes the image slice by slice, each acked before the next;
        returns the number of slices acked, the slice that timed out (None
        if none did) and the number of resends."""
        i = 0
        resent = 0
        for off in range(0, len(image), SLICE_SIZE):
            payload = str(i).encode() + b"," + image[off:off + SLICE_SIZE]
            # Unlike MYNO, the slice is unacked *before* it is published:
            # MYNO registers it after publishing, so a device that acks
            # at once has its ack dropped as "unknown slice" and the slice
            # is resent after 5 s, 5 s more per slice (MUP-V1.md §2.3 (a)).
            with self.cond:
                self.unacked.add(i)
            # paho is called outside self.cond: its publish may take the
            # callback lock, which on_message holds while it waits for ours.
            self.c.publish(topic, payload, qos=0)
            waited = 0.0
            while not self.acked(i, RESEND_AFTER):
                waited += RESEND_AFTER
                if waited >= GIVE_UP_AFTER:
                    return i, i, resent
                self.c.publish(topic, payload, qos=0)
                resent += 1
            i += 1
        return i, None, resent

    def acked(self, i, timeout):
        if self.poll > 0:  # MYNO's loop: sleep, then look (MUP-V1.md §2.3)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                time.sleep(self.poll)
                with self.cond:
                    if i not in self.unacked:
                        return True
            return False
        with self.cond:
            return self.cond.wait_for(lambda: i not in self.unacked, timeout=timeout)

    def close(self, topic):
        self.c.unsubscribe(topic)
        self.c.disconnect()
        self.c.loop_stop()


def main():
    a = parse_args()
    with open(a.image, "rb") as f:
        image = f.read()
    with open(a.vendor) as f:
        inner, inner_sig = f.read().split("\n")[:2]
    with open(a.server_key) as f:
        server_key = f.read().strip()
    app_id, link_offset, digest, size, version, old_version = inner.split(";")

    m = manager.connect(host=a.host, port=int(a.port), username=a.user, password=a.password,
                        hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)
    try:
        # Token (the GUI's function_call of funcGetDeviceToken).
        ns, base = discover(m, a.uuid)
        print("device %s: namespace %s slice topic base %s" % (a.uuid, ns, base))
        token = call(m, a.uuid, "funcGetDeviceToken")
        print("token: %s" % token)
        nonce, token_version = token.split(",")[:2]

        # Manifest (the GUI's multipart POST of the update form): the form
        # fields sorted by name, numbered by position.
        discover(m, a.uuid)
        if token_version != old_version:
            print("note: the token says version %s, the vendor's manifest OldVersion %s" % (token_version, old_version))
        form = {
            "input_1_AppId": app_id,
            "input_2_LinkOffset": link_offset,
            "input_3_Hash": digest,
            "input_4_Size": size,
            "input_5_Version": version,
            "input_6_OldVersion": old_version,
            "input_7_InnerSignature": inner_sig,
            "input_8_DeviceNonce": nonce,
        }
        calls = []
        for i, (name, value) in enumerate(sorted(form.items())):
            calls.append((name, "%d,%s" % (i, value)))
        signing = ";".join(v for _, v in sorted(form.items()))
        calls.append(("input_9_OuterSignature", "%d,%s" % (len(calls), outer_signature(server_key, signing))))
        calls.append(("input_9_OuterSignature", "%d,START-UPDATE" % len(calls)))
        answer = None
        for leaf, value in calls:
            answer = call(m, a.uuid, "funcPubUpdateManifest", leaf, value)
        print("manifest: %s" % answer)

        # Slices (the GUI's multipart POST of the image file) and FIN.
        if answer == "MANIFEST-SUCCESS":
            _, base = discover(m, a.uuid)
            topic = base + "/" + a.uuid
            slicer = Slicer(a.mqtt_host, a.mqtt_port, a.mqtt_user, a.mqtt_password, a.poll)
            slicer.subscribe(topic + "/response")
            n, timed_out, resent = slicer.send(topic, image)
            slicer.close(topic + "/response")
            print("slice topic %s: %d resent, %d unknown acks" % (topic, resent, slicer.unknown))
            if timed_out is None:
                print("slices: %d acked" % n)
                # MYNO sends FIN only when no slice is left unacked.
                print("fin: %s" % call(m, a.uuid, "funcPubUpdateImage", "inputUpdateImage", "FIN"))
            else:
                print("slices: timeout at %d" % timed_out)

        discover(m, a.uuid)
        print("token after: %s" % call(m, a.uuid, "funcGetDeviceToken"))
    finally:
        m.close_session()


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        print("error: the flow did not run to its end", file=sys.stderr)
        sys.exit(1)
