package ontology

import (
	"math/big"
	"strings"
)

// DataType is an XML Schema datatype by its local name ("int", "string",
// "hexBinary", ...), as named by onem2m:hasDataType.
type DataType string

// Data types with special meaning in the mapping.
const (
	TypeString       DataType = "string"
	TypeBoolean      DataType = "boolean"
	TypeInt          DataType = "int"
	TypeDecimal      DataType = "decimal"
	TypeHexBinary    DataType = "hexBinary"
	TypeBase64Binary DataType = "base64Binary"
	TypeDateTime     DataType = "dateTime"
)

// integerBounds gives the value space of the XSD integer types.
var integerBounds = map[DataType][2]string{
	"byte":               {"-128", "127"},
	"short":              {"-32768", "32767"},
	"int":                {"-2147483648", "2147483647"},
	"long":               {"-9223372036854775808", "9223372036854775807"},
	"integer":            {"-9223372036854775808", "9223372036854775807"},
	"unsignedByte":       {"0", "255"},
	"unsignedShort":      {"0", "65535"},
	"unsignedInt":        {"0", "4294967295"},
	"unsignedLong":       {"0", "18446744073709551615"},
	"nonNegativeInteger": {"0", "18446744073709551615"},
	"positiveInteger":    {"1", "18446744073709551615"},
	"nonPositiveInteger": {"-9223372036854775808", "0"},
	"negativeInteger":    {"-9223372036854775808", "-1"},
}

// IntegerBounds returns the inclusive value space of an integer type.
func (t DataType) IntegerBounds() (lo, hi string, ok bool) {
	b, ok := integerBounds[t]
	return b[0], b[1], ok
}

// IsInteger reports whether t is one of the XSD integer types.
func (t DataType) IsInteger() bool { _, ok := integerBounds[t]; return ok }

// IsNumeric reports whether t is an integer or decimal/floating type.
func (t DataType) IsNumeric() bool {
	return t.IsInteger() || t == TypeDecimal || t == "float" || t == "double"
}

// Known reports whether the mapping knows t; unknown types map to strings.
func (t DataType) Known() bool {
	switch t {
	case TypeString, TypeBoolean, TypeDecimal, "float", "double", TypeHexBinary, TypeBase64Binary, TypeDateTime,
		"normalizedString", "token", "anyURI":
		return true
	}
	return t.IsInteger()
}

// dataTypeFrom reads a datatype given as an IRI (xsd namespace) or as an
// untidy literal ("xsd:int", "int").
func dataTypeFrom(s string) DataType {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexAny(s, "#:/"); i >= 0 {
		s = s[i+1:]
	}
	return DataType(s)
}

// parseDecimal parses a range bound written as a decimal number.
func parseDecimal(s string) (*big.Rat, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "/eE") { // no fractions, no exponents
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// canonicalDecimal renders r without trailing zeros ("1.50" -> "1.5").
func canonicalDecimal(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	s := r.FloatString(18)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// DecimalFractionDigits is the decimal64 fraction-digits a non-integer
// value with range r needs: 6, or more when a bound has more.
func DecimalFractionDigits(r *Range) int {
	fd := 6
	if r == nil {
		return fd
	}
	for _, b := range []string{r.Min, r.Max} {
		if i := strings.IndexByte(b, '.'); i >= 0 && len(b)-i-1 > fd {
			fd = len(b) - i - 1
		}
	}
	return fd
}
