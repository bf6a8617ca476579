package console

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/mup/updateserver"
)

// selectorLeaf is the device selector of every generated rpc.
const selectorLeaf = "uuidInput"

// inventory lists every device of every bridge, filtered by the query
// (q: a substring of uuid, category or module; category; state
// online|offline).
func (c *Console) inventory(w http.ResponseWriter, r *http.Request, s *session) {
	devs, errs := s.devices()
	q, category, state := strings.ToLower(r.URL.Query().Get("q")), r.URL.Query().Get("category"), r.URL.Query().Get("state")
	var categories []string
	shown := devs[:0:0]
	for _, d := range devs {
		if !slices.Contains(categories, d.Category) {
			categories = append(categories, d.Category)
		}
		switch {
		case q != "" && !strings.Contains(strings.ToLower(d.UUID+" "+d.Category+" "+d.Module), q),
			category != "" && d.Category != category,
			state == "online" && !d.Online, state == "offline" && d.Online:
			continue
		}
		shown = append(shown, d)
	}
	slices.Sort(categories)
	slices.SortFunc(shown, func(a, b device) int { return strings.Compare(a.UUID, b.UUID) })
	c.render(w, "devices.html", map[string]any{"S": s, "Devices": shown, "Errors": errs, "Categories": categories,
		"Q": r.URL.Query().Get("q"), "Category": category, "State": state, "CanUpdate": c.cfg.Update.ServerKey != nil})
}

// rpcView is an rpc form as the device page shows it.
type rpcView struct {
	RPCForm
	Allowed bool
}

// devicePage shows a device, its sensors and its rpcs as forms.
func (c *Console) devicePage(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := s.find(r.PathValue("uuid"))
	if err != nil {
		w.WriteHeader(http.StatusNotFound)
		c.render(w, "error.html", map[string]any{"S": s, "Error": err.Error()})
		return
	}
	mod, err := c.modules.get(d)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		c.render(w, "error.html", map[string]any{"S": s, "Error": err.Error()})
		return
	}
	var rpcs []rpcView
	for _, f := range mod.RPCs {
		rpcs = append(rpcs, rpcView{RPCForm: f, Allowed: s.mayExec(d, f.Name)})
	}
	_, updatable := mod.Updatable()
	c.render(w, "device.html", map[string]any{"S": s, "D": d, "Module": mod, "RPCs": rpcs,
		"CanUpdate": c.cfg.Update.ServerKey != nil && updatable && s.mayUpdate(d)})
}

// rpcResult is what the page shows of an rpc's reply: the retval and
// outputs, or the rpc-error as the bridge gave it.
type rpcResult struct {
	Retval  string              `json:"retval,omitempty"`
	Outputs []updateserver.Leaf `json:"outputs,omitempty"`
	Error   *rpcErrorView       `json:"error,omitempty"`
}

type rpcErrorView struct {
	Tag     string `json:"tag"`
	AppTag  string `json:"appTag,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message,omitempty"`
	Type    string `json:"type,omitempty"`
}

