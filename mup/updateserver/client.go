package updateserver

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
)

// nsBase is the NETCONF base namespace (RFC 6241 §3.1); get-schema is in
// ietf-netconf-monitoring's (RFC 6022 §5), named in the struct tags.
const nsBase = "urn:ietf:params:xml:ns:netconf:base:1.0"

// Limits on a reply the client reads: the bridge's replies are far
// smaller, so anything beyond them is refused before it is decoded. (The
// go-netconf transport has read the reply whole by then: the limit bounds
// the decoding, not the read.)
const (
	// MaxReplyBytes bounds one <rpc-reply>, a module's source included.
	MaxReplyBytes = 4 << 20
	// MaxOutputs bounds the output leaves of one rpc.
	MaxOutputs = 256
)

// ErrBadReply is wrapped by the errors of a reply the client cannot use:
// not XML, not an <rpc-reply>, too large, or without what it must hold.
var ErrBadReply = errors.New("bad NETCONF reply")

// ErrNoDevice is wrapped by Device's error when the bridge has no such
// registered device.
var ErrNoDevice = errors.New("no registered device")

// RPCError is an <rpc-error> the server answered with (RFC 6241 §4.3).
type RPCError struct {
	Operation string // the rpc it answers, e.g. "getDeviceToken"
	Type      string // error-type: transport, rpc, protocol or application
	Tag       string // error-tag, e.g. "operation-failed"
	AppTag    string // error-app-tag, e.g. the bridge's "device-timeout"
	Path      string
	Message   string
}

