package devices

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"strings"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// command runs one command from the broker and answers it: on the
// request's ResponseTopic with its CorrelationData (MQTT 5), else on
// response/<uuid> (MQTT 3.1.1). The handler's context ends after
// commandTimeout or when the device closes; the answer is published even
// then (Close waits for it), within answerTimeout.
func (d *Device) command(m client.Message, funcs []*ontology.Function) {
	d.Commands.Add(1)
	ctx, cancel := context.WithTimeout(d.life, commandTimeout)
	reqID, value, outputs := d.execute(ctx, m, funcs)
	cancel()
	if value == "" {
		return
	}
	if wire.Refused(value) {
		d.Errors.Add(1)
	}
	ans := client.Message{Topic: wire.ResponseTopic(d.cfg.UUID), Payload: wire.Response{ReqID: reqID, Value: value, Outputs: outputs}.Encode()}
	if d.cfg.Protocol == client.MQTT5 && m.ResponseTopic != "" {
		ans.Topic, ans.CorrelationData = m.ResponseTopic, m.CorrelationData
	}
	ctx, cancel = context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	if err := d.tr.Publish(ctx, ans, 1); err != nil {
		d.log.Warn("answer not sent", "req_id", reqID, "err", err)
	}
}

// execute decodes, checks and applies a command. Bad commands are answered
// with the description's error state.
func (d *Device) execute(ctx context.Context, m client.Message, funcs []*ontology.Function) (reqID, value string, outputs []string) {
	errorState := stateFor(funcs[0], "ERROR")
	if len(m.Payload) > d.cfg.MaxPayload {
		d.log.Warn("command too large", "bytes", len(m.Payload), "limit", d.cfg.MaxPayload)
		return reqIDOf(m.Payload), errorState, nil
	}
	req, err := wire.DecodeRequest(m.Payload)
	if err != nil {
		d.log.Warn("malformed command", "err", err)
		return reqIDOf(m.Payload), errorState, nil
	}
	var f *ontology.Function
	for _, cand := range funcs {
		if cand.Method == req.Method {
			f = cand
		}
	}
	if f == nil {
		d.log.Warn("unknown method", "method", req.Method, "topic", m.Topic)
		return req.ReqID, errorState, nil
	}
	if err := checkArgs(f, req.Args, d.cfg.UUID); err != nil {
		d.log.Warn("bad argument", "method", req.Method, "err", err)
		return req.ReqID, stateFor(f, "ERROR"), nil
	}
	if h, ok := d.cfg.Handlers[f.Method]; ok {
		value, outputs = h(ctx, d, f, req.Args)
		return req.ReqID, value, outputs
	}
	// A generic actuator: the same command twice is a no-op.
	newState := req.Method + ";" + strings.Join(req.Args, ";")
	d.mu.Lock()
	same := d.state[m.Topic] == newState
	d.state[m.Topic] = newState
	d.mu.Unlock()
	if same {
		return req.ReqID, stateFor(f, "NOOP"), nil
	}
	return req.ReqID, stateFor(f, "OK"), d.sampleOutputs(f)
}

// LastArgs returns the arguments of the last command of method the
// device took as a generic actuator (no handler of its own): what it is
// set to. A device that restarted has none until it is told again.
func (d *Device) LastArgs(method string) ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.state {
		if m, args, ok := strings.Cut(st, ";"); ok && m == method {
			return strings.Split(args, ";"), true
		}
	}
	return nil, false
}

// reqIDOf salvages the request id of an unparsable command, so that a
// 3.1.1 bridge can still match the ERROR.
func reqIDOf(b []byte) string {
	if i := strings.IndexByte(string(b[:min(len(b), wire.MaxFieldLength+1)]), ';'); i > 0 {
		return string(b[:i])
	}
	return "invalid"
}

// stateFor picks the description's result value for OK, NOOP or ERROR
// ("10_OK", "11_NOOP", "12_ERROR" in MUP descriptions).
func stateFor(f *ontology.Function, want string) string {
	for _, s := range f.States {
		if s.Value == want || strings.HasSuffix(s.Value, "_"+want) {
			return s.Value
		}
	}
	for _, s := range f.States {
		if strings.Contains(strings.ToUpper(s.Value), want) {
			return s.Value
		}
	}
	if want == "NOOP" && len(f.States) > 0 {
		return stateFor(f, "OK") // a description without NOOP: repeating is just OK
	}
	return want
}

// sampleOutputs fills data outputs with plausible values by type.
func (d *Device) sampleOutputs(f *ontology.Function) []string {
	var out []string
	for _, o := range f.Outputs {
		switch {
		case o.Type.IsInteger():
			out = append(out, "1")
		case o.Type == ontology.TypeHexBinary:
			b := make([]byte, 8)
			copy(b, d.cfg.UUID)
			out = append(out, hex.EncodeToString(b))
		case o.Type == ontology.TypeBoolean:
			out = append(out, "true")
		default:
			out = append(out, d.cfg.UUID)
		}
	}
	return out
}

