package bridge

import (
	"bytes"
	"strings"
	"unique"

	"github.com/myno-bridge/myno/wire"
)

// storedDescription is a registered device's description, kept so that
// the devices of one shape share its bytes: the description with every
// occurrence of the device's uuid replaced by a NUL byte (which a JSON
// text cannot hold raw) is interned (package unique), and the device's
// own is rebuilt from it when asked for (a save of a new shape, an
// update's rollback, a cluster replica's comparison). Devices of one
// type send the same description with only their uuid filled in: each
// kept its own copy, about 17 KiB of the 40 KiB a device cost the bridge
// with 10,000 devices (issue 17). A description that holds a NUL, or sent
// by an invalid uuid, is interned as it is.
type storedDescription struct {
	text     unique.Handle[string]
	verbatim bool // text is the description itself, not its uuid-less form
}

// storeDescription keeps desc, sent by device uuid. The uuid-less form
// is also the template cache's key (templateCache): two descriptions with
// the same form differ only by their uuid, at the same places.
func storeDescription(desc []byte, uuid string) storedDescription {
	if !wire.ValidUUID(uuid) || bytes.IndexByte(desc, 0) >= 0 {
		return storedDescription{text: unique.Make(string(desc)), verbatim: true}
	}
	// One copy, built with the replacements (bytes.ReplaceAll and a
	// conversion to string made two of 17 KiB per registration).
	var b strings.Builder
	b.Grow(len(desc))
	u := []byte(uuid)
	for rest := desc; ; {
		i := bytes.Index(rest, u)
		if i < 0 {
			b.Write(rest)
			break
		}
		b.Write(rest[:i])
		b.WriteByte(0)
		rest = rest[i+len(u):]
	}
	return storedDescription{text: unique.Make(b.String())}
}

// bytes rebuilds the description device uuid sent.
func (s storedDescription) bytes(uuid string) []byte {
	if s.verbatim {
		return []byte(s.text.Value())
	}
	return bytes.ReplaceAll([]byte(s.text.Value()), []byte{0}, []byte(uuid))
}

// shape is the description without its uuid (NUL where the uuid was):
// what the devices of one shape share, and a cluster stores once.
func (s storedDescription) shape() []byte { return []byte(s.text.Value()) }

// descriptionFromShape is the description device uuid sent, from its
// shape.
func descriptionFromShape(shape []byte, uuid string) []byte {
	return bytes.ReplaceAll(shape, []byte{0}, []byte(uuid))
}

// equal reports whether desc, sent by uuid, is the stored description.
func (s storedDescription) equal(desc []byte, uuid string) bool {
	return s == storeDescription(desc, uuid)
}
