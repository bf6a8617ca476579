package console

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
)

// E2ESettings give the console the manager side of the E2E channel
// (mup/e2e): renewing a device's certificate and key through the broker.
type E2ESettings struct {
	// Manager is started, with its MQTT connection, by the caller, and
	// issues certificates (it holds the CA key).
	Manager *manager.Manager
	// CertDir, when set, holds devices' certificates as <uuid>.crt: the
	// page shows their serial and expiry until a renewal here replaces
	// them.
	CertDir string
}

// certView is a device's certificate as the E2E page shows it.
type certView struct {
	UUID     string `json:"uuid"`
	Serial   string `json:"serial,omitempty"`
	NotAfter string `json:"notAfter,omitempty"`
	Source   string `json:"source,omitempty"` // "file" or "renewed"
	// A renewal's outcome.
	Handshake string `json:"handshake,omitempty"`
	Renewal   string `json:"renewal,omitempty"`
	Error     string `json:"error,omitempty"`
}

// renewals keeps the certificates this console issued, by device.
type renewals struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

func certOf(c *x509.Certificate, uuid, source string) certView {
	return certView{UUID: uuid, Serial: c.SerialNumber.Text(16), NotAfter: c.NotAfter.UTC().Format(time.RFC3339), Source: source}
}

// e2ePage lists the devices with the certificate the console knows of
// each, and a renew button for users who may update them.
func (c *Console) e2ePage(w http.ResponseWriter, r *http.Request, s *session) {
	if c.cfg.E2E.Manager == nil {
		w.WriteHeader(http.StatusNotFound)
		c.render(w, "error.html", map[string]any{"S": s, "Error": "this console has no E2E manager"})
		return
	}
	devs, errs := s.devices()
	var rows []certView
	may := map[string]bool{}
	for _, d := range devs {
		rows = append(rows, c.certView(d.UUID))
		may[d.UUID] = s.mayUpdate(&d)
	}
	slices.SortFunc(rows, func(a, b certView) int { return strings.Compare(a.UUID, b.UUID) })
	c.render(w, "e2e.html", map[string]any{"S": s, "Rows": rows, "May": may, "Errors": errs, "Manager": c.cfg.E2E.Manager.Name()})
}

// certView is the certificate of uuid the console knows: the one it
// issued last, else the file in CertDir.
func (c *Console) certView(uuid string) certView {
	c.renewed.mu.Lock()
	cert := c.renewed.certs[uuid]
	c.renewed.mu.Unlock()
	if cert != nil {
		return certOf(cert, uuid, "renewed")
	}
	if c.cfg.E2E.CertDir != "" && e2e.CheckName(uuid) == nil {
		cert, err := mup.ReadCertificate(filepath.Join(c.cfg.E2E.CertDir, uuid+".crt"))
		if err == nil {
			return certOf(cert, uuid, "file")
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return certView{UUID: uuid, Error: err.Error()}
		}
	}
	return certView{UUID: uuid}
}

// renew renews one device's credentials over the E2E channel (paper
// Fig. 6 and 7): a user who may update the device may renew it.
func (c *Console) renew(w http.ResponseWriter, r *http.Request, s *session) {
	if c.cfg.E2E.Manager == nil {
		http.Error(w, "this console has no E2E manager", http.StatusNotFound)
		return
	}
	d, err := s.find(r.FormValue("device"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	// No bridge checks a renewal: the rights are read now, and without
	// rules shown the answer is no (fail closed).
	if !s.mayAct(d) {
		http.Error(w, "user "+s.user+" may not renew "+d.UUID, http.StatusForbidden)
		return
	}
	c.cfg.Logger.Info("console renewal", "user", s.user, "device", d.UUID)
	res := c.cfg.E2E.Manager.RenewAll(r.Context(), manager.RenewAllConfig{Devices: []string{d.UUID}})[0]
	view := certView{UUID: d.UUID, Handshake: res.Handshake.String()}
	switch {
	case res.Err != nil:
		view.Error = res.Err.Error()
	default:
		c.renewed.mu.Lock()
		c.renewed.certs[d.UUID] = res.Renewal.Cert
		c.renewed.mu.Unlock()
		renewed := certOf(res.Renewal.Cert, d.UUID, "renewed")
		renewed.Handshake, renewed.Renewal = view.Handshake, res.Renewal.Phase.String()
		view = renewed
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(view)
}