// callRPC runs one rpc of the device with the form's values, in the
// module's namespace, with the user's NETCONF session: the bridge checks
// the values and the user's rights. A binary input comes as a file and
// is sent base64 (RFC 7950 §9.8.2). Fields left empty are not sent (the
// bridge says which mandatory one is missing).
func (c *Console) callRPC(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := s.find(r.PathValue("uuid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	mod, err := c.modules.get(d)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	i := slices.IndexFunc(mod.RPCs, func(f RPCForm) bool { return f.Name == r.PathValue("rpc") })
	if i < 0 {
		http.Error(w, "no such rpc", http.StatusNotFound)
		return
	}
	if err := r.ParseMultipartForm(maxUpload); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var add func(fields []Field, prefix string) ([]updateserver.Leaf, error)
	add = func(fields []Field, prefix string) ([]updateserver.Leaf, error) {
		var inputs []updateserver.Leaf
		for _, f := range fields {
			name := prefix + f.Name
			switch {
			case f.Selector:
				inputs = append(inputs, updateserver.Leaf{Name: f.Name, Value: d.UUID})
			case f.Kind == FieldGroup:
				children, err := add(f.Fields, name+"/")
				if err != nil {
					return nil, err
				}
				if len(children) > 0 {
					inputs = append(inputs, updateserver.Leaf{Name: f.Name, Children: children})
				}
			case f.Kind == FieldBinary:
				file, _, err := r.FormFile(name)
				if errors.Is(err, http.ErrMissingFile) {
					continue
				}
				if err != nil {
					return nil, err
				}
				b, err := io.ReadAll(io.LimitReader(file, maxUpload))
				file.Close()
				if err != nil {
					return nil, err
				}
				inputs = append(inputs, updateserver.Leaf{Name: f.Name, Value: base64.StdEncoding.EncodeToString(b)})
			default:
				if v, ok := r.Form[name]; ok && v[0] != "" {
					inputs = append(inputs, updateserver.Leaf{Name: f.Name, Value: v[0]})
				}
			}
		}
		return inputs, nil
	}
	inputs, err := add(mod.RPCs[i].Fields, "")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out *updateserver.Output
	err = d.bridge.use(func(_ *gonetconf.Session, c *updateserver.Client) (err error) {
		out, err = c.Call(mod.Namespace, mod.RPCs[i].Name, inputs...)
		return err
	})
	var res rpcResult
	var re *updateserver.RPCError
	switch {
	case errors.As(err, &re):
		res.Error = &rpcErrorView{Tag: re.Tag, AppTag: re.AppTag, Path: re.Path, Message: re.Message, Type: re.Type}
	case err != nil:
		res.Error = &rpcErrorView{Tag: "console", Message: err.Error()}
	default:
		res.Retval, res.Outputs = out.Retval, out.Leaves
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// yangLibraryFilter selects one module of the yang-library's module set
// (RFC 8525 §3, RFC 6241 §6.2.5).
type yangLibraryFilter struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 get"`
	Filter  struct {
		Type    string `xml:"type,attr"`
		Library struct {
			XMLName xml.Name `xml:"urn:ietf:params:xml:ns:yang:ietf-yang-library yang-library"`
			Name    string   `xml:"module-set>module>name"`
		}
	} `xml:"filter"`
}

// libraryModule finds module in the bridge's yang-library (RFC 8525): the
// console takes only modules the bridge announces, and their revision.
func libraryModule(nc *gonetconf.Session, module string) (revision, namespace string, err error) {
	var req yangLibraryFilter
	req.Filter.Type = "subtree"
	req.Filter.Library.Name = module
	op, err := xml.Marshal(req)
	if err != nil {
		return "", "", err
	}
	reply, err := nc.Exec(gonetconf.RawMethod(op))
	if err != nil {
		return "", "", fmt.Errorf("yang-library: %w", err)
	}
	var r struct {
		Modules []struct {
			Name      string `xml:"name"`
			Revision  string `xml:"revision"`
			Namespace string `xml:"namespace"`
		} `xml:"data>yang-library>module-set>module"`
	}
	if err := xml.Unmarshal([]byte(reply.RawReply), &r); err != nil {
		return "", "", fmt.Errorf("%w: yang-library: %w", updateserver.ErrBadReply, err)
	}
	for _, m := range r.Modules {
		if m.Name == module {
			return m.Revision, m.Namespace, nil
		}
	}
	return "", "", fmt.Errorf("%w: the bridge's yang-library announces no module %s", updateserver.ErrBadReply, module)
}

// maxUpload bounds a form's files: a firmware image and its manifests.
const maxUpload = 16 << 20

// moduleCache keeps the modules the console parsed, by bridge and name:
// a module's name carries its shape, so its text never changes.
type moduleCache struct {
	mu      sync.Mutex
	modules map[string]*Module
}

func newModuleCache() *moduleCache { return &moduleCache{modules: map[string]*Module{}} }

// get returns the device's module, fetched with get-schema on the user's
// session and parsed with goyang, once per bridge and module.
func (mc *moduleCache) get(d *device) (*Module, error) {
	key := d.bridge.addr + " " + d.Module
	mc.mu.Lock()
	m := mc.modules[key]
	mc.mu.Unlock()
	if m != nil {
		return m, nil
	}
	var revision, namespace, source string
	err := d.bridge.read(func(nc *gonetconf.Session, c *updateserver.Client) (err error) {
		if revision, namespace, err = libraryModule(nc, d.Module); err != nil {
			return err
		}
		source, err = c.Schema(d.Module)
		return err
	})
	if err != nil {
		return nil, err
	}
	if namespace != d.Namespace {
		return nil, fmt.Errorf("module %s: the yang-library names namespace %q, its devices list %q", d.Module, namespace, d.Namespace)
	}
	if m, err = ParseModule(d.Module, source, selectorLeaf); err != nil {
		return nil, err
	}
	m.Revision = revision
	mc.mu.Lock()
	mc.modules[key] = m
	mc.mu.Unlock()
	return m, nil
}
