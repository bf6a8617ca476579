package yang

import (
	"math"
	"math/big"

	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// Local typedefs, emitted only when a module uses them. They keep the
// modules free of imports, so any client can load them on their own.
const (
	typedefDeviceUUID  = "device-uuid"
	typedefMQTTString  = "mqtt-string"
	typedefMQTTField   = "mqtt-field"
	typedefHexBinary   = "hex-binary"
	typedefDateAndTime = "date-and-time"
)

// typedefOrder fixes the order typedefs appear in.
var typedefOrder = []string{typedefDeviceUUID, typedefMQTTString, typedefMQTTField, typedefHexBinary, typedefDateAndTime}

// builtinTypes are YANG's built-in type names (RFC 7950 §4.2.4), which no
// typedef may take.
var builtinTypes = []string{"binary", "bits", "boolean", "decimal64", "empty", "enumeration", "identityref",
	"instance-identifier", "int8", "int16", "int32", "int64", "leafref", "string", "uint8", "uint16",
	"uint32", "uint64", "union"}

var typedefs = map[string]struct {
	base, pattern, length, description string
}{
	typedefDeviceUUID: {"string", wire.UUIDPattern, "1..128",
		"A device UUID. It is used in MQTT topic names, so it is limited to letters, digits, '.', '_', ':' and '-'."},
	typedefMQTTString: {"string", `[^;\r\n]*`, "",
		"A string argument of an MQTT command. ';' separates fields on the wire, so it is not allowed."},
	typedefMQTTField: {"string", `[^;,\r\n]*`, "",
		"A string member of a sub-structure argument. ',' separates members and ';' fields on the wire."},
	typedefHexBinary: {"string", `([0-9a-fA-F]{2})*`, "",
		"Binary data as hexadecimal digits, two per octet (xsd:hexBinary)."},
	typedefDateAndTime: {"string", `[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[\+\-][0-9]{2}:[0-9]{2})`, "",
		"A date and time as in RFC 3339 (the lexical space of ietf-yang-types date-and-time)."},
}

// leafType is the YANG type of a leaf together with what is needed to
// check values against it.
type leafType struct {
	name     string // YANG type name: a built-in or a local typedef
	builtin  string // the built-in base type
	min, max *big.Rat
	fracDigs int // decimal64 fraction-digits
	rangeArg string
	enum     []enumValue
	pattern  string // for typedef strings; documentation only, checks are in check*
	ref      string // name of a module typedef that holds this type, if any
}

// enumValue maps a YANG enum name to the value sent on MQTT (a template).
type enumValue struct {
	Name, Wire, Description string
}

var intBuiltins = []struct {
	name     string
	min, max string
}{
	{"int8", "-128", "127"}, {"int16", "-32768", "32767"},
	{"int32", "-2147483648", "2147483647"}, {"int64", "-9223372036854775808", "9223372036854775807"},
	{"uint8", "0", "255"}, {"uint16", "0", "65535"},
	{"uint32", "0", "4294967295"}, {"uint64", "0", "18446744073709551615"},
}

var xsdIntBuiltin = map[ontology.DataType]string{
	"byte": "int8", "short": "int16", "int": "int32", "long": "int64", "integer": "int64",
	"nonPositiveInteger": "int64", "negativeInteger": "int64",
	"unsignedByte": "uint8", "unsignedShort": "uint16", "unsignedInt": "uint32", "unsignedLong": "uint64",
	"nonNegativeInteger": "uint64", "positiveInteger": "uint64",
}

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil
	}
	return r
}

// Where a value goes decides which characters strings may hold.
type valueUse int

const (
	useOutput valueUse = iota // from the device: any string
	useInput                  // an MQTT argument: no ';'
	useField                  // a sub-structure member: no ';' or ','
)

// valueType maps a datatype and an optional range to a YANG type.
func valueType(t ontology.DataType, rng *ontology.Range, use valueUse) leafType {
	if b, ok := xsdIntBuiltin[t]; ok {
		lt := leafType{name: b, builtin: b}
		for _, ib := range intBuiltins {
			if ib.name == b {
				lt.min, lt.max = rat(ib.min), rat(ib.max)
			}
		}
		lo, hi, _ := t.IntegerBounds() // xsd value space may be narrower than the builtin
		applyRange(&lt, lo, hi, rng)
		return lt
	}
	switch t {
	case ontology.TypeBoolean:
		return leafType{name: "boolean", builtin: "boolean"}
	case ontology.TypeDecimal, "float", "double":
		lt := leafType{name: "decimal64", builtin: "decimal64", fracDigs: min(ontology.DecimalFractionDigits(rng), 18)}
		// RFC 7950 §9.3.4: the value space is int64 scaled by 10^-fd.
		scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(lt.fracDigs)), nil)
		lt.max = new(big.Rat).SetFrac(big.NewInt(math.MaxInt64), scale)
		lt.min = new(big.Rat).SetFrac(big.NewInt(math.MinInt64), scale)
		applyRange(&lt, "", "", rng)
		return lt
	case ontology.TypeBase64Binary:
		return leafType{name: "binary", builtin: "binary"}
	case ontology.TypeHexBinary:
		return leafType{name: typedefHexBinary, builtin: "string", pattern: typedefs[typedefHexBinary].pattern}
	case ontology.TypeDateTime:
		return leafType{name: typedefDateAndTime, builtin: "string", pattern: typedefs[typedefDateAndTime].pattern}
	}
	switch use {
	case useInput:
		return leafType{name: typedefMQTTString, builtin: "string", pattern: typedefs[typedefMQTTString].pattern}
	case useField:
		return leafType{name: typedefMQTTField, builtin: "string", pattern: typedefs[typedefMQTTField].pattern}
	}
	return leafType{name: "string", builtin: "string"}
}

// applyRange narrows lt to the xsd value space [lo, hi] and the
// description's range, and renders the YANG range argument.
func applyRange(lt *leafType, lo, hi string, rng *ontology.Range) {
	var parts [2]string
	narrow := func(bound string, isMin bool) {
		if bound == "" {
			return
		}
		v := rat(bound)
		if isMin && (lt.min == nil || v.Cmp(lt.min) > 0) {
			lt.min = v
			parts[0] = bound
		}
		if !isMin && (lt.max == nil || v.Cmp(lt.max) < 0) {
			lt.max = v
			parts[1] = bound
		}
	}
	narrow(lo, true)
	narrow(hi, false)
	if rng != nil {
		narrow(rng.Min, true)
		narrow(rng.Max, false)
	}
	if parts[0] == "" && parts[1] == "" {
		return
	}
	if parts[0] == "" {
		parts[0] = "min"
	}
	if parts[1] == "" {
		parts[1] = "max"
	}
	lt.rangeArg = parts[0] + ".." + parts[1]
}

// write emits the "type" statement for lt.
func (lt *leafType) write(w *writer) {
	switch {
	case lt.ref != "":
		w.stmt("type", lt.ref)
	case lt.builtin == "enumeration":
		w.open("type", "enumeration")
		for _, e := range lt.enum {
			if e.Description == "" {
				w.text("enum", e.Name)
				continue
			}
			w.open("enum", quote(e.Name))
			w.text("description", e.Description)
			w.close()
		}
		w.close()
	case lt.builtin == "decimal64":
		w.open("type", "decimal64")
		w.stmt("fraction-digits", itoa(lt.fracDigs))
		if lt.rangeArg != "" {
			w.text("range", lt.rangeArg)
		}
		w.close()
	case lt.rangeArg != "":
		w.open("type", lt.name)
		w.text("range", lt.rangeArg)
		w.close()
	default:
		w.stmt("type", lt.name)
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
