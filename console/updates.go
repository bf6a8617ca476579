package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	v1 "github.com/myno-bridge/myno/mup/v1"
)

// jobEvent is one device's state in an update job, as pages show it.
type jobEvent struct {
	Job     int    `json:"job"`
	UUID    string `json:"uuid"`
	Percent int    `json:"percent"`
	Slices  string `json:"slices,omitempty"` // "acked/total"
	State   string `json:"state"`            // running, verified, unverified, failed, skipped
	Detail  string `json:"detail,omitempty"` // the failing step and the device's state code, in words
	Version uint32 `json:"version,omitempty"`
	Phases  string `json:"phases,omitempty"`
}

// updatableDevice is a device the updates page offers, with its protocol.
type updatableDevice struct {
	device
	Protocol updateserver.Protocol
}

// job is one update or campaign started from the console.
type job struct {
	ID      int
	User    string
	Started time.Time
	Image   string // file name
	Devices []string

	mu    sync.Mutex
	state map[string]*jobEvent
	done  bool
}

// snapshot is the job's devices' states, in order.
func (j *job) snapshot() []jobEvent {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]jobEvent, 0, len(j.Devices))
	for _, u := range j.Devices {
		out = append(out, *j.state[u])
	}
	return out
}

// Done tells whether every device of the job finished.
func (j *job) Done() bool { j.mu.Lock(); defer j.mu.Unlock(); return j.done }

// jobs is the history of update jobs and the fan-out of their progress
// to the pages listening.
type jobs struct {
	mu     sync.Mutex
	list   []*job
	listen map[chan jobEvent]bool
}

func newJobs() *jobs { return &jobs{listen: map[chan jobEvent]bool{}} }

// maxJobs bounds the history kept.
const maxJobs = 100

func (js *jobs) add(j *job) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j.ID = 1
	for _, o := range js.list {
		j.ID = max(j.ID, o.ID+1)
	}
	for _, e := range j.state {
		e.Job = j.ID
	}
	js.list = append(js.list, j)
	// The oldest finished job gives way; a running one never does.
	if len(js.list) > maxJobs {
		if i := slices.IndexFunc(js.list, (*job).Done); i >= 0 {
			js.list = slices.Delete(js.list, i, i+1)
		}
	}
}

func (js *jobs) get(id int) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, j := range js.list {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// all is the history, newest first.
func (js *jobs) all() []*job {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := slices.Clone(js.list)
	slices.Reverse(out)
	return out
}

// subscribe returns a channel of progress events and its cancel. The
// channel is closed when the listener fell behind by a whole buffer: its
// page reconnects and gets the job's state afresh (events?job=N), so
// nothing is lost and nobody waits on a page that stopped reading.
func (js *jobs) subscribe() (<-chan jobEvent, func()) {
	ch := make(chan jobEvent, 256)
	js.mu.Lock()
	js.listen[ch] = true
	js.mu.Unlock()
	return ch, func() {
		js.mu.Lock()
		if js.listen[ch] {
			delete(js.listen, ch)
			close(ch)
		}
		js.mu.Unlock()
	}
}

// publish sends ev to every listener without blocking.
func (js *jobs) publish(ev jobEvent, _ bool) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for ch := range js.listen {
		select {
		case ch <- ev:
		default:
			delete(js.listen, ch)
			close(ch)
		}
	}
}

// update runs one device's progress into the job.
func (j *job) set(js *jobs, uuid string, f func(*jobEvent), final bool) {
	j.mu.Lock()
	f(j.state[uuid])
	ev := *j.state[uuid]
	j.mu.Unlock()
	js.publish(ev, final)
}

