package console_test

// The console in a real browser (headless Chromium, driven by chromedp):
// a bridge with its embedded broker, virtual devices, the console served
// over HTTP, and the pages used as an operator uses them. The browser is
// Debian's chromium, a peer tool like mosquitto: without it the tests
// skip, and fail under CI (testenv.Tool).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/console"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/netconf"
)

const (
	ledUUID = "led-1" // led-color.jsonld: ledOn, ledOff, setColor; a brightness sensor
	mupUUID = "mup-1" // mup-device.jsonld at firmware version 1, no receipt declared

	adminPassword  = "pw"
	viewerPassword = "viewer-pw"

	// browserWait bounds every wait on the browser: page loads, queries,
	// and the conditions polled in the page.
	browserWait = 20 * time.Second

	// imageSize is the size of the firmware image the tests upload.
	imageSize = 2 << 20
)

// browserWorld is a bridge with an LED and a MUP device, the console in
// front of it, and a headless Chromium.
type browserWorld struct {
	b        *bridge.Bridge
	url      string // the console
	led, mup *devices.Device
	// imageFile and manifestFile are version 2 of the MUP device's
	// firmware and its vendor-signed manifest, to upload.
	imageFile, manifestFile string
	// admin is a NETCONF client of the bridge as admin, to compare the
	// pages with what the bridge answers any client.
	admin *updateserver.Client
	// vendorKey and serverKey are the MUP devices' trust anchors.
	vendorKey, serverKey *ecdsa.PrivateKey
	// browser is the Chromium every tab of the world opens in.
	browser context.Context
	// serving ends the devices' Serve loops.
	serving context.Context
}

