package console

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/mqtt/client"
)

//go:embed web
var webFiles embed.FS

// Config configures a console.
type Config struct {
	// Bridges are the NETCONF addresses (host:port) of the bridges; the
	// console shows the devices of all of them.
	Bridges []string
	// HostKey verifies each bridge's SSH host key (required: host keys
	// are verified).
	HostKey ssh.HostKeyCallback
	// Update is what the Update Server in the console uses; without a
	// ServerKey there is no update page.
	Update UpdateSettings
	// E2E, with a Manager, adds the page that renews devices'
	// certificates and keys.
	E2E E2ESettings
	// Secure marks the session cookie Secure: set it when the console is
	// served over HTTPS.
	Secure bool
	// SessionIdle ends a session unused this long; default 30 minutes.
	SessionIdle time.Duration
	// MaxSessions bounds the sessions held at once; default 64.
	MaxSessions int
	// HistoryFile, when set, keeps the update history across restarts
	// (one JSON line per finished update, the last 100 read at start).
	HistoryFile string
	// MetricsListen, when set, is the address (host:port) where the
	// console serves /metrics (MetricsHandler: updates, their phases, E2E
	// exchanges) from New until Close. It asks for no login: bind it to
	// loopback, or where only the scraper reaches. Handler never serves
	// /metrics.
	MetricsListen string
	Logger        *slog.Logger
}

// UpdateSettings are the Update Server's own credentials.
type UpdateSettings struct {
	MQTTURL     string
	Credentials client.Credentials
	ServerKey   *ecdsa.PrivateKey
	DeviceCA    *x509.Certificate
	// VendorKey, when set, lets the update page sign the manifests of an
	// uploaded image itself (both protocols), instead of taking signed
	// ones. Keep it unset where the vendor key must stay offline.
	VendorKey *ecdsa.PrivateKey
}

// Console is the web console. Its goroutines (update jobs, the metrics
// listener) end with Close.
type Console struct {
	cfg   Config
	pages *template.Template
	mux   *http.ServeMux

	metrics    *consoleMetrics
	metricsLn  net.Listener // Config.MetricsListen; nil when off
	metricsSrv *http.Server
	unobserve  func() // ends the E2E manager's observing; nil without one

	ctx    context.Context
	cancel context.CancelFunc
	tasks  sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	sessions map[string]*session
	jobs     *jobs
	modules  *moduleCache
	renewed  renewals
}

// New makes a console.
func New(cfg Config) (*Console, error) {
	if len(cfg.Bridges) == 0 {
		return nil, errors.New("console: no bridge")
	}
	if cfg.HostKey == nil {
		return nil, errors.New("console: no host key callback (host keys are verified)")
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := template.New("").Funcs(templateFuncs).ParseFS(webFiles, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	c := &Console{cfg: cfg, pages: pages, sessions: map[string]*session{}, jobs: newJobs(), modules: newModuleCache(),
		renewed: renewals{certs: map[string]*x509.Certificate{}}, metrics: newMetrics(cfg.E2E.Manager)}
	if c.jobs.list, err = loadHistory(cfg.HistoryFile); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.listenMetrics(); err != nil {
		c.cancel()
		return nil, fmt.Errorf("console: metrics: %w", err)
	}
	c.routes()
	// The manager's handshakes and renewals are counted (those of the
	// renewals run here, and of anyone else who shares the manager).
	if m := cfg.E2E.Manager; m != nil {
		c.unobserve = m.AddObserver(c.metrics)
	}
	c.serveMetrics()
	// Sessions left unused end even if their cookie never comes back.
	c.tasks.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
				c.expire()
			}
		}
	})
	return c, nil
}

// Handler serves the console, with the headers every answer carries.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		c.mux.ServeHTTP(w, r)
	})
}

// Close ends every session and waits for the update jobs, which it
// cancels, and shuts the metrics listener down. Requests that come after
// it are answered 503.
func (c *Console) Close() {
	c.stopMetrics()
	if c.unobserve != nil {
		c.unobserve()
	}
	c.mu.Lock()
	c.closed = true
	ended := make([]*session, 0, len(c.sessions))
	for id, s := range c.sessions {
		ended = append(ended, s)
		delete(c.sessions, id)
	}
	c.mu.Unlock()
	c.cancel()
	for _, s := range ended { // outside the lock: closing never waits on a bridge
		s.close()
	}
	c.tasks.Wait()
}

// expire ends the sessions unused longer than SessionIdle, and those
// older than maxSessionAge.
func (c *Console) expire() {
	var ended []*session
	c.mu.Lock()
	for id, s := range c.sessions {
		if time.Since(s.lastUsed) > c.cfg.SessionIdle || time.Since(s.created) > maxSessionAge {
			ended = append(ended, s)
			delete(c.sessions, id)
		}
	}
	c.mu.Unlock()
	for _, s := range ended {
		s.close()
	}
}

// Session limits: a session lives at most maxSessionAge however used,
// and a user holds at most maxSessionsPerUser (their oldest gives way).
const (
	maxSessionAge      = 12 * time.Hour
	maxSessionsPerUser = 4
)

