package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
)

// httpWorld is a bridge with an LED device, and a console of it served
// over HTTP: the handlers' rules, without a browser.
type httpWorld struct {
	console *Console
	b       *bridge.Bridge
	srv     *httptest.Server
	hostKey ssh.PublicKey
	dev     *devices.Device
}

func startHTTPWorld(t *testing.T) *httpWorld { return startHTTPWorldOf(t, "led-1") }

// startHTTPWorldOf is startHTTPWorld with the LED's uuid.
func startHTTPWorldOf(t *testing.T, uuid string) *httpWorld {
	t.Helper()
	dir := t.TempDir()
	var users strings.Builder
	for _, u := range [][2]string{{"admin", "admin"}, {"viewer", "read-only"}} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u[0]+"-pw"), bcrypt.MinCost)
		users.WriteString(u[0] + ":" + string(h) + ":" + u[1] + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir,
		RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, Enrolment: access.EnrolOpen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	d := devicetest.Boot(t, devices.Config{Description: desc, UUID: uuid, BrokerURL: b.BrokerURL(), Logger: testenv.Logger(),
		Credentials: client.Credentials{Username: uuid, Password: "console-test-token-of-" + uuid + "-0123456789"}})
	key, err := netconf.LoadOrCreateHostKey(filepath.Join(dir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Bridges: []string{b.NetconfAddr()}, HostKey: ssh.FixedHostKey(key.PublicKey()), Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return &httpWorld{console: c, b: b, srv: srv, hostKey: key.PublicKey(), dev: d}
}

// login returns a client logged in as user, and the session's CSRF token.
func (w *httpWorld) login(t *testing.T, user, password string) (*http.Client, string, *http.Response) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.PostForm(w.srv.URL+"/login", url.Values{"user": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := regexp.MustCompile(`name="csrf" content="([0-9a-f]+)"`).FindSubmatch(body)
	if token == nil {
		return hc, "", resp
	}
	return hc, string(token[1]), resp
}

func (w *httpWorld) get(t *testing.T, hc *http.Client, path string) string {
	t.Helper()
	resp, err := hc.Get(w.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// rpc posts an rpc call as the page's script does.
func (w *httpWorld) rpc(t *testing.T, hc *http.Client, token, path string, form url.Values) (int, rpcResult) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("X-CSRF-Token", token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res rpcResult
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, res
}

// The console's rules over HTTP: the bridge decides logins and rights;
// the cookie is HttpOnly and SameSite=Strict; a request without the CSRF
// token is refused; a read-only user sees no call button, and the bridge
// refuses the rpc when it is forged anyway; results and errors come as
// the bridge gives them.
func TestConsoleOverHTTP(t *testing.T) {
	w := startHTTPWorld(t)
	if _, _, resp := w.login(t, "admin", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", resp.StatusCode)
	}
	admin, token, resp := w.login(t, "admin", "admin-pw")
	if token == "" {
		t.Fatalf("admin login: %d", resp.StatusCode)
	}
	cookie := resp.Request.Response.Header.Get("Set-Cookie")
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, "admin-pw") {
		t.Errorf("session cookie %q", cookie)
	}
	if page := w.get(t, admin, "/devices"); !strings.Contains(page, `data-uuid="led-1"`) {
		t.Fatalf("inventory without led-1:\n%s", page)
	}
	if page := w.get(t, admin, "/devices/led-1"); !strings.Contains(page, `class="call"`) || !strings.Contains(page, `<option value="red">red</option>`) {
		t.Errorf("admin's device page:\n%s", page)
	}
	if code, res := w.rpc(t, admin, token, "/devices/led-1/rpc/setColor", url.Values{"input_1_Color": {"red"}}); code != 200 || res.Retval != "OK" {
		t.Errorf("setColor red: %d %+v", code, res)
	}
	if code, res := w.rpc(t, admin, token, "/devices/led-1/rpc/setColor", url.Values{"input_1_Color": {"purple"}}); code != 200 || res.Error == nil ||
		res.Error.Tag != "invalid-value" || !regexp.MustCompile(`^/([a-z0-9-]+):setColor/([a-z0-9-]+):input_1_Color$`).MatchString(res.Error.Path) {
		t.Errorf("setColor purple: %d %+v", code, res.Error)
	}
	if code, _ := w.rpc(t, admin, "", "/devices/led-1/rpc/ledOn", nil); code != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", code)
	}
	viewer, vtoken, _ := w.login(t, "viewer", "viewer-pw")
	if page := w.get(t, viewer, "/devices/led-1"); strings.Contains(page, `class="call"`) || !strings.Contains(page, "You may not call setColor") {
		t.Errorf("read-only user's device page:\n%s", page)
	}
	if code, res := w.rpc(t, viewer, vtoken, "/devices/led-1/rpc/ledOn", nil); code != 200 || res.Error == nil || res.Error.Tag != "access-denied" {
		t.Errorf("forged ledOn of a read-only user: %d %+v", code, res)
	}
	if code, _ := w.rpc(t, viewer, vtoken, "/updates", url.Values{"device": {"led-1"}}); code != http.StatusNotFound {
		t.Errorf("update without an Update Server key: %d", code)
	}
	// Logged out, the session is gone.
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/logout", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := admin.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if code, _ := w.rpc(t, admin, token, "/devices/led-1/rpc/ledOn", nil); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d", code)
	}
}

// One console over two bridges (a cluster's instances, or separate
// bridges): the inventory lists the devices of both, and an rpc goes to
// the bridge that serves the device, with the user's credentials there.
func TestConsoleOverTwoBridges(t *testing.T) {
	first, second := startHTTPWorldOf(t, "led-a"), startHTTPWorldOf(t, "led-b")
	// A console of both, with each bridge's host key.
	keys := map[string]ssh.PublicKey{}
	for _, w := range []*httpWorld{first, second} {
		keys[w.b.NetconfAddr()] = w.hostKey
	}
	c, err := New(Config{Bridges: []string{first.b.NetconfAddr(), second.b.NetconfAddr()}, Logger: testenv.Logger(),
		HostKey: func(addr string, _ net.Addr, key ssh.PublicKey) error {
			if want, ok := keys[addr]; ok && string(want.Marshal()) == string(key.Marshal()) {
				return nil
			}
			return fmt.Errorf("unknown host key of %s", addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	both := &httpWorld{srv: srv}
	hc, token, _ := both.login(t, "admin", "admin-pw")
	page := both.get(t, hc, "/devices")
	if !strings.Contains(page, `data-uuid="led-a"`) || !strings.Contains(page, `data-uuid="led-b"`) {
		t.Fatalf("inventory of two bridges:\n%s", page)
	}
	if page := both.get(t, hc, "/devices/led-b"); !strings.Contains(page, second.b.NetconfAddr()) {
		t.Errorf("led-b's page does not name its bridge %s", second.b.NetconfAddr())
	}
	before := second.dev.Commands.Load()
	if code, res := both.rpc(t, hc, token, "/devices/led-b/rpc/ledOn", nil); code != 200 || res.Retval == "" {
		t.Errorf("ledOn of led-b: %d %+v", code, res)
	}
	if second.dev.Commands.Load() != before+1 || first.dev.Commands.Load() != 0 {
		t.Errorf("commands: led-a %d, led-b %d (was %d)", first.dev.Commands.Load(), second.dev.Commands.Load(), before)
	}
}

// Sessions and their limits: a login posted from another site is
// refused; a user holds at most maxSessionsPerUser sessions (their oldest
// ends); a NETCONF session that broke under a page (the bridge's idle
// timeout, a restart) is reopened, and the page never shows it.
func TestConsoleSessions(t *testing.T) {
	w := startHTTPWorld(t)
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/login", strings.NewReader(url.Values{"user": {"admin"}, "password": {"admin-pw"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login: %d", resp.StatusCode)
	}
	var clients []*http.Client
	for range maxSessionsPerUser + 1 {
		hc, token, _ := w.login(t, "admin", "admin-pw")
		if token == "" {
			t.Fatal("login failed")
		}
		clients = append(clients, hc)
	}
	if page := w.get(t, clients[0], "/devices"); strings.Contains(page, `id="devices"`) {
		t.Error("the oldest of a user's sessions outlived the limit")
	}
	last := clients[len(clients)-1]
	if page := w.get(t, last, "/devices"); !strings.Contains(page, `data-uuid="led-1"`) {
		t.Fatalf("newest session:\n%s", page)
	}
	// Break the newest session's NETCONF session under it.
	c := w.console
	c.mu.Lock()
	var s *session
	for _, o := range c.sessions {
		if s == nil || o.created.After(s.created) {
			s = o
		}
	}
	c.mu.Unlock()
	s.bridges[0].cur.Load().Close()
	if page := w.get(t, last, "/devices"); !strings.Contains(page, `data-uuid="led-1"`) || strings.Contains(page, `class="error"`) {
		t.Errorf("after the NETCONF session broke:\n%s", page)
	}
}

// A device's configuration, set over NETCONF, shows on its page with what
// the bridge applied (issue 20).
func TestDevicePageShowsConfiguration(t *testing.T) {
	w := startHTTPWorld(t)
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "thermostat.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	devicetest.Boot(t, devices.Config{Description: desc, UUID: "th-c", BrokerURL: w.b.BrokerURL(), Logger: testenv.Logger(),
		Credentials: client.Credentials{Username: "th-c", Password: "console-test-token-of-th-c-0123456789"}})
	module, _ := w.b.ModuleOf("th-c")
	nc, err := gonetconf.DialSSH(w.b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("admin-pw")},
		HostKeyCallback: ssh.FixedHostKey(w.hostKey), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Exec(gonetconf.RawMethod(`<edit-config><target><running/></target><config><configuration xmlns="urn:myno:yang:` + module +
		`"><device><uuid>th-c</uuid><setThreshold><input_1_Operator>gt</input_1_Operator><input_2_Threshold>30</input_2_Threshold></setThreshold></device></configuration></config></edit-config>`)); err != nil {
		t.Fatalf("edit-config: %v", err)
	}
	admin, _, _ := w.login(t, "admin", "admin-pw")
	page := w.get(t, admin, "/devices/th-c")
	for _, want := range []string{`<section id="configuration">`, `<tr data-operation="setThreshold"><td>setThreshold</td><td class="status-applied">applied</td>`, "<td>OK</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the device page lacks %s:\n%s", want, page)
		}
	}
	if page := w.get(t, admin, "/devices/led-1"); strings.Contains(page, `id="configuration"`) {
		t.Error("a device without configuration shows a configuration section")
	}
}
