// Package ontology turns a device's JSON-LD description (oneM2M Base Ontology
// plus the MYNO vocabulary) into a typed device model. It is pure: bytes in,
// a *Device or a typed *Error out, no I/O and no goroutines.
//
// Both JSON-LD forms are accepted (compact with @context/@graph, and
// expanded), both MYNO namespace IRIs, and MYNO terms written under the
// oneM2M namespace. The description is expanded with json-gold (remote
// contexts are refused: a description never makes the parser touch the
// network) and its node map is read by local term name, so the array order of
// the source never matters.
//
// Literals are kept verbatim as templates: "%s" stands for the device UUID and
// "%%" for a literal "%". [Expand] and [Device.Instantiate] substitute them.
// The shape of a description ([Device.Shape]) is computed from the templates,
// so devices that differ only in their UUID share one shape and one YANG module.
//
// The vocabulary and its mapping are described in the project's
// VOCABULARY design note and in this package's README.
package ontology