func (c *Console) updatesPage(w http.ResponseWriter, r *http.Request, s *session) {
	devs, errs := s.devices()
	// The devices whose modules take updates and whose rpcs the user may
	// run.
	var updatable []updatableDevice
	for _, d := range devs {
		mod, err := c.modules.get(&d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p, ok := mod.Updatable(); ok && s.mayUpdate(&d) {
			updatable = append(updatable, updatableDevice{device: d, Protocol: p})
		}
	}
	var categories []string
	for _, d := range updatable {
		if !slices.Contains(categories, d.Category) {
			categories = append(categories, d.Category)
		}
	}
	slices.Sort(categories)
	var mine []*job
	for _, j := range c.jobs.all() {
		if j.User == s.user {
			mine = append(mine, j)
		}
	}
	c.render(w, "updates.html", map[string]any{"S": s, "Devices": updatable, "Errors": errs, "Jobs": mine, "Categories": categories,
		"CanUpdate": c.cfg.Update.ServerKey != nil && len(updatable) > 0, "CanSign": c.cfg.Update.VendorKey != nil})
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	j := c.jobs.get(id)
	if j == nil || j.User != s.user { // each user sees their own updates
		w.WriteHeader(http.StatusNotFound)
		c.render(w, "error.html", map[string]any{"S": s, "Error": "no such update"})
		return
	}
	c.render(w, "job.html", map[string]any{"S": s, "Job": j, "States": j.snapshot()})
}

// startUpdate takes the image, one or two vendor manifests (COSE and
// MUP v1, told apart by their content) and the devices, and runs the
// updates as the user: each worker's NETCONF session is the user's, so
// the bridge decides what they may do.
func (c *Console) startUpdate(w http.ResponseWriter, r *http.Request, s *session) {
	if c.cfg.Update.ServerKey == nil {
		http.Error(w, "this console has no Update Server key", http.StatusNotFound)
		return
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		if !tooLarge(w, err) {
			http.Error(w, "the form: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	devices := r.MultipartForm.Value["device"]
	// A category stands for its devices the user may update (a campaign).
	if cats := r.MultipartForm.Value["category"]; len(cats) > 0 && cats[0] != "" {
		all, _ := s.devices()
		for _, d := range all {
			if d.Category == cats[0] && !slices.Contains(devices, d.UUID) {
				if mod, err := c.modules.get(&d); err == nil {
					if _, ok := mod.Updatable(); ok && s.mayUpdate(&d) {
						devices = append(devices, d.UUID)
					}
				}
			}
		}
	}
	seen := map[string]bool{}
	devices = slices.DeleteFunc(slices.Clone(devices), func(u string) bool { dup := seen[u]; seen[u] = true; return dup })
	if len(devices) == 0 {
		http.Error(w, "pick at least one device, or a category with devices", http.StatusBadRequest)
		return
	}
	// Every device must be one the user may update, on a bridge of theirs
	// (the devices are listed once, not once per device).
	all, listErrs := s.devices()
	known := map[string]*device{}
	for i := range all {
		if known[all[i].UUID] == nil {
			known[all[i].UUID] = &all[i]
		}
	}
	byBridge := map[*bridgeConn][]string{}
	var targets []*device
	for _, u := range devices {
		d := known[u]
		if d == nil {
			http.Error(w, fmt.Sprintf("no device %q on any bridge %v", u, errors.Join(listErrs...)), http.StatusBadRequest)
			return
		}
		targets = append(targets, d)
		if !s.mayUpdate(d) {
			http.Error(w, fmt.Sprintf("user %s may not update %s", s.user, u), http.StatusForbidden)
			return
		}
		mod, err := c.modules.get(d)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if _, ok := mod.Updatable(); !ok {
			http.Error(w, fmt.Sprintf("%s takes no firmware update (its module %s has no MUP rpcs)", u, d.Module), http.StatusBadRequest)
			return
		}
		byBridge[d.bridge] = append(byBridge[d.bridge], u)
	}
	image, name, err := formFile(r, "image")
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, "the image: "+err.Error(), code)
		return
	}
	tmpl := updateserver.UpdateConfig{Image: image, ServerKey: c.cfg.Update.ServerKey, MQTTURL: c.cfg.Update.MQTTURL,
		MQTTCredentials: c.cfg.Update.Credentials, DeviceCA: c.cfg.Update.DeviceCA, Observer: c.metrics}
	if r.PostFormValue("sign") != "" {
		// The vendor key is the console's, not the bridge's to guard:
		// signing takes rights read now, on every device, and fails
		// closed.
		for _, d := range targets {
			if !s.mayAct(d) {
				http.Error(w, fmt.Sprintf("user %s may not have images signed for %s", s.user, d.UUID), http.StatusForbidden)
				return
			}
		}
		if err := c.signManifests(r, image, &tmpl); err != nil {
			http.Error(w, "signing: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	for _, fh := range r.MultipartForm.File["manifest"] {
		f, err := fh.Open()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := readAtMost(f, maxUpload)
		f.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if _, err := v1.DecodeVendorFile(b); err == nil {
			tmpl.V1Manifest = b
		} else if _, err := mup.DecodeSignedVendorManifest(b); err == nil {
			tmpl.VendorSigned = b
		} else {
			http.Error(w, fmt.Sprintf("manifest %s is neither a COSE vendor manifest nor a MUP v1 one", fh.Filename), http.StatusBadRequest)
			return
		}
	}
	j := &job{User: s.user, Started: time.Now(), Image: name, Devices: devices, state: map[string]*jobEvent{}}
	for _, u := range devices {
		j.state[u] = &jobEvent{UUID: u, State: "waiting"}
	}
	// Listed only once whole: a page may show it at once.
	c.jobs.add(j)
	c.cfg.Logger.Info("console update", "user", s.user, "job", j.ID, "devices", len(devices))
	// The console owns the job's goroutines; none starts once it closes.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		http.Error(w, "the console is shutting down", http.StatusServiceUnavailable)
		return
	}
	var campaigns sync.WaitGroup
	for b, uuids := range byBridge {
		campaigns.Add(1)
		c.tasks.Go(func() {
			defer campaigns.Done()
			c.runCampaign(j, s, b, uuids, tmpl)
		})
	}
	c.tasks.Go(func() {
		campaigns.Wait()
		j.mu.Lock()
		j.done = true
		j.mu.Unlock()
		if c.cfg.HistoryFile != "" {
			c.jobs.mu.Lock() // one writer of the file at a time
			all := slices.Clone(c.jobs.list)
			err := appendHistory(c.cfg.HistoryFile, j, all)
			c.jobs.mu.Unlock()
			if err != nil {
				c.cfg.Logger.Warn("console: update history not saved", "file", c.cfg.HistoryFile, "job", j.ID, "err", err)
			}
		}
	})
	http.Redirect(w, r, fmt.Sprintf("/updates/%d", j.ID), http.StatusSeeOther)
}

func (c *Console) runCampaign(j *job, s *session, b *bridgeConn, uuids []string, tmpl updateserver.UpdateConfig) {
	updateserver.Campaign(c.ctx, updateserver.CampaignConfig{Devices: uuids, Update: tmpl,
		Dial: func(context.Context) (*gonetconf.Session, error) {
			return gonetconf.DialSSHTimeout(b.addr, s.sshConfig(), ioDeadline)
		},
		OnProgress: func(uuid string, acked, total, bytes int) {
			// One event per percent, not per slice: pages get at most
			// about 100 per device.
			percent := 0
			if total > 0 {
				percent = 100 * acked / total
			}
			j.mu.Lock()
			e := j.state[uuid]
			changed := e.State != "running" || e.Percent != percent
			e.Slices = fmt.Sprintf("%d/%d", acked, total)
			j.mu.Unlock()
			if changed {
				j.set(c.jobs, uuid, func(e *jobEvent) { e.State, e.Percent = "running", percent }, false)
			}
		},
		OnResult: func(r updateserver.DeviceResult) {
			j.set(c.jobs, r.UUID, func(e *jobEvent) {
				if r.Result != nil {
					e.Version = r.Result.Version
					e.Phases = phases(r.Result)
				}
				var ue *updateserver.UpdateError
				switch {
				case r.Skipped:
					e.State, e.Detail = "skipped", r.Err.Error()
				case r.Err != nil:
					e.State, e.Detail = "failed", r.Err.Error()
					if errors.As(r.Err, &ue) && ue.State != "" {
						e.Detail = fmt.Sprintf("%s (%s)", r.Err.Error(), stateInWords(ue.State))
					}
				case r.Result.Verdict == updateserver.Verified:
					e.State, e.Percent, e.Detail = "verified", 100, "receipt signed by "+r.Result.Signer
				default:
					e.State, e.Percent, e.Detail = "unverified", 100, updateserver.UnverifiedReason
					if r.Result.Note != "" {
						e.Detail += "; " + r.Result.Note
					}
				}
			}, true)
		}})
}

// signManifests signs the image's vendor manifests in both protocols
// with the configured vendor key, from the form's app-id, version and
// old-version.
func (c *Console) signManifests(r *http.Request, image []byte, tmpl *updateserver.UpdateConfig) error {
	key := c.cfg.Update.VendorKey
	if key == nil {
		return errors.New("this console holds no vendor key: upload signed manifests")
	}
	version, err := strconv.ParseUint(r.PostFormValue("version"), 10, 31)
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	old, err := strconv.ParseUint(r.PostFormValue("old-version"), 10, 31)
	if err != nil {
		return fmt.Errorf("old version: %w", err)
	}
	appID := r.PostFormValue("app-id")
	digest := sha256.Sum256(image)
	c.cfg.Logger.Info("console signs an image", "app", appID, "version", version, "old_version", old, "sha256", hex.EncodeToString(digest[:]), "bytes", len(image))
	if tmpl.VendorSigned, err = mup.SignVendorManifest(mup.NewVendorManifest(image, appID, uint32(version), uint32(old), 0), key); err != nil {
		return err
	}
	m, err := v1.NewManifest(image, appID, 0, uint32(version), uint32(old))
	if err != nil {
		return err
	}
	if err := m.SignInner(key); err != nil {
		return err
	}
	tmpl.V1Manifest, err = m.EncodeVendorFile()
	return err
}

func formFile(r *http.Request, name string) ([]byte, string, error) {
	f, fh, err := r.FormFile(name)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	b, err := readAtMost(f, maxUpload)
	return b, fh.Filename, err
}

// errTooLarge is a file over maxUpload: refused, never cut short (a cut
// image could be signed and sent).
var errTooLarge = fmt.Errorf("file over %d bytes", maxUpload)

func readAtMost(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err == nil && int64(len(b)) > n {
		return nil, errTooLarge
	}
	return b, err
}

// phases renders a result's phase times in their order.
func phases(r *updateserver.Result) string {
	var s string
	for _, p := range r.OrderedPhases() {
		s += fmt.Sprintf("%s %v ", p.Name, p.Duration.Round(time.Millisecond))
	}
	return s
}

// stateInWords says what a MUP state code means (mup/PROTOCOL.md; MUP v1:
// MUP-V1.md §5).
func stateInWords(state string) string {
	if w, ok := stateWords[state]; ok {
		return w
	}
	return "device state " + state
}

var stateWords = map[string]string{
	mup.StateNoop:             "nothing to do",
	mup.StateError:            "the device failed",
	mup.StateManifestInvalid:  "the manifest is not valid",
	mup.StateWrongAppID:       "the image is for another application",
	mup.StateInvalidNonce:     "the manifest is not for this update (stale or replayed nonce)",
	mup.StateOuterSignInvalid: "the Update Server's signature does not verify",
	mup.StateInnerSignInvalid: "the vendor's signature does not verify",
	mup.StateInvalidVersion:   "the device runs this version or a newer one",
	mup.StateSlotInUse:        "the update slot is in use",
	mup.StateImageTooBig:      "the image does not fit the slot",
	mup.StateImageInvalid:     "the image does not match its manifest",
	string(v1.AnswerOK):       "MUP v1: the device refused the manifest (a signature does not verify)",
	string(v1.AnswerError):    "MUP v1: the device refused",
}
