// Package bridge composes the system: the MQTT client and embedded broker,
// device bootstrap and registry, RPC-to-MQTT translation and telemetry. It
// turns device descriptions into modules (packages ontology and yang) and
// serves them through package netconf.
//
// The implementation arrives with issue 5; until then the package holds
// only this description (see the README's status table).
package bridge