func (c *Console) routes() {
	c.mux = http.NewServeMux()
	static, _ := fs.Sub(webFiles, "web/static")
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/devices", http.StatusSeeOther) })
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.withSession(c.logout))
	c.mux.HandleFunc("GET /devices", c.withSession(c.inventory))
	c.mux.HandleFunc("GET /devices/{uuid}", c.withSession(c.devicePage))
	c.mux.HandleFunc("POST /devices/{uuid}/rpc/{rpc}", c.withSession(c.callRPC))
	c.mux.HandleFunc("GET /updates", c.withSession(c.updatesPage))
	c.mux.HandleFunc("POST /updates", c.withSession(c.startUpdate))
	c.mux.HandleFunc("GET /updates/{id}", c.withSession(c.jobPage))
	c.mux.HandleFunc("GET /events", c.withSession(c.events))
	c.mux.HandleFunc("GET /e2e", c.withSession(c.e2ePage))
	c.mux.HandleFunc("POST /e2e/renew", c.withSession(c.renew))
}

const cookieName = "myno_console"

// newID is 32 random bytes in hex: session ids and CSRF tokens.
func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withSession runs h for a logged-in session; a request without one goes
// to the login page (a page) or gets 401 (anything else). Every request
// that is not GET must carry the session's CSRF token, in the form field
// or the X-CSRF-Token header (the cookie is SameSite=Strict too).
func (c *Console) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// An image and its manifests at most; a larger body is refused
			// while it is read (413). Files past 1 MiB go to disk, not RAM.
			r.Body = http.MaxBytesReader(w, r.Body, maxUpload+1<<20)
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				var err error
				if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
					err = r.ParseMultipartForm(1 << 20)
				} else {
					err = r.ParseForm()
				}
				if tooLarge(w, err) {
					return
				}
				token = r.PostFormValue("csrf") // the body only, never the URL
			}
			if subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) != 1 {
				http.Error(w, "bad or missing CSRF token", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	}
}

// tooLarge answers 413 for a body over the limit, and tells whether it
// did.
func tooLarge(w http.ResponseWriter, err error) bool {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		http.Error(w, fmt.Sprintf("request body over %d bytes", mb.Limit), http.StatusRequestEntityTooLarge)
		return true
	}
	return false
}

// session returns the request's live session, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	s := c.sessions[ck.Value]
	expired := s != nil && (time.Since(s.lastUsed) > c.cfg.SessionIdle || time.Since(s.created) > maxSessionAge)
	if expired {
		delete(c.sessions, ck.Value)
	} else if s != nil {
		s.lastUsed = time.Now()
	}
	c.mu.Unlock()
	if expired {
		s.close()
		return nil
	}
	return s
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, "login.html", map[string]any{"Bridges": c.cfg.Bridges})
}

// login opens the user's NETCONF sessions to every bridge with the
// credentials given; the bridges decide. At least one must accept.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	// A login posted from another site (login CSRF) is refused: browsers
	// say where a request comes from (Fetch Metadata).
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		http.Error(w, "a login must come from the console's own page", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if tooLarge(w, r.ParseForm()) {
		return
	}
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	s, err := openSession(r.Context(), c.cfg, user, password)
	if err != nil {
		// The details are the operator's; the page says only that.
		c.cfg.Logger.Warn("console login refused", "user", user, "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, "login.html", map[string]any{"Bridges": c.cfg.Bridges, "Error": "Login refused: the bridges did not accept this user name and password, or could not be reached.", "User": user})
		return
	}
	var ended []*session
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.close()
		http.Error(w, "the console is shutting down", http.StatusServiceUnavailable)
		return
	}
	// The session of this browser's previous login ends.
	if ck, err := r.Cookie(cookieName); err == nil && c.sessions[ck.Value] != nil {
		ended = append(ended, c.sessions[ck.Value])
		delete(c.sessions, ck.Value)
	}
	// A user holds at most maxSessionsPerUser: their oldest gives way.
	var mine []*session
	for _, o := range c.sessions {
		if o.user == user {
			mine = append(mine, o)
		}
	}
	if len(mine) >= maxSessionsPerUser {
		slices.SortFunc(mine, func(a, b *session) int { return a.created.Compare(b.created) })
		for _, o := range mine[:len(mine)-maxSessionsPerUser+1] {
			ended = append(ended, o)
			delete(c.sessions, o.id)
		}
	}
	full := len(c.sessions) >= c.cfg.MaxSessions
	if !full {
		c.sessions[s.id] = s
	}
	c.mu.Unlock()
	for _, o := range ended {
		o.close()
	}
	if full {
		// Nobody else's session is ended to make room.
		s.close()
		http.Error(w, "the console holds as many sessions as it may; try again later", http.StatusServiceUnavailable)
		return
	}
	c.cfg.Logger.Info("console login", "user", user, "bridges", len(s.bridges))
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: "/", HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode,
		MaxAge: int(maxSessionAge / time.Second)})
	http.Redirect(w, r, "/devices", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.mu.Lock()
	delete(c.sessions, s.id)
	c.mu.Unlock()
	s.close()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// render executes a page; an error after the first byte can only be
// logged.
func (c *Console) render(w http.ResponseWriter, page string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.pages.ExecuteTemplate(w, page, data); err != nil {
		c.cfg.Logger.Warn("console page", "page", page, "err", err)
	}
}

// templateFuncs are the pages' helpers.
var templateFuncs = template.FuncMap{
	// dict makes a map of key, value pairs, to pass several values to a
	// template.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, errors.New("dict: odd arguments")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, errors.New("dict: a key is not a string")
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}
