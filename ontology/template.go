package ontology

import "strings"

// Expand binds a description literal to a device: "%s" becomes uuid and "%%"
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

// Display renders a template for people when no UUID is bound: "%%" becomes
// "%" and "%s" is shown as "%s".
func Display(template string) string { return Expand(template, "%s") }
