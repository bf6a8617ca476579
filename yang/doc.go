// Package yang turns a device model into a YANG 1.1 module and checks RPC
// input against it. It is pure: model in, module text out.
//
// One module is generated per description shape ([ontology.Device.Shape]):
// its name, namespace and prefix derive from the device category and the
// shape, so they are stable for the same shape and differ for different
// shapes, and the text is byte-identical for the same input. Every module
// is parsed back with goyang before it is returned.
//
// The mapping (see VOCABULARY.md and this package's README):
//
//   - each invocable functionality becomes an rpc whose input holds the
//     mandatory device selector and one node per operation input
//     (enumeration, a container of ranged leaves for a sub-structure, or a
//     typed leaf), and whose output holds retval, a union of the enumeration
//     of the operation states (with their descriptions) and a string (a
//     device's answer outside them), plus any data outputs;
//   - a config false "devices" list keyed by uuid holds the device state
//     and the latest reading of every sensor, with its units;
//   - every sensor and event also becomes a notification;
//   - an operation's input data point topic (where the device takes raw
//     data such as firmware slices) is the rpc's mqtt-input-topic
//     extension (RFC 7950 §7.19; InputTopicExtension, InputTopics).
//
// [Module.ParseInput] checks an rpc's XML input against the module (enum
// values, ranges, mandatory nodes, binary encodings) and turns it into the
// MQTT arguments of the call, so that bad input is answered before anything
// reaches the device.
package yang
