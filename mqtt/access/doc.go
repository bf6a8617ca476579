// Package access decides who may use the MQTT side and for what: it
// authenticates MQTT clients (per-device tokens, role tokens, client
// certificates, enrolment) and says which topics each identity may publish
// to and subscribe to, from the topics its registered description names.
//
// The embedded broker asks it at every CONNECT, PUBLISH, SUBSCRIBE and
// delivery (package mqtt/broker); for an external broker, ExportMosquitto
// writes the same decisions as a Mosquitto password file and ACL, and
// ExportDynsec and the Dynsec commands as the configuration and the live
// changes of Mosquitto's dynamic-security plugin.
//
//   - store.go: the credential file (SHA-256 digests of random tokens,
//     shared with the myno devices command under a file lock);
//   - rules.go: topic rules and filter coverage (MQTT 5 §4.7);
//   - policy.go: the rules of each role and of each device;
//   - controller.go: authentication and enrolment (open, token, closed);
//   - mosquitto.go: the export for Mosquitto's password and ACL files;
//   - dynsec.go: its dynamic-security plugin (configuration file, role
//     commands, digests to change only what differs).
package access
