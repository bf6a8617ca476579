// Package netconf is a reusable NETCONF server: SSH transport, RFC 6242
// framing, sessions, the RFC 6241 base operations, RFC 6022 monitoring and
// get-schema, RFC 5277 notifications, authentication and access control.
// It knows nothing about MQTT or devices; the bridge plugs in through a
// small interface of RPC handlers, a schema source and a state source.
//
// The implementation arrives with issue 3; until then the package holds
// only this description (see the README's status table).
package netconf
