// Package myno holds what the binary carries of the repository's own
// files: the device descriptions that myno demo runs, so that the demo
// works from any directory.
package myno

import "embed"

// DemoDescriptions are the descriptions of testdata/descriptions that the
// demo's devices use, at their paths in the repository.
//
//go:embed testdata/descriptions/led-color.jsonld testdata/descriptions/relay-sensors.jsonld testdata/descriptions/mup-device-signed.jsonld testdata/descriptions/mup-v1-device.jsonld
var DemoDescriptions embed.FS