func newBrowserWorld(t *testing.T) *browserWorld {
	t.Helper()
	chromium := testenv.Tool(t, "chromium")
	dir := t.TempDir()
	// An admin and a read-only user (netconf.DefaultAccess's groups).
	var users strings.Builder
	for _, u := range []struct{ name, password, group string }{{"admin", adminPassword, netconf.AdminGroup}, {"viewer", viewerPassword, netconf.ReadOnlyGroup}} {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "%s:%s:%s\n", u.name, hash, u.group)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir,
		AdminPassword: adminPassword, RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, Enrolment: access.EnrolOpen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(dir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	serving, stopServing := context.WithCancel(context.Background())
	t.Cleanup(stopServing)
	w := &browserWorld{b: b, serving: serving}
	if w.vendorKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if w.serverKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	w.led = w.startDevice(t, "led-color.jsonld", ledUUID, false)
	w.mup = w.startDevice(t, "mup-device.jsonld", mupUUID, true)

	// Version 2 of the MUP devices' firmware, as the vendor ships it: big
	// enough that the transfer takes a few seconds, as it does on real
	// devices, so that a job page sees it progress.
	files := t.TempDir()
	image := make([]byte, imageSize)
	rand.Read(image)
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 2, 1, 0), w.vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	w.imageFile, w.manifestFile = filepath.Join(files, "myno-app-2.bin"), filepath.Join(files, "myno-app-2.cose")
	if err := os.WriteFile(w.imageFile, image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.manifestFile, signed, 0o644); err != nil {
		t.Fatal(err)
	}

	// The Update Server's broker credentials.
	store, err := access.OpenStore(b.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.Add("update-server", access.RoleUpdateServer, access.AddOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}

	nc, err := gonetconf.DialSSH(b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	w.admin = updateserver.NewClient(nc)

	c, err := console.New(console.Config{Bridges: []string{b.NetconfAddr()}, HostKey: ssh.FixedHostKey(hostKey.PublicKey()),
		Update: console.UpdateSettings{MQTTURL: b.BrokerURL(), Credentials: client.Credentials{Username: "update-server", Password: token},
			ServerKey: w.serverKey},
		Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	srv := httptest.NewServer(c.Handler())
	// The browser closes first (cleanups run last in, first out): its
	// event streams end, so that the server's Close need not wait.
	t.Cleanup(srv.Close)
	w.url = srv.URL

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil { // starts Chromium
		t.Fatalf("starting %s: %v", chromium, err)
	}
	w.browser = browser
	return w
}

// startDevice runs a device of a testdata description on the world's
// bridge; a MUP device runs firmware version 1 of myno-app, the others
// publish their readings every 200 ms. It stops with the test.
func (w *browserWorld) startDevice(t *testing.T, description, uuid string, isMUP bool) *devices.Device {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", description))
	if err != nil {
		t.Fatal(err)
	}
	cfg := devices.Config{Description: desc, UUID: uuid, BrokerURL: w.b.BrokerURL(), Logger: testenv.Logger(),
		Credentials: client.Credentials{Username: uuid, Password: "browser-test-token-of-" + uuid + "-0123456789"}}
	if !isMUP {
		cfg.TelemetryInterval = 200 * time.Millisecond
	}
	var enable []func(*devices.Device) error
	if isMUP {
		enable = append(enable, func(d *devices.Device) error {
			return d.EnableMUP(devices.MUPConfig{AppID: "myno-app", Version: 1, SlotSize: 2 * imageSize,
				VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey})
		})
	}
	d := devicetest.Boot(t, cfg, enable...)
	go func() { _ = d.Serve(w.serving) }()
	return d
}

// entry is the bridge's view of a device (its <get>), as admin.
func (w *browserWorld) entry(t *testing.T, uuid string) updateserver.DeviceEntry {
	t.Helper()
	e, err := w.admin.Device(uuid)
	if err != nil {
		t.Fatalf("device %s on the bridge: %v", uuid, err)
	}
	return *e
}

// observeEvents runs in every page before the page's own script: it
// wraps EventSource so that the test can see the server-sent events the
// page receives (window.__events), without changing what the page does
// with them.
const observeEvents = `(() => {
  const Native = window.EventSource;
  if (!Native) return;
  window.__events = [];
  const Observed = function (url, init) {
    const es = new Native(url, init);
    es.addEventListener("message", (m) => { try { window.__events.push(JSON.parse(m.data)); } catch (e) {} });
    return es;
  };
  Observed.prototype = Native.prototype;
  window.EventSource = Observed;
})();`

// tab is a browser tab with a cookie jar of its own (a new browser
// context): each tab logs in for itself.
type tab struct {
	t   *testing.T
	w   *browserWorld
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func (w *browserWorld) newTab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(w.browser, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	tb := &tab{t: t, w: w, ctx: ctx}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, m := range tb.console {
			t.Logf("browser console: %s (%s)", m, m.URL)
			if m.IsException() {
				t.Errorf("the page threw: %s", m)
			}
		}
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: observeEvents}); err != nil {
		t.Fatal(err)
	}
	return tb
}

// do runs actions with a deadline.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser at %s: %v", tb.location(), err)
	}
}

// location is the tab's URL, for messages.
func (tb *tab) location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return loc
}

// js evaluates an expression in the page (awaiting a promise).
func js[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluating %s at %s: %v", expr, tb.location(), err)
	}
	return v
}

// text is the trimmed text content of the first element sel matches, ""
// when none does.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return js[string](tb, fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? "").trim()`, jsString(sel)))
}

// count is the number of elements sel matches.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	return js[int](tb, fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitFor polls a JavaScript condition in the page until it holds; after
// browserWait it fails with what explain (an expression) shows then.
func (tb *tab) waitFor(what, cond, explain string) {
	tb.t.Helper()
	tb.waitForWithin(browserWait, what, cond, explain)
}

// waitForWithin is waitFor with another deadline.
func (tb *tab) waitForWithin(d time.Duration, what, cond, explain string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.t.Fatalf("waiting for %s at %s: %v; the page shows: %s", what, tb.location(), err, js[string](tb, `String(`+explain+`)`))
	}
}

// mark tags the current document; sameDocument then tells that the page
// was not reloaded or left since (a reload makes a new window object).
func (tb *tab) mark() string {
	tb.t.Helper()
	token := rand.Text()
	js[chromedp.Void](tb, fmt.Sprintf(`window.__mark = %s`, jsString(token)))
	return token
}

func (tb *tab) sameDocument(token string) {
	tb.t.Helper()
	if !js[bool](tb, fmt.Sprintf(`window.__mark === %s`, jsString(token))) {
		tb.t.Fatalf("the page was reloaded or left (now %s): the change was not live", tb.location())
	}
}

