// Package devices runs virtual MYNO devices from their JSON-LD
// descriptions: generic actuators and sensors speaking the MYNO wire
// protocol over MQTT 3.1.1 or 5, the device side of MUP and of the E2E
// channel, and a fleet runner.
//
// The implementation arrives with issue 4; until then the package holds
// only this description (see the README's status table).
package devices
