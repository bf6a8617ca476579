package yang

import (
	"errors"

	"github.com/myno-bridge/myno/ontology"
)

// The configuration a device keeps (issue 20): the inputs of its
// configuration functionalities (myno:ConfigurationFunctionality), which
// a manager sets and the bridge applies by calling the operation.
//
//	container configuration {            // config true, at the top: devices is config false
//	  list device {
//	    key uuid;
//	    leaf uuid { type device-uuid; }
//	    container <rpc> {                  // presence: the operation is configured
//	      leaf <input> { ...; mandatory true; }  // every input but the selector
//	    }
//	  }
//	}
//
// and, in the devices list, what was applied:
//
//	container configuration-state { list operation { key name; status, attempted-at, applied-at, answer, error-message } }

// Names of the configuration nodes, shared by the generator and the
// bridge that serves them.
const (
	ConfigContainer = "configuration"
	ConfigList      = "device"
	ConfigKey       = "uuid"

	ConfigStateContainer = "configuration-state"
	ConfigStateList      = "operation"
	ConfigStateKey       = "name"
)

// Configuration states of an operation, in ConfigStateList's status.
const (
	ConfigApplied = "applied" // the device took the intended values
	ConfigPending = "pending" // not applied yet: the device is offline, or it is being applied
	ConfigFailed  = "failed"  // the device refused or did not answer
)

// configurable reports whether an rpc's inputs are a device's
// configuration: a configuration functionality that selects its device
// and takes its inputs together.
func configurable(r *RPC) bool {
	if r.Function.Kind != ontology.Configuration || r.OneInputPerCall || r.Name == ConfigKey {
		return false // an rpc named uuid would clash with the list's key
	}
	selector := false
	for _, n := range r.Inputs {
		selector = selector || n.Selector()
	}
	return selector && len(nonSelector(r.Inputs)) > 0
}

// Check validates a value of the input leaf (not a sub-structure) and
// returns its canonical form, as ParseInput takes it.
func (n *InputNode) Check(value string) (string, error) {
	return checked(n.Type.check(value, "", n.Name))
}

// Check validates a value of a sub-structure member.
func (f *FieldLeaf) Check(value string) (string, error) {
	return checked(f.Type.check(value, "", f.Name))
}

func checked(v string, err error) (string, error) {
	var ie *InputError
	if errors.As(err, &ie) {
		return "", errors.New(ie.Message)
	}
	return v, err
}

func (m *Module) renderConfiguration(w *writer) {
	w.open("container", ConfigContainer)
	w.text("description", "The intended configuration of devices of this shape: the inputs of their configuration operations. "+
		"The bridge applies a change by calling the operation, and applies the whole again whenever the device comes back or registers again. "+
		"Devices cannot be read back: what was applied, when, and the device's answer are in devices/device/configuration-state.")
	w.open("list", ConfigList)
	w.text("key", ConfigKey)
	w.open("leaf", ConfigKey)
	w.stmt("type", typedefDeviceUUID)
	w.text("description", "The device.")
	w.close()
	for _, r := range m.Configurable {
		w.open("container", r.Name)
		w.text("presence", "The operation's inputs are configured.")
		if d := m.text(r.Function.Description); d != "" {
			w.text("description", d)
		}
		for _, n := range nonSelector(r.Inputs) {
			m.renderInput(w, n, true)
		}
		w.close()
	}
	w.close()
	w.close()
}

func (m *Module) renderConfigurationState(w *writer) {
	w.open("container", ConfigStateContainer)
	w.text("description", "What the bridge last applied of the device's configuration.")
	w.open("list", ConfigStateList)
	w.text("key", ConfigStateKey)
	leaf := func(name, typ, desc string) {
		w.open("leaf", name)
		w.stmt("type", typ)
		w.text("description", desc)
		w.close()
	}
	leaf(ConfigStateKey, "string", "The configuration operation.")
	w.open("leaf", "status")
	w.open("type", "enumeration")
	for _, e := range [][2]string{
		{ConfigApplied, "The device took the intended values."},
		{ConfigPending, "Not applied yet: the device is offline, or the bridge is applying it."},
		{ConfigFailed, "The device refused the intended values or did not answer; the bridge tries again when it comes back."},
	} {
		w.open("enum", e[0])
		w.text("description", e[1])
		w.close()
	}
	w.close()
	w.text("description", "Whether the device holds the intended values.")
	w.close()
	leaf("attempted-at", typedefDateAndTime, "When the bridge last called the operation.")
	leaf("applied-at", typedefDateAndTime, "When the device last took the intended values.")
	leaf("answer", "string", "The device's answer to the last call.")
	leaf("error-message", "string", "Why the last call failed.")
	w.close()
	w.close()
}
