package ontology

import "github.com/myno-bridge/myno/wire"

// Display renders a template for people when no UUID is bound: "%%" becomes
// "%" and "%s" is shown as "%s".
func Display(template string) string { return wire.Expand(template, "%s") }