func (e *RPCError) Error() string {
	msg := "netconf " + e.Operation + ": rpc-error " + e.Tag
	if e.AppTag != "" {
		msg += " (" + e.AppTag + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Client is a typed NETCONF client for the bridge: requests are structs
// marshalled with encoding/xml and replies are unmarshalled with it, so
// every value is escaped on the way out and every reply is parsed, never
// matched as text. Like the session under it, it carries one rpc at a
// time: it is not safe for concurrent use.
type Client struct {
	// exec sends one operation (the child of <rpc>) and returns the raw
	// <rpc-reply>.
	exec func(op []byte) ([]byte, error)
}

// NewClient returns a client over a go-netconf session.
func NewClient(s *gonetconf.Session) *Client {
	return &Client{exec: func(op []byte) ([]byte, error) {
		reply, err := s.Exec(gonetconf.RawMethod(op))
		if reply != nil {
			// With an <rpc-error>, go-netconf returns the reply and an
			// error that names neither the tag nor the operation: the
			// client reads the reply itself.
			return []byte(reply.RawReply), nil
		}
		return nil, err
	}}
}

// ErrNoAnswer is wrapped by the error of an rpc the bridge did not answer
// within the Update Server's deadline (UpdateConfig.RPCTimeout). The
// session is closed then: go-netconf matches no message-id, so a late
// reply could not be told from the next rpc's.
var ErrNoAnswer = errors.New("no answer")

// newDeadlineClient is a client over s whose every rpc is answered within
// timeout, or fails with ErrNoAnswer and closes s; when ctx ends first, it
// fails with ctx's error and closes s too.
func newDeadlineClient(ctx context.Context, s *gonetconf.Session, timeout time.Duration) *Client {
	c := NewClient(s)
	exec := c.exec
	c.exec = func(op []byte) ([]byte, error) {
		type reply struct {
			raw []byte
			err error
		}
		done := make(chan reply, 1)
		go func() {
			raw, err := exec(op)
			done <- reply{raw, err}
		}()
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		var err error
		select {
		case r := <-done:
			return r.raw, r.err
		case <-timer.C:
			err = fmt.Errorf("%w within %s (the NETCONF session is closed)", ErrNoAnswer, timeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		// Closing the session ends the rpc's wait for its reply; the
		// goroutine above is waited for, briefly.
		_ = s.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return nil, err
	}
	return c
}

// Leaf is a leaf of an rpc's input or output: its local name and value.
// An input container (RFC 7950 §7.5) has Children instead of a value.
type Leaf struct {
	Name     string
	Value    string
	Children []Leaf `json:",omitempty"`
}

// Output is an rpc's reply: retval, the result state, and the other output
// leaves in the order the server sent them.
type Output struct {
	Retval string
	Leaves []Leaf
}

// Values returns the output leaves' values, in order.
func (o *Output) Values() []string {
	out := make([]string, len(o.Leaves))
	for i, l := range o.Leaves {
		out[i] = l.Value
	}
	return out
}

// DeviceEntry is a device in a module's devices list (see package yang).
type DeviceEntry struct {
	UUID            string
	Category        string
	Module          string // the YANG module that serves it
	Namespace       string // that module's namespace, where its rpcs are
	FirmwareVersion string
	Online          bool
	LastSeen        string // RFC 3339, "" when never
	// Sensors are the latest readings, by sensor (Devices only).
	Sensors []Reading
	// Configuration is what the bridge applied of the device's
	// configuration, per operation (Devices only; issue 20).
	Configuration []ConfigState
}

// ConfigState is one configuration operation's configuration-state.
type ConfigState struct {
	Name         string `xml:"name"`
	Status       string `xml:"status"` // applied, pending or failed
	AttemptedAt  string `xml:"attempted-at"`
	AppliedAt    string `xml:"applied-at"`
	Answer       string `xml:"answer"`
	ErrorMessage string `xml:"error-message"`
}

// Reading is a sensor's latest value in a devices list.
type Reading struct {
	Sensor    string
	Value     string
	Timestamp string
}

// Requests.

// xmlLeaf is an element holding text, in a namespace.
type xmlLeaf struct {
	XMLName  xml.Name
	Value    string    `xml:",chardata"`
	Children []xmlLeaf `xml:",any"`
}

// toXML renders an input leaf, or container, in namespace.
func (l Leaf) toXML(namespace string) xmlLeaf {
	x := xmlLeaf{XMLName: xml.Name{Space: namespace, Local: l.Name}, Value: l.Value}
	for _, c := range l.Children {
		x.Children = append(x.Children, c.toXML(namespace))
	}
	return x
}

// operationXML is an rpc's operation element (RFC 6241 §4.1): a module's
// rpc with its input leaves, all in the module's namespace.
type operationXML struct {
	XMLName xml.Name
	Leaves  []xmlLeaf
}

// getXML is <get> with a subtree filter (RFC 6241 §7.7, §6).
type getXML struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 get"`
	Filter  struct {
		Type    string           `xml:"type,attr"`
		Devices devicesFilterXML `xml:"devices"`
	} `xml:"filter"`
}

// devicesFilterXML selects entries of every module's devices list: the
// empty default namespace (xmlns="") makes it match the devices container
// of any module (RFC 6241 §6.2.1).
type devicesFilterXML struct {
	NoNamespace string `xml:"xmlns,attr"`
	Device      struct {
		UUID     *string `xml:"uuid"`               // a content match, or a selection node when empty (§6.2.5, §6.2.4)
		Category *string `xml:"category,omitempty"` // a content match
	} `xml:"device"`
}

// getSchemaXML is <get-schema> (RFC 6022 §3.1).
type getSchemaXML struct {
	XMLName    xml.Name `xml:"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring get-schema"`
	Identifier string   `xml:"identifier"`
	Format     string   `xml:"format"`
}

// Replies.

// rpcErrorXML is an <rpc-error> (RFC 6241 §4.3).
type rpcErrorXML struct {
	Type     string `xml:"error-type"`
	Tag      string `xml:"error-tag"`
	Severity string `xml:"error-severity"`
	AppTag   string `xml:"error-app-tag"`
	Path     string `xml:"error-path"`
	Message  string `xml:"error-message"`
}

// element is any element, for the parts of a reply whose names the
// module decides: its text and whether it has child elements.
type element struct {
	XMLName  xml.Name
	Text     string `xml:",chardata"`
	Children []struct {
		XMLName xml.Name
	} `xml:",any"`
}

// outputReplyXML is the reply to a module's rpc: retval and the other
// output leaves (RFC 7950 §7.14.4), in order.
type outputReplyXML struct {
	XMLName xml.Name      `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc-reply"`
	Errors  []rpcErrorXML `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc-error"`
	Leaves  []element     `xml:",any"`
}

// getReplyXML is the reply to <get>: the modules' devices lists.
type getReplyXML struct {
	XMLName xml.Name      `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc-reply"`
	Errors  []rpcErrorXML `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc-error"`
	Data    *struct {
		Devices []struct {
			XMLName xml.Name
			Device  []struct {
				XMLName         xml.Name
				UUID            string `xml:"uuid"`
				Category        string `xml:"category"`
				Module          string `xml:"module"`
				FirmwareVersion string `xml:"firmware-version"`
				Online          bool   `xml:"online"`
				LastSeen        string `xml:"last-seen"`
				Sensors         *struct {
					Sensor []struct {
						XMLName   xml.Name
						Value     string `xml:"value"`
						Timestamp string `xml:"timestamp"`
					} `xml:",any"`
				} `xml:"sensors"`
				Configuration []ConfigState `xml:"configuration-state>operation"`
			} `xml:"device"`
		} `xml:"devices"`
	} `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 data"`
}

// schemaReplyXML is the reply to <get-schema>: the module's source.
type schemaReplyXML struct {
	XMLName xml.Name      `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc-reply"`
	Errors  []rpcErrorXML `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc-error"`
	Data    *element      `xml:"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring data"`
}

// roundTrip marshals req, sends it and returns the raw reply.
func (c *Client) roundTrip(op string, req any) ([]byte, error) {
	body, err := xml.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("netconf %s: %w", op, err)
	}
	raw, err := c.exec(body)
	if err != nil {
		return nil, fmt.Errorf("netconf %s: %w", op, err)
	}
	return raw, nil
}

// decodeReply checks the reply's size and unmarshals it into v.
func decodeReply(op string, raw []byte, v any) error {
	if len(raw) > MaxReplyBytes {
		return fmt.Errorf("%w: netconf %s: reply of %d bytes, over %d", ErrBadReply, op, len(raw), MaxReplyBytes)
	}
	if err := xml.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: netconf %s: %w", ErrBadReply, op, err)
	}
	return nil
}

// replyError is the first <rpc-error> of severity error, as an *RPCError.
func replyError(op string, errs []rpcErrorXML) error {
	for _, e := range errs {
		if sev := strings.TrimSpace(e.Severity); sev == "error" || sev == "" {
			return &RPCError{Operation: op, Type: strings.TrimSpace(e.Type), Tag: strings.TrimSpace(e.Tag), AppTag: strings.TrimSpace(e.AppTag),
				Path: strings.TrimSpace(e.Path), Message: strings.TrimSpace(e.Message)}
		}
	}
	return nil
}

// Call runs rpc of the module with namespace, with inputs in that order,
// and returns its output.
func (c *Client) Call(namespace, rpc string, inputs ...Leaf) (*Output, error) {
	if namespace == "" {
		return nil, fmt.Errorf("netconf %s: no module namespace", rpc)
	}
	req := operationXML{XMLName: xml.Name{Space: namespace, Local: rpc}}
	for _, in := range inputs {
		req.Leaves = append(req.Leaves, in.toXML(namespace))
	}
	raw, err := c.roundTrip(rpc, req)
	if err != nil {
		return nil, err
	}
	return parseOutput(rpc, namespace, raw)
}

// parseOutput reads an rpc's reply: an rpc-error, or retval and the other
// output leaves of the module's namespace, in order.
func parseOutput(rpc, namespace string, raw []byte) (*Output, error) {
	var r outputReplyXML
	if err := decodeReply(rpc, raw, &r); err != nil {
		return nil, err
	}
	if err := replyError(rpc, r.Errors); err != nil {
		return nil, err
	}
	out := &Output{}
	retvals := 0
	for _, l := range r.Leaves {
		if l.XMLName.Space == nsBase && l.XMLName.Local == "ok" {
			continue // <ok/>: no output, so no retval either (reported below)
		}
		if l.XMLName.Space != namespace {
			return nil, fmt.Errorf("%w: netconf %s: output <%s> in namespace %q, not the module's %q", ErrBadReply, rpc, l.XMLName.Local, l.XMLName.Space, namespace)
		}
		if len(l.Children) > 0 {
			return nil, fmt.Errorf("%w: netconf %s: output <%s> is not a leaf", ErrBadReply, rpc, l.XMLName.Local)
		}
		if l.XMLName.Local == "retval" {
			retvals++
			out.Retval = l.Text
			continue
		}
		if len(out.Leaves) == MaxOutputs {
			return nil, fmt.Errorf("%w: netconf %s: more than %d outputs", ErrBadReply, rpc, MaxOutputs)
		}
		out.Leaves = append(out.Leaves, Leaf{Name: l.XMLName.Local, Value: l.Text})
	}
	if retvals != 1 || out.Retval == "" {
		return nil, fmt.Errorf("%w: netconf %s: %d retval leaves with a value, want one", ErrBadReply, rpc, retvals)
	}
	return out, nil
}

// Device finds a registered device in the bridge's devices lists: a <get>
// whose subtree filter matches the uuid in any module (RFC 6241 §6.2.5).
func (c *Client) Device(uuid string) (*DeviceEntry, error) {
	var req getXML
	req.Filter.Type = "subtree"
	req.Filter.Devices.Device.UUID = &uuid
	raw, err := c.roundTrip("get", req)
	if err != nil {
		return nil, err
	}
	entries, err := parseDevices(raw)
	if err != nil {
		return nil, err
	}
	var found *DeviceEntry
	for i := range entries {
		if entries[i].UUID != uuid {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: netconf get: device %s is in modules %s and %s", ErrBadReply, uuid, found.Module, entries[i].Module)
		}
		found = &entries[i]
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoDevice, uuid)
	}
	if found.Module == "" {
		return nil, fmt.Errorf("%w: netconf get: device %s has no module leaf", ErrBadReply, uuid)
	}
	return found, nil
}

