package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"unique"

	"github.com/myno-bridge/myno/ontology"
)

// Parsing a description (JSON-LD to a device model) is most of what a
// registration costs, and a fleet has few shapes: devices of one type send
// the same description with only their uuid filled in (ontology's
// unfillUUID). templateCache keeps the parsed template of each description
// seen, keyed by the description's bytes with the device's uuid taken out,
// so a device of a known description is registered without parsing.
//
// A cached template is reused only where parsing would have given the
// same template: the description of the new device must equal the cached
// one byte for byte except for the uuid, at exactly the same places, and
// the cached one must have been safe to rename:
//
//   - the parser recognised the uuid as the device's (FilledUUID), or the
//     description does not contain it at all;
//   - the uuid occurs only inside JSON string values, never in a key, a
//     JSON-LD keyword's value other than @id and @value (a @type or a
//     @context entry would change what the document means), nor escaped;
//   - the template holds no copy of it (a name taken from an IRI keeps
//     the uuid verbatim: such descriptions are parsed every time).
//
// A uuid is at most 64 characters of [A-Za-z0-9._:-] (wire.ValidUUID), so
// putting another in its place changes no JSON token's kind.
//
// The key is the description without its uuid as storeDescription interns
// it (the uuid's places hold NUL bytes, which a JSON text cannot hold
// raw), which the device keeps anyway: no hash of its own to compute.
type templateCache struct {
	mu      sync.Mutex
	entries map[unique.Handle[string]]*ontology.Device
	order   []unique.Handle[string] // oldest first, for eviction
	max     int
	hits    uint64
}

// maxCachedTemplates bounds the cache: a few descriptions per shape of
// DefaultMaxShapes.
const maxCachedTemplates = 1024

func newTemplateCache(max int) *templateCache {
	return &templateCache{entries: map[unique.Handle[string]]*ontology.Device{}, max: max}
}

// lookup returns the cached template of desc sent by device uuid, or nil.
func (c *templateCache) lookup(desc []byte, uuid string) *ontology.Device {
	return c.lookupStored(storeDescription(desc, uuid))
}

// lookupStored is lookup for a description already stored; one kept
// verbatim (a NUL byte in it, an invalid uuid) is never cached.
func (c *templateCache) lookupStored(sd storedDescription) *ontology.Device {
	if sd.verbatim {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.entries[sd.text]
	if t != nil {
		c.hits++
	}
	return t
}

// store keeps tmpl, parsed from desc sent by device uuid, when it is safe
// to reuse for other devices (see templateCache).
func (c *templateCache) store(desc []byte, uuid string, tmpl *ontology.Device) {
	c.storeStored(storeDescription(desc, uuid), desc, uuid, tmpl)
}

// storeStored is store for a description already stored as sd.
func (c *templateCache) storeStored(sd storedDescription, desc []byte, uuid string, tmpl *ontology.Device) {
	if c.max <= 0 || sd.verbatim || !renamable(desc, uuid, tmpl) {
		return
	}
	key := sd.text
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.entries[key]; seen {
		return
	}
	if len(c.order) >= c.max {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	c.entries[key] = tmpl
	c.order = append(c.order, key)
}

// renamable reports whether another uuid in place of uuid in desc gives
// the same template (see templateCache).
func renamable(desc []byte, uuid string, tmpl *ontology.Device) bool {
	raw := bytes.Count(desc, []byte(uuid))
	if raw == 0 {
		return true // the description does not depend on the uuid
	}
	if tmpl.FilledUUID != uuid {
		return false
	}
	model, err := json.Marshal(tmpl)
	if err != nil || bytes.Contains(model, []byte(uuid)) {
		return false
	}
	inValues, err := occurrencesInValues(desc, uuid)
	return err == nil && inValues == raw
}

// occurrencesInValues counts the occurrences of uuid in the JSON string
// values of doc whose key is not a JSON-LD keyword other than @id and
// @value (array elements count under their array's key). A key that holds
// uuid makes it fail.
func occurrencesInValues(doc []byte, uuid string) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct {
		object bool
		key    string // the key of this container in its parent
	}
	var stack []frame
	expectKey := false
	key := ""
	n := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, frame{object: t == '{', key: key})
				expectKey = t == '{'
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 {
					key = stack[len(stack)-1].key
					expectKey = stack[len(stack)-1].object
				}
			}
			continue
		case string:
			if expectKey {
				if strings.Contains(t, uuid) {
					return 0, errors.New("uuid in a key")
				}
				key, expectKey = t, false
				continue
			}
			if c := strings.Count(t, uuid); c > 0 {
				if strings.HasPrefix(key, "@") && key != "@id" && key != "@value" {
					return 0, errors.New("uuid in a JSON-LD keyword's value")
				}
				n += c
			}
		}
		// A value ends; in an object the next string is a key.
		if len(stack) > 0 && stack[len(stack)-1].object {
			expectKey = true
		}
	}
}

// parseOrReuse returns the template of desc, stored as sd, sent by device
// uuid: the cached one, or a parse (then cached when safe).
func (r *registry) parseOrReuse(sd storedDescription, desc []byte, uuid string) (*ontology.Device, error) {
	if t := r.templates.lookupStored(sd); t != nil {
		return t, nil
	}
	t, err := r.parser.Parse(desc)
	if err != nil {
		return nil, err
	}
	r.templates.storeStored(sd, desc, uuid, t)
	return t, nil
}
