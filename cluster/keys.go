package cluster

import (
	"fmt"
	"regexp"
	"strings"
)

// validName is what a cluster or instance name may be: a single key level
// and, as the bridge also uses it in MQTT topics and request ids, no
// wildcard and no ':'.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// CheckName reports whether name may name a cluster or an instance.
func CheckName(kind, name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%s name %q: want 1-64 of A-Z a-z 0-9 _ . -", kind, name)
	}
	return nil
}

// keys lays out one cluster's keys (doc.go).
type keys struct{ prefix string }

func newKeys(cluster string) keys { return keys{prefix: "/myno/" + cluster + "/"} }

func (k keys) members() string               { return k.prefix + "members/" }
func (k keys) member(instance string) string { return k.members() + instance }
func (k keys) shapes() string                { return k.prefix + "shapes/" }
func (k keys) shape(hash string) string      { return k.shapes() + hash }
func (k keys) refs(hash string) string       { return k.prefix + "refs/" + hash + "/" }
func (k keys) ref(hash, uuid string) string  { return k.refs(hash) + uuid }
func (k keys) devices() string               { return k.prefix + "devices/" }
func (k keys) device(uuid string) string     { return k.devices() + uuid }

// name returns the last level of key under dir, or false.
func name(dir, key string) (string, bool) {
	n, ok := strings.CutPrefix(key, dir)
	if !ok || n == "" || strings.Contains(n, "/") {
		return "", false
	}
	return n, true
}