// allDevicesXML is <get> of every module's devices list, whole.
type allDevicesXML struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 get"`
	Filter  struct {
		Type    string `xml:"type,attr"`
		Devices struct {
			NoNamespace string `xml:"xmlns,attr"`
		} `xml:"devices"`
	} `xml:"filter"`
}

// Devices returns every registered device of every module, with its
// state and its sensors' latest readings: a <get> whose subtree filter
// selects the devices lists of all modules (RFC 6241 §6.2.4, §6.2.1).
func (c *Client) Devices() ([]DeviceEntry, error) {
	var req allDevicesXML
	req.Filter.Type = "subtree"
	raw, err := c.roundTrip("get", req)
	if err != nil {
		return nil, err
	}
	return parseDevices(raw)
}

// DevicesOfCategory returns the uuids of the registered devices of one
// category: a <get> whose filter matches devices/device/category (RFC 6241
// §6.2.5) and selects their uuid.
func (c *Client) DevicesOfCategory(category string) ([]string, error) {
	var req getXML
	req.Filter.Type = "subtree"
	empty := ""
	req.Filter.Devices.Device.UUID = &empty
	req.Filter.Devices.Device.Category = &category
	raw, err := c.roundTrip("get", req)
	if err != nil {
		return nil, fmt.Errorf("devices of category %q: %w", category, err)
	}
	entries, err := parseDevices(raw)
	if err != nil {
		return nil, fmt.Errorf("devices of category %q: %w", category, err)
	}
	var out []string
	for _, e := range entries {
		if e.UUID != "" {
			out = append(out, e.UUID)
		}
	}
	return out, nil
}

