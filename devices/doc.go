// Package devices simulates MYNO devices: it runs a virtual device from
// its JSON-LD description, in place of hardware, against a bridge over
// MQTT 3.1.1 or 5.
//
// A Device bootstraps (publishes its description in chunks to
// yang/config/create and waits for the bridge's answer), then answers the
// commands of the MYNO wire protocol (package wire) as a generic actuator
// (or through Config.Handlers), at most Config.MaxInFlightCommands at once,
// and publishes plausible sensor readings. EnableMUP adds the device side
// of the MUP firmware update, EnableE2E that of the E2E channel to
// managers; StartFleet runs many devices. README.md has the details.
package devices