// open navigates to a path of the console and checks the page loaded
// with 200.
func (tb *tab) open(path string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(tb.w.url+path))
	if err != nil {
		tb.t.Fatalf("opening %s: %v", path, err)
	}
	if resp.Status != 200 {
		tb.t.Fatalf("%s: HTTP %d; the page shows: %s", path, resp.Status, tb.text("main"))
	}
}

// submit clicks sel and waits for the page it leads to.
func (tb *tab) submit(sel string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("clicking %s at %s: %v", sel, tb.location(), err)
	}
	if resp == nil || resp.Status != 200 {
		tb.t.Fatalf("clicking %s: %+v; the page shows: %s", sel, resp, tb.text("main"))
	}
}

// login logs in with the login form and lands on the inventory.
func (tb *tab) login(user, password string) {
	tb.t.Helper()
	tb.open("/login")
	tb.do(chromedp.SendKeys(chromedp.CSS(`form#login input[name="user"]`), user),
		chromedp.SendKeys(chromedp.CSS(`form#login input[name="password"]`), password))
	tb.submit(`form#login button[type="submit"]`)
	if loc := tb.location(); loc != tb.w.url+"/devices" {
		tb.t.Fatalf("after logging in as %s: at %s, showing %q", user, loc, tb.text("main"))
	}
	if got := tb.text("header .user"); got != user {
		tb.t.Errorf("the header names %q, want %q", got, user)
	}
}

// rpcErrorText is how the device page shows an rpc-error (console.js).
func rpcErrorText(err error) string {
	var re *updateserver.RPCError
	if !errors.As(err, &re) {
		return fmt.Sprintf("(not an rpc-error: %v)", err)
	}
	s := "rpc-error " + re.Tag
	if re.AppTag != "" {
		s += " (" + re.AppTag + ")"
	}
	if re.Path != "" {
		s += " at " + re.Path
	}
	return s + ": " + re.Message
}

// startUpdate uploads version 2 and its manifest on /updates, ticks the
// device and starts the update: the tab is on the job page then, whose
// path it returns.
func (tb *tab) startUpdate(uuid string) string {
	tb.t.Helper()
	tb.open("/updates")
	tb.do(chromedp.SetUploadFiles(chromedp.CSS(`form#update input[type="file"][name="image"]`), []string{tb.w.imageFile}),
		chromedp.SetUploadFiles(chromedp.CSS(`form#update input[type="file"][name="manifest"]`), []string{tb.w.manifestFile}),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`form#update input[name="device"][value=%q]`, uuid))))
	tb.submit("#start")
	loc := tb.location()
	m := regexp.MustCompile(`/updates/[0-9]+$`).FindString(loc)
	if m == "" {
		tb.t.Fatalf("starting the update led to %s: %s", loc, tb.text("main"))
	}
	return m
}

// jobRow is the device's row of a job page.
func jobRow(uuid string) string { return fmt.Sprintf(`#job tr.job-device[data-uuid=%q]`, uuid) }

// jobDone is a JavaScript condition: the job page's row of the device
// shows the update finished, progress 100 and a final state.
func jobDone(uuid string) string {
	row := `document.querySelector(` + jsString(jobRow(uuid)) + `)`
	return row + `.querySelector("progress").value === 100 && ["verified", "unverified", "failed"].includes(` + row + `.querySelector(".state").textContent)`
}

// waitJobDone waits for the job page's row of the device to show the
// update finished, without reloading the page.
func (tb *tab) waitJobDone(uuid string) {
	tb.t.Helper()
	tb.waitFor("the update of "+uuid+" to finish on the job page", jobDone(uuid), `document.querySelector(`+jsString(jobRow(uuid))+`).innerText`)
}