// parseDevices reads the device entries of a <get> reply, each with the
// namespace of its module's devices list.
func parseDevices(raw []byte) ([]DeviceEntry, error) {
	var r getReplyXML
	if err := decodeReply("get", raw, &r); err != nil {
		return nil, err
	}
	if err := replyError("get", r.Errors); err != nil {
		return nil, err
	}
	if r.Data == nil {
		return nil, fmt.Errorf("%w: netconf get: no <data>", ErrBadReply)
	}
	var out []DeviceEntry
	for _, list := range r.Data.Devices {
		ns := list.XMLName.Space
		for _, d := range list.Device {
			if ns == "" || d.XMLName.Space != ns {
				return nil, fmt.Errorf("%w: netconf get: device entry in namespace %q under a devices list in %q", ErrBadReply, d.XMLName.Space, ns)
			}
			e := DeviceEntry{UUID: d.UUID, Category: d.Category, Module: d.Module, Namespace: ns, FirmwareVersion: d.FirmwareVersion, Online: d.Online, LastSeen: d.LastSeen,
				Configuration: d.Configuration}
			if d.Sensors != nil {
				for _, s := range d.Sensors.Sensor {
					e.Sensors = append(e.Sensors, Reading{Sensor: s.XMLName.Local, Value: s.Value, Timestamp: s.Timestamp})
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Schema returns the YANG source of a module the server announces
// (<get-schema>, RFC 6022 §3.1).
func (c *Client) Schema(module string) (string, error) {
	raw, err := c.roundTrip("get-schema", getSchemaXML{Identifier: module, Format: "yang"})
	if err != nil {
		return "", err
	}
	return parseSchema(module, raw)
}

// parseSchema reads a <get-schema> reply: the module's text.
func parseSchema(module string, raw []byte) (string, error) {
	var r schemaReplyXML
	if err := decodeReply("get-schema", raw, &r); err != nil {
		return "", err
	}
	if err := replyError("get-schema", r.Errors); err != nil {
		return "", err
	}
	if r.Data == nil || len(r.Data.Children) > 0 || strings.TrimSpace(r.Data.Text) == "" {
		return "", fmt.Errorf("%w: netconf get-schema %s: no module text in <data>", ErrBadReply, module)
	}
	return r.Data.Text, nil
}
