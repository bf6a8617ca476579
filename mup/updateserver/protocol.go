package updateserver

import (
	"slices"

	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/yang"
)

// Protocol is the MUP wire format a device speaks.
type Protocol string

// The protocols an Update Server can speak.
const (
	// ProtocolCOSE is this project's MUP (package mup, mup/PROTOCOL.md):
	// COSE manifests, token nonces of 16 random bytes, binary slices.
	ProtocolCOSE Protocol = "cose"
	// ProtocolV1 is MYNO's original MUP (package mup/v1): manifest fields
	// one rpc at a time as "i,value", signatures as raw r‖s hex.
	ProtocolV1 Protocol = "v1"
)

// v1RPCs are the rpcs of a device that speaks MUP v1 (MYNO's MUP
// ontology, MUP-V1.md §1).
var v1RPCs = []string{v1.RPCGetDeviceToken, v1.RPCPubUpdateManifest, v1.RPCPubUpdateImage}

// DetectProtocol tells from a device's module source (get-schema) which
// protocol the device speaks: v1 when the module has funcGetDeviceToken,
// funcPubUpdateManifest and funcPubUpdateImage, the manifest rpc with
// input_1_AppId … input_9_OuterSignature; today's (COSE) otherwise.
func DetectProtocol(source string) (Protocol, error) {
	inputs, err := yang.RPCInputs(source)
	if err != nil {
		return "", err
	}
	return detectProtocol(inputs), nil
}

func detectProtocol(inputs map[string][]string) Protocol {
	for _, rpc := range v1RPCs {
		if _, ok := inputs[rpc]; !ok {
			return ProtocolCOSE
		}
	}
	for i := range v1.IndexStart {
		if !slices.Contains(inputs[v1.RPCPubUpdateManifest], v1.Leaf(i)) {
			return ProtocolCOSE
		}
	}
	return ProtocolV1
}

// Updatable tells from a module's rpc names whether its devices can be
// updated, and in which protocol: MUP v1 with MYNO's three rpcs, this
// project's MUP with getDeviceToken, sendExtendedManifest and
// sendFirmwareImage. (DetectProtocol, from the whole source, also checks
// the manifest rpc's inputs.)
func Updatable(rpcs []string) (Protocol, bool) {
	has := func(names ...string) bool {
		for _, n := range names {
			if !slices.Contains(rpcs, n) {
				return false
			}
		}
		return true
	}
	switch {
	case has(v1RPCs...):
		return ProtocolV1, true
	case has(tokenRPC, manifestRPC, firmwareRPC):
		return ProtocolCOSE, true
	}
	return "", false
}