// TestBrowser drives the console in Chromium against one world; each
// subtest opens its own tab and logs in for itself.
func TestBrowser(t *testing.T) {
	w := newBrowserWorld(t)

	t.Run("Inventory", func(t *testing.T) {
		tb := w.newTab(t)
		tb.login("admin", adminPassword)
		for _, uuid := range []string{ledUUID, mupUUID} {
			want := w.entry(t, uuid)
			row := fmt.Sprintf(`table#devices tr[data-uuid=%q]`, uuid)
			if tb.count(row) != 1 {
				t.Fatalf("no row for %s; the inventory shows: %s", uuid, tb.text("table#devices"))
			}
			if got := tb.text(row + " td.online"); got != "online" {
				t.Errorf("%s: state %q, want online", uuid, got)
			}
			if got := tb.text(row + " td.category"); got != want.Category {
				t.Errorf("%s: category %q, want %q", uuid, got, want.Category)
			}
			if got := tb.text(row + " td.module"); got != want.Module || got == "" {
				t.Errorf("%s: module %q, want %q", uuid, got, want.Module)
			}
			if got := tb.text(row + " td.last-seen"); got == "" {
				t.Errorf("%s: no last-seen", uuid)
			}
		}
		if got := tb.text(fmt.Sprintf(`table#devices tr[data-uuid=%q] td.category`, ledUUID)); got != "LED-COLOR-1" {
			t.Errorf("the LED's category is %q", got)
		}
	})

	// setColor's select, on the LED's page.
	const setColor = `section.rpc[data-rpc="setColor"]`
	colorSelect := setColor + ` form.rpc-form select`
	result := setColor + ` pre.result`
	resultJS := `document.querySelector(` + jsString(result) + `)`

	t.Run("RPC", func(t *testing.T) {
		tb := w.newTab(t)
		tb.login("admin", adminPassword)
		tb.open("/devices/" + ledUUID)
		mark := tb.mark()
		commands := w.led.Commands.Load()

		// Green, new to the device: it answers OK in its description's
		// words, which the page shows as the retval.
		tb.do(chromedp.SetValue(chromedp.CSS(colorSelect), "green"), chromedp.Click(chromedp.CSS(setColor+" button.call")))
		tb.waitFor("setColor's result", resultJS+`.classList.contains("ok")`, resultJS+`.className + ": " + `+resultJS+`.textContent`)
		changed := tb.text(result)
		if !strings.HasPrefix(changed, "retval: ") || changed == "retval: " {
			t.Fatalf("setColor green shows %q", changed)
		}
		// Green again: the device already shows green and says so (its
		// no-op answer), another retval.
		tb.do(chromedp.Evaluate[chromedp.Void](resultJS+`.textContent = ""`), chromedp.Click(chromedp.CSS(setColor+" button.call")))
		tb.waitFor("setColor's second result", resultJS+`.classList.contains("ok") && `+resultJS+`.textContent !== ""`, resultJS+`.textContent`)
		same := tb.text(result)
		if !strings.HasPrefix(same, "retval: ") || same == changed {
			t.Errorf("setColor green twice shows %q, then %q: want the device's no-op answer the second time", changed, same)
		}
		if n := w.led.Commands.Load() - commands; n != 2 {
			t.Errorf("the device handled %d commands, want the 2 calls", n)
		}
		// The answer is the device's, as the bridge gives it to any
		// client: a colour new to the device gets the same retval.
		led := w.entry(t, ledUUID)
		name := js[string](tb, `document.querySelector(`+jsString(colorSelect)+`).name`)
		out, err := w.admin.Call(led.Namespace, "setColor", updateserver.Leaf{Name: "uuidInput", Value: ledUUID}, updateserver.Leaf{Name: name, Value: "blue"})
		if err != nil {
			t.Fatal(err)
		}
		if changed != "retval: "+out.Retval {
			t.Errorf("the page showed %q; the bridge answers setColor blue with retval %q", changed, out.Retval)
		}
		t.Logf("setColor green: %q, again: %q", changed, same)

		// The device's state, live: the LED's description has no reading
		// of its colour or on/off state (only ambient brightness), so what
		// changes on the page without a reload is the brightness reading
		// arriving over /events: its value and time, and its chart, which
		// only live readings draw.
		testenv.WaitFor(t, "a brightness reading on the bridge", func() bool {
			return len(w.entry(t, ledUUID).Sensors) > 0
		})
		sensor := w.entry(t, ledUUID).Sensors[0].Sensor
		box := `document.querySelector(` + jsString(fmt.Sprintf(`#sensors .sensor[data-sensor=%q]`, sensor)) + `)`
		before := js[string](tb, `String(`+box+`?.querySelector(".time")?.textContent)`)
		tb.waitFor("a live "+sensor+" reading", box+` && `+box+`.querySelector(".time").textContent !== `+jsString(before)+
			` && `+box+`.querySelector(".value").textContent !== "" && `+box+`.querySelector("polyline").getAttribute("points") !== ""`,
			`document.getElementById("sensors").innerHTML`)
		tb.sameDocument(mark)
		t.Logf("live %s reading: %s", sensor, tb.text(fmt.Sprintf(`#sensors .sensor[data-sensor=%q]`, sensor)))
	})

	t.Run("BadInput", func(t *testing.T) {
		tb := w.newTab(t)
		tb.login("admin", adminPassword)
		led := w.entry(t, ledUUID)
		commands := w.led.Commands.Load()

		// The browser would refuse an empty colour (required): without
		// the attribute the form goes, and the bridge says what is missing.
		tb.open("/devices/" + ledUUID)
		name := js[string](tb, `document.querySelector(`+jsString(colorSelect)+`).name`)
		tb.do(chromedp.RemoveAttribute(chromedp.CSS(colorSelect), "required"), chromedp.SetValue(chromedp.CSS(colorSelect), ""),
			chromedp.Click(chromedp.CSS(setColor+" button.call")))
		tb.waitFor("the rpc-error", resultJS+`.classList.contains("rpc-error")`, resultJS+`.textContent`)
		_, err := w.admin.Call(led.Namespace, "setColor", updateserver.Leaf{Name: "uuidInput", Value: ledUUID})
		want := rpcErrorText(err)
		if got := tb.text(result); got != want || !strings.HasPrefix(got, "rpc-error missing-element") {
			t.Errorf("an empty colour shows %q; the bridge says %q", got, want)
		}

		// A colour not in the enumeration, which no option offers.
		tb.open("/devices/" + ledUUID)
		js[chromedp.Void](tb, `(() => { const s = document.querySelector(`+jsString(colorSelect)+`); s.options[1].value = "purple"; s.value = "purple"; })()`)
		tb.do(chromedp.Click(chromedp.CSS(setColor + " button.call")))
		tb.waitFor("the rpc-error", resultJS+`.classList.contains("rpc-error")`, resultJS+`.textContent`)
		_, err = w.admin.Call(led.Namespace, "setColor", updateserver.Leaf{Name: "uuidInput", Value: ledUUID}, updateserver.Leaf{Name: name, Value: "purple"})
		want = rpcErrorText(err)
		if got := tb.text(result); got != want || !strings.HasPrefix(got, "rpc-error invalid-value") {
			t.Errorf("colour purple shows %q; the bridge says %q", got, want)
		}
		// The bridge refused both: the device saw neither.
		if n := w.led.Commands.Load() - commands; n != 0 {
			t.Errorf("the device handled %d commands", n)
		}
	})

	t.Run("Update", func(t *testing.T) {
		tb := w.newTab(t)
		tb.login("admin", adminPassword)
		job := tb.startUpdate(mupUUID)
		mark := tb.mark()
		tb.waitJobDone(mupUUID)
		tb.sameDocument(mark)
		row := jobRow(mupUUID)
		if got := tb.text(row + " .state"); got != "unverified" {
			// mup-device.jsonld declares no receipt: the version is the
			// only evidence, and the console says so.
			t.Errorf("state %q, want unverified; detail %q", got, tb.text(row+" .detail"))
		}
		if got := tb.text(row + " .version"); got != "2" {
			t.Errorf("version cell %q, want 2", got)
		}
		// The progress and the final state came over /events, not with
		// the page.
		events := js[[]struct {
			Job struct {
				State   string `json:"state"`
				Percent int    `json:"percent"`
			} `json:"job"`
		}](tb, fmt.Sprintf(`window.__events.filter((e) => e.kind === "job" && e.uuid === %q)`, mupUUID))
		var running, final bool
		for _, e := range events {
			running = running || e.Job.State == "running" && e.Job.Percent > 0 && e.Job.Percent < 100
			final = final || e.Job.State == "unverified" && e.Job.Percent == 100
		}
		if !running || !final {
			t.Errorf("the page received %d progress events (some running: %v, the final one: %v)", len(events), running, final)
		}
		if v := w.mup.FirmwareVersion(); v != 2 {
			t.Errorf("the device runs version %d", v)
		}
		t.Logf("%s after %d progress events: %s", job, len(events), tb.text(row))
	})

	// An update that ends while the job page is still opening its event
	// stream (a small image, a fast device, a slow network): the page
	// must still come to show the outcome. The test holds the page's
	// /events request until the console has the final state.
	t.Run("UpdateEndsWhileThePageConnects", func(t *testing.T) {
		const uuid = "mup-2"
		w.startDevice(t, "mup-device.jsonld", uuid, true)
		tb := w.newTab(t)
		tb.login("admin", adminPassword)
		tb.open("/updates") // a page without an event stream
		ctx, stop := context.WithCancel(tb.ctx)
		defer stop()
		paused := chromedp.Events(ctx, fetch.RequestPaused)
		held := make(chan fetch.RequestID, 4)
		go func() {
			for ev, err := range paused {
				if err != nil {
					return
				}
				select {
				case held <- ev.RequestID:
				case <-ctx.Done():
					return
				}
			}
		}()
		if _, err := chromedp.Call(tb.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/events*"}}}); err != nil {
			t.Fatal(err)
		}
		job := tb.startUpdate(uuid)
		mark := tb.mark()
		var stream fetch.RequestID
		select {
		case stream = <-held:
		case <-time.After(browserWait):
			t.Fatal("the job page opened no event stream")
		}
		// The console's own view: the job page as the server renders it now.
		serverDone := fmt.Sprintf(`fetch(location.href).then((r) => r.text()).then((html) => {
			const doc = new DOMParser().parseFromString(html, "text/html");
			return doc.querySelector(%s)?.textContent === "unverified";
		})`, jsString(jobRow(uuid)+" .state"))
		testenv.WaitFor(t, "the console to finish the update", func() bool { return js[bool](tb, serverDone) })
		if _, err := chromedp.Call(tb.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: stream}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(tb.ctx, fetch.Disable, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		tb.waitFor("the job page's event stream to open", `document.body.classList.contains("live")`, `document.body.className`)
		// The outcome is there to send: the page has it at once.
		tb.waitForWithin(5*time.Second, "the job page to show the outcome", jobDone(uuid), `document.querySelector(`+jsString(jobRow(uuid))+`).innerText`)
		tb.sameDocument(mark)
		t.Logf("%s: %s", job, tb.text(jobRow(uuid)))
	})

	t.Run("ReadOnly", func(t *testing.T) {
		tb := w.newTab(t)
		tb.login("viewer", viewerPassword)
		if tb.count(fmt.Sprintf(`table#devices tr[data-uuid=%q]`, ledUUID)) != 1 {
			t.Errorf("the viewer does not see the LED: %s", tb.text("table#devices"))
		}
		tb.open("/devices/" + ledUUID)
		if n := tb.count("button.call"); n != 0 {
			t.Errorf("the viewer's device page has %d call buttons", n)
		}
		if n := tb.count("form.rpc-form"); n != 0 {
			t.Errorf("the viewer's device page has %d rpc forms", n)
		}
		if tb.count(`section.rpc[data-rpc="ledOn"] .denied`) != 1 {
			t.Errorf("the device page does not say ledOn is denied: %s", tb.text("#rpcs"))
		}

		// A request forged from the viewer's page, with its CSRF token: the
		// console passes it on as the viewer, and the bridge refuses it.
		commands := w.led.Commands.Load()
		type response struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		forged := js[response](tb, fmt.Sprintf(`(async () => {
			const token = document.querySelector('meta[name="csrf"]').content;
			const r = await fetch("/devices/%s/rpc/ledOn", { method: "POST", body: new FormData(), headers: { "X-CSRF-Token": token } });
			return { status: r.status, body: await r.text() };
		})()`, ledUUID))
		var res struct {
			Retval string `json:"retval"`
			Error  *struct {
				Tag, Message string
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(forged.Body), &res); err != nil || forged.Status != 200 {
			t.Fatalf("forged ledOn: HTTP %d %q (%v)", forged.Status, forged.Body, err)
		}
		if res.Error == nil || res.Error.Tag != "access-denied" {
			t.Errorf("forged ledOn: %s, want the bridge's access-denied", forged.Body)
		}
		if n := w.led.Commands.Load() - commands; n != 0 {
			t.Errorf("the device handled %d commands", n)
		}

		tb.open("/updates")
		if tb.count("#no-update") != 1 || tb.count("#start") != 0 || tb.count("form#update") != 0 {
			t.Errorf("the viewer's updates page: %s", tb.text("main"))
		}
		forged = js[response](tb, fmt.Sprintf(`(async () => {
			const token = document.querySelector('meta[name="csrf"]').content;
			const form = new FormData();
			form.append("device", %q);
			form.append("image", new Blob([new Uint8Array(64)]), "image.bin");
			const r = await fetch("/updates", { method: "POST", body: form, headers: { "X-CSRF-Token": token }, redirect: "manual" });
			return { status: r.status, body: await r.text() };
		})()`, mupUUID))
		if forged.Status != 403 {
			t.Errorf("forged update: HTTP %d %q, want 403", forged.Status, forged.Body)
		}
	})

	t.Run("Offline", func(t *testing.T) {
		const doomed = "led-doomed"
		d := w.startDevice(t, "led-color.jsonld", doomed, false)
		tb := w.newTab(t)
		tb.login("admin", adminPassword)
		online := fmt.Sprintf(`table#devices tr[data-uuid=%q] td.online`, doomed)
		if got := tb.text(online); got != "online" {
			t.Fatalf("%s: %q before it stops", doomed, got)
		}
		mark := tb.mark()
		// The page's event stream is subscribed to the bridge once the
		// device's readings come through it (the console sends every
		// event to every page).
		tb.waitFor("the page's event stream to carry the bridge's notifications",
			fmt.Sprintf(`window.__events.some((e) => e.uuid === %q)`, doomed), `JSON.stringify(window.__events)`)
		d.Close()
		cell := `document.querySelector(` + jsString(online) + `)`
		tb.waitFor(doomed+" offline", cell+`.textContent === "offline" && `+cell+`.classList.contains("is-offline")`, cell+`.outerHTML`)
		tb.sameDocument(mark)
		if got := tb.text(fmt.Sprintf(`table#devices tr[data-uuid=%q] td.online`, ledUUID)); got != "online" {
			t.Errorf("%s: %q", ledUUID, got)
		}
	})
}

// TestBrowserScreenshots takes full-page screenshots of the console's
// pages: into $MYNO_SCREENSHOTS when set (for the documentation), else
// into the test's temporary directory.
func TestBrowserScreenshots(t *testing.T) {
	w := newBrowserWorld(t)
	dir := os.Getenv("MYNO_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tb := w.newTab(t)
	shoot := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
		defer cancel()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		img, err := png.Decode(bytes.NewReader(buf))
		if err != nil {
			t.Fatalf("screenshot %s is no PNG: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
			t.Fatalf("screenshot %s is empty: %v", name, b)
		}
		path := filepath.Join(dir, name+".png")
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes, %dx%d", path, len(buf), img.Bounds().Dx(), img.Bounds().Dy())
	}

	tb.open("/login")
	shoot("login")
	tb.login("admin", adminPassword)
	shoot("devices")
	tb.open("/devices/" + ledUUID)
	// With a reading or two come live, and a result shown.
	tb.waitFor("the brightness chart", `[...document.querySelectorAll("#sensors polyline")].some((p) => p.getAttribute("points").includes(" "))`,
		`document.getElementById("sensors").innerHTML`)
	tb.do(chromedp.SetValue(chromedp.CSS(`section.rpc[data-rpc="setColor"] form.rpc-form select`), "blue"),
		chromedp.Click(chromedp.CSS(`section.rpc[data-rpc="setColor"] button.call`)))
	tb.waitFor("setColor's result", `document.querySelector('section.rpc[data-rpc="setColor"] pre.result').classList.contains("ok")`,
		`document.querySelector('section.rpc[data-rpc="setColor"] pre.result').textContent`)
	shoot("device")
	tb.open("/updates")
	shoot("updates")
	job := tb.startUpdate(mupUUID)
	// The finished job page, as it renders (opened again until it
	// shows the outcome: this test is not about live updates).
	testenv.WaitFor(t, "the update to finish", func() bool {
		tb.open(job)
		return js[bool](tb, jobDone(mupUUID))
	})
	shoot("job")
}