var reDateTime = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)

// checkArgs parses a command's arguments by the operation's inputs (the
// device selector travels in the topic, not as an argument).
func checkArgs(f *ontology.Function, args []string, uuid string) error {
	var inputs []*ontology.Input
	for i := range f.Inputs {
		if f.Inputs[i].Kind != ontology.InputSelector {
			inputs = append(inputs, &f.Inputs[i])
		}
	}
	if len(args) != len(inputs) {
		return fmt.Errorf("%d arguments, want %d", len(args), len(inputs))
	}
	for i, in := range inputs {
		if err := checkArg(in, args[i], uuid); err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
	}
	return nil
}

func checkArg(in *ontology.Input, v, uuid string) error {
	switch in.Kind {
	case ontology.InputEnumeration:
		for _, e := range in.Enum {
			if wire.Expand(e, uuid) == v {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %v", v, in.Enum)
	case ontology.InputStructure:
		parts := strings.Split(v, ",")
		if len(parts) != len(in.Fields) {
			return fmt.Errorf("%d members, want %d", len(parts), len(in.Fields))
		}
		for i, fl := range in.Fields {
			if err := checkValue(fl.Type, fl.Range, parts[i]); err != nil {
				return fmt.Errorf("%s: %w", fl.Name, err)
			}
		}
		return nil
	}
	return checkValue(in.Type, in.Range, v)
}

func checkValue(t ontology.DataType, rng *ontology.Range, v string) error {
	switch {
	case t.IsInteger() || t.IsNumeric():
		n, ok := new(big.Rat).SetString(strings.TrimSpace(v))
		if !ok || strings.ContainsAny(v, "/eE") {
			return fmt.Errorf("%q is not a number", v)
		}
		if t.IsInteger() && !n.IsInt() {
			return fmt.Errorf("%q is not an integer", v)
		}
		lo, hi, _ := t.IntegerBounds()
		bounds := [2]string{lo, hi}
		if rng != nil {
			if rng.Min != "" {
				bounds[0] = rng.Min
			}
			if rng.Max != "" {
				bounds[1] = rng.Max
			}
		}
		if b, ok := new(big.Rat).SetString(bounds[0]); ok && bounds[0] != "" && n.Cmp(b) < 0 {
			return fmt.Errorf("%s is below %s", v, bounds[0])
		}
		if b, ok := new(big.Rat).SetString(bounds[1]); ok && bounds[1] != "" && n.Cmp(b) > 0 {
			return fmt.Errorf("%s is above %s", v, bounds[1])
		}
	case t == ontology.TypeBoolean:
		if v != "true" && v != "false" && v != "1" && v != "0" {
			return fmt.Errorf("%q is not a boolean", v)
		}
	case t == ontology.TypeHexBinary:
		if _, err := hex.DecodeString(v); err != nil {
			return fmt.Errorf("not hex: %w", err)
		}
	case t == ontology.TypeBase64Binary:
		if _, err := base64.StdEncoding.DecodeString(v); err != nil {
			return fmt.Errorf("not base64: %w", err)
		}
	case t == ontology.TypeDateTime:
		if !reDateTime.MatchString(v) {
			return fmt.Errorf("%q is not a date-time", v)
		}
	}
	return nil
}

// ExampleArgs returns valid arguments for a function, in wire order: the
// first enumeration value, the lowest value of a range, a small sample of
// each type. Tests, demos and load generators use it.
func ExampleArgs(f *ontology.Function, uuid string) []string {
	var args []string
	for i := range f.Inputs {
		in := &f.Inputs[i]
		switch in.Kind {
		case ontology.InputSelector:
			continue
		case ontology.InputEnumeration:
			args = append(args, wire.Expand(in.Enum[0], uuid))
		case ontology.InputStructure:
			parts := make([]string, len(in.Fields))
			for j, fl := range in.Fields {
				parts[j] = exampleValue(fl.Type, fl.Range)
			}
			args = append(args, strings.Join(parts, ","))
		default:
			args = append(args, exampleValue(in.Type, in.Range))
		}
	}
	return args
}

func exampleValue(t ontology.DataType, rng *ontology.Range) string {
	switch {
	case t.IsNumeric():
		if rng != nil && rng.Min != "" {
			return rng.Min
		}
		if rng != nil && rng.Max != "" {
			return rng.Max
		}
		if lo, _, ok := t.IntegerBounds(); ok && lo != "" && lo[0] != '-' && lo != "0" {
			return lo
		}
		return "1"
	case t == ontology.TypeBoolean:
		return "true"
	case t == ontology.TypeHexBinary:
		return "00ff"
	case t == ontology.TypeBase64Binary:
		return "AAEC"
	case t == ontology.TypeDateTime:
		return "2026-01-01T00:00:00Z"
	}
	return "x"
}
