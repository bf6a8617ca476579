package v1

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrMalformed is wrapped by every decoding and encoding error: the input
// is not MUP v1 as this package accepts it.
var ErrMalformed = errors.New("mup/v1: malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// MaxInt is the largest integer on the wire: manifest integers, the nonce
// and version of a token, slice and ack numbers. MYNO's firmware reads
// them with strtol into a 32-bit long and prints them again with %ld
// before hashing (§3), so a larger one would be signed as one text and
// checked as another.
const MaxInt = 1<<31 - 1

// maxIntDigits is the length of MaxInt in decimal.
const maxIntDigits = 10

// parseInt reads a canonical decimal (§3): one to ten ASCII digits, no
// sign, no leading zero (except "0" itself), no space, at most MaxInt.
func parseInt(b []byte) (uint32, error) {
	switch {
	case len(b) == 0:
		return 0, errors.New("empty, want a decimal number")
	case len(b) > maxIntDigits:
		return 0, fmt.Errorf("%d characters, longer than any number up to %d", len(b), MaxInt)
	case b[0] == '+' || b[0] == '-':
		return 0, fmt.Errorf("%q has a sign; want digits only", b)
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", b)
		}
		n = n*10 + uint64(c-'0')
	}
	if b[0] == '0' && len(b) > 1 {
		return 0, fmt.Errorf("%q has a leading zero (the device hashes %%ld, which prints none)", b)
	}
	if n > MaxInt {
		return 0, fmt.Errorf("%q is over %d (a 32-bit long on the device)", b, MaxInt)
	}
	return uint32(n), nil
}

// checkInt reports whether n can travel (n <= MaxInt).
func checkInt(name string, n uint32) error {
	if n > MaxInt {
		return malformed("%s %d is over %d (a 32-bit long on the device, §3)", name, n, MaxInt)
	}
	return nil
}

func appendInt(b []byte, n uint32) []byte { return strconv.AppendUint(b, uint64(n), 10) }

// isHex reports whether b is all hex digits; lower restricts them to
// lower case.
func isHex(b []byte, lower bool) bool {
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F' && !lower:
		default:
			return false
		}
	}
	return true
}

// quote shows at most 40 bytes of an input in an error.
func quote(b []byte) string {
	if len(b) > 40 {
		return strconv.Quote(string(b[:40])) + "..."
	}
	return strconv.Quote(string(b))
}
