package netconf

import (
	"context"
	"embed"
	"encoding/xml"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The standard modules the server implements or imports, served by
// get-schema like any other (IETF modules, from their RFCs).
//
//go:embed modules/*.yang
var moduleFiles embed.FS

var (
	reModuleName = regexp.MustCompile(`(?m)^\s*module\s+([A-Za-z_][A-Za-z0-9_.-]*)`)
	reNamespace  = regexp.MustCompile(`(?m)^\s*namespace\s+"?([^";\s]+)"?`)
	reRevision   = regexp.MustCompile(`(?m)^\s*revision\s+"?(\d{4}-\d{2}-\d{2})"?`)
)

// ParseModuleHeader reads a module's name, namespace and latest revision
// from its YANG source.
func ParseModuleHeader(src string) (Module, error) {
	m := Module{Source: src}
	if x := reModuleName.FindStringSubmatch(src); x != nil {
		m.Name = x[1]
	}
	if x := reNamespace.FindStringSubmatch(src); x != nil {
		m.Namespace = x[1]
	}
	for _, x := range reRevision.FindAllStringSubmatch(src, -1) {
		if x[1] > m.Revision {
			m.Revision = x[1]
		}
	}
	if m.Name == "" || m.Namespace == "" {
		return m, fmt.Errorf("netconf: not a YANG module with a name and a namespace")
	}
	return m, nil
}

func builtinModules() []*Module {
	entries, err := moduleFiles.ReadDir("modules")
	if err != nil {
		panic(err) // embedded at build time
	}
	var out []*Module
	for _, e := range entries {
		data, err := moduleFiles.ReadFile("modules/" + e.Name())
		if err != nil {
			panic(err)
		}
		m, err := ParseModuleHeader(string(data))
		if err != nil {
			panic(fmt.Sprintf("embedded module %s: %v", e.Name(), err))
		}
		// ietf-datastores is implemented: its identities are values in
		// the yang-library data (ds:running). ietf-origin is imported by
		// ietf-netconf-nmda for a feature this server does not have
		// (origin); ietf-netconf-with-defaults is implemented (RFC 6243).
		switch m.Name {
		case "ietf-yang-types", "ietf-inet-types", "ietf-yang-metadata", "ietf-origin":
			m.ImportOnly = true
		case "ietf-netconf":
			m.Features = []string{"xpath"} // RFC 6241 §8.9
		case "ietf-netconf-nmda":
			m.Features = []string{"with-defaults"} // RFC 8526 §2
		}
		mm := m
		out = append(out, &mm)
	}
	return out
}

func sortStrings(s []string) { sort.Strings(s) }

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// snapshotModules returns the modules sorted by name.
func (s *Server) snapshotModules() ([]*Module, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	mods := make([]*Module, 0, len(s.modules))
	for _, m := range s.modules {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	return mods, s.contentID
}

// The top-level nodes of the server's own state.
var (
	netconfStateRoot = xml.Name{Space: NSMonitoring, Local: "netconf-state"}
	yangLibraryRoot  = xml.Name{Space: NSYangLibrary, Local: "yang-library"}
	modulesStateRoot = xml.Name{Space: NSYangLibrary, Local: "modules-state"}
	nacmRoot         = xml.Name{Space: NSNACM, Local: "nacm"}
)

// monitoringState is the server's own state data: RFC 6022 netconf-state,
// RFC 8525 yang-library and the RFC 7895 modules-state older clients read,
// each built only when q may select from it, and netconf-state only in
// the parts q may select (a one-leaf get of a schema's version builds no
// session list).
func (s *Server) monitoringState(q *StateQuery) []*Element {
	var out []*Element
	if q.Wants(netconfStateRoot) {
		out = append(out, s.netconfState(q))
	}
	if q.Wants(streamsRoot) {
		out = append(out, s.streamsState())
	}
	wantLibrary, wantLegacy := q.Wants(yangLibraryRoot), q.Wants(modulesStateRoot)
	if !wantLibrary && !wantLegacy {
		return out
	}
	mods, contentID := s.snapshotModules()
	yl := func(name, text string) *Element { return NewLeaf(NSYangLibrary, name, text) }
	if wantLibrary {
		// RFC 8525 §3: one module set, one schema, used by every datastore.
		moduleSet := NewNode(NSYangLibrary, "module-set", yl("name", "all"))
		for _, m := range mods {
			kind := "module"
			if m.ImportOnly {
				kind = "import-only-module"
			}
			entry := NewNode(NSYangLibrary, kind, yl("name", m.Name))
			if m.Revision != "" || kind == "import-only-module" {
				entry.Children = append(entry.Children, yl("revision", m.Revision))
			}
			entry.Children = append(entry.Children, yl("namespace", m.Namespace))
			for _, f := range m.Features {
				entry.Children = append(entry.Children, yl("feature", f))
			}
			moduleSet.Children = append(moduleSet.Children, entry)
		}
		dsName := func(ds string) *Element {
			e := yl("name", "ds:"+ds)
			e.Attrs = append(e.Attrs, xml.Attr{Name: xml.Name{Space: "xmlns", Local: "ds"}, Value: "urn:ietf:params:xml:ns:yang:ietf-datastores"})
			return e
		}
		library := NewNode(NSYangLibrary, "yang-library",
			moduleSet,
			NewNode(NSYangLibrary, "schema", yl("name", "all"), yl("module-set", "all")),
			NewNode(NSYangLibrary, "datastore", dsName("running"), yl("schema", "all")))
		if s.ds != nil {
			library.Children = append(library.Children, NewNode(NSYangLibrary, "datastore", dsName("candidate"), yl("schema", "all")))
		}
		library.Children = append(library.Children,
			NewNode(NSYangLibrary, "datastore", dsName("operational"), yl("schema", "all")),
			yl("content-id", u64(contentID)))
		out = append(out, library)
	}
	if wantLegacy {
		legacy := NewNode(NSYangLibrary, "modules-state", yl("module-set-id", u64(contentID)))
		for _, m := range mods {
			conformance := "implement"
			if m.ImportOnly {
				conformance = "import"
			}
			entry := NewNode(NSYangLibrary, "module", yl("name", m.Name), yl("revision", m.Revision), yl("namespace", m.Namespace))
			for _, f := range m.Features {
				entry.Children = append(entry.Children, yl("feature", f))
			}
			entry.Children = append(entry.Children, yl("conformance-type", conformance))
			legacy.Children = append(legacy.Children, entry)
		}
		out = append(out, legacy)
	}
	return out
}

// netconfState is RFC 6022's netconf-state, with the children q may
// select.
func (s *Server) netconfState(q *StateQuery) *Element {
	siblings, whole := q.Within(netconfStateRoot)
	want := func(local string) bool {
		return whole || WantsChild(siblings, xml.Name{Space: NSMonitoring, Local: local})
	}
	mon := func(name, text string) *Element { return NewLeaf(NSMonitoring, name, text) }
	netconfState := NewNode(NSMonitoring, "netconf-state")
	if want("capabilities") {
		caps := NewNode(NSMonitoring, "capabilities")
		for _, c := range s.capabilities() {
			caps.Children = append(caps.Children, mon("capability", c))
		}
		netconfState.Children = append(netconfState.Children, caps)
	}
	if want("datastores") {
		datastores := NewNode(NSMonitoring, "datastores")
		s.mu.RLock()
		for _, ds := range s.configDatastores() {
			owner, at := s.lockOwner, s.lockTime
			if ds == "candidate" {
				owner, at = s.candidateLockOwner, s.candidateLockTime
			}
			entry := NewNode(NSMonitoring, "datastore", mon("name", ds))
			if owner != 0 {
				entry.Children = append(entry.Children, NewNode(NSMonitoring, "locks", NewNode(NSMonitoring, "global-lock",
					mon("locked-by-session", strconv.FormatUint(uint64(owner), 10)),
					mon("locked-time", timestamp(at)))))
			}
			datastores.Children = append(datastores.Children, entry)
		}
		s.mu.RUnlock()
		netconfState.Children = append(netconfState.Children, datastores)
	}
	if want("schemas") {
		mods, _ := s.snapshotModules()
		schemas := NewNode(NSMonitoring, "schemas")
		for _, m := range mods {
			schemas.Children = append(schemas.Children, NewNode(NSMonitoring, "schema",
				mon("identifier", m.Name), mon("version", m.Revision), mon("format", "yang"),
				mon("namespace", m.Namespace), mon("location", "NETCONF")))
		}
		netconfState.Children = append(netconfState.Children, schemas)
	}
	if want("sessions") {
		sessions := NewNode(NSMonitoring, "sessions")
		s.mu.RLock()
		var open []*session
		for _, sess := range s.sessions {
			open = append(open, sess)
		}
		s.mu.RUnlock()
		sort.Slice(open, func(i, j int) bool { return open[i].info.ID < open[j].info.ID })
		for _, sess := range open {
			sessions.Children = append(sessions.Children, NewNode(NSMonitoring, "session",
				mon("session-id", strconv.FormatUint(uint64(sess.info.ID), 10)),
				mon("transport", "netconf-ssh"),
				mon("username", sess.info.User),
				mon("source-host", hostOf(sess.info.RemoteAddr)),
				mon("login-time", timestamp(sess.login)),
				mon("in-rpcs", u64(sess.inRPCs.Load())),
				mon("in-bad-rpcs", u64(sess.inBadRPCs.Load())),
				mon("out-rpc-errors", u64(sess.outRPCErrors.Load())),
				mon("out-notifications", u64(sess.outNotifications.Load()))))
		}
		netconfState.Children = append(netconfState.Children, sessions)
	}
	if want("statistics") {
		st := &s.stats
		netconfState.Children = append(netconfState.Children, NewNode(NSMonitoring, "statistics",
			mon("netconf-start-time", timestamp(s.started)),
			mon("in-bad-hellos", u64(st.inBadHellos.Load())),
			mon("in-sessions", u64(st.inSessions.Load())),
			mon("dropped-sessions", u64(st.droppedSessions.Load())),
			mon("in-rpcs", u64(st.inRPCs.Load())),
			mon("in-bad-rpcs", u64(st.inBadRPCs.Load())),
			mon("out-rpc-errors", u64(st.outRPCErrors.Load())),
			mon("out-notifications", u64(st.outNotifies.Load()))))
	}
	return netconfState
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

// opGetSchema returns a module's source (RFC 6022 §3.1).
func (s *Server) opGetSchema(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	idEl := op.Child(NSMonitoring, "identifier")
	if idEl != nil && strings.TrimSpace(idEl.Text) == "" && s.cfg.AllSchemas != nil {
		// MYNO's clients ask with an empty identifier and split the
		// answer on the word "module" (Config.AllSchemas).
		return []*Element{NewLeaf(NSMonitoring, "data", s.cfg.AllSchemas())}, nil
	}
	if idEl == nil || strings.TrimSpace(idEl.Text) == "" {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement, Message: "<identifier> is missing"}).WithInfo("bad-element", "identifier")
	}
	id := strings.TrimSpace(idEl.Text)
	version := ""
	if v := op.Child(NSMonitoring, "version"); v != nil {
		version = strings.TrimSpace(v.Text)
	}
	if f := op.Child(NSMonitoring, "format"); f != nil {
		format := strings.TrimSpace(f.Text)
		if i := strings.LastIndexByte(format, ':'); i >= 0 {
			format = format[i+1:]
		}
		if format != "yang" {
			return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue, Message: fmt.Sprintf("format %q is not available; only yang", format)}).WithInfo("bad-element", "format")
		}
	}
	s.mu.RLock()
	m := s.modules[id]
	s.mu.RUnlock()
	if m == nil || (version != "" && version != m.Revision) {
		return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
			Message: fmt.Sprintf("no schema %q with version %q", id, version)}).WithInfo("bad-element", "identifier")
	}
	return []*Element{NewLeaf(NSMonitoring, "data", m.Source)}, nil
}
