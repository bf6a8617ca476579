package wire

import "strings"

// Expand binds a description literal (a topic, a value) to a device: "%s" becomes uuid and "%%"
// becomes "%". Any other "%" is kept as it is.
func Expand(template, uuid string) string {
	if !strings.Contains(template, "%") {
		return template
	}
	var b strings.Builder
	b.Grow(len(template) + len(uuid))
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c == '%' && i+1 < len(template) {
			switch template[i+1] {
			case 's':
				b.WriteString(uuid)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UUIDPattern is what a device UUID may look like: it is put into MQTT
// topic names, so no whitespace, '/', '+', '#', ';' or '%'. Standard UUIDs
// and most device ids fit. The YANG device-uuid typedef uses it too.
const UUIDPattern = `[A-Za-z0-9._:\-]+`

// MaxUUIDLength bounds a device UUID.
const MaxUUIDLength = 128

// ValidUUID reports whether s can identify a device.
func ValidUUID(s string) bool {
	if s == "" || len(s) > MaxUUIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
