package app_test

// A small W3C WebDriver client over net/http, driving Debian's chromium
// through chromedriver (no module beyond the standard library).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// elementKey is the W3C key of an element reference.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

type webDriver struct {
	t       *testing.T
	url     string // http://127.0.0.1:PORT/session/ID
	client  *http.Client
	shots   string // screenshot folder
	shotSeq int
}

// browserPaths finds chromedriver and chromium, or skips the test (fails
// it when WALHOOK_TEST_REQUIRE_BROWSER=1, as CI sets).
func browserPaths(t *testing.T) (driver, chromium string) {
	t.Helper()
	find := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	driver, chromium = find("chromedriver", "/usr/bin/chromedriver"), find("/usr/bin/chromium", "chromium", "chromium-browser")
	if driver == "" || chromium == "" {
		msg := "browser test needs chromedriver and chromium (Debian: apt-get install chromium chromium-driver)"
		if os.Getenv("WALHOOK_TEST_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + "; WALHOOK_TEST_REQUIRE_BROWSER=1 forbids skipping")
		}
		t.Skip(msg)
	}
	return driver, chromium
}

// startBrowser starts chromedriver and a headless chromium session; both
// end with the test.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	driverPath, chromium := browserPaths(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(driverPath, fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 60 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(base + "/status")
		if err == nil {
			var st struct {
				Value struct {
					Ready bool `json:"ready"`
				} `json:"value"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.Value.Ready {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready after 20s: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	wd := &webDriver{t: t, url: base, client: client}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
				"--user-data-dir=" + t.TempDir(), "--window-size=1280,900"},
		},
		"goog:loggingPrefs": map[string]any{"browser": "ALL"},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	wd.do("POST", "/session", caps, &sess)
	if sess.SessionID == "" {
		t.Fatalf("no session id\n%s", logs.String())
	}
	wd.url = base + "/session/" + sess.SessionID
	t.Cleanup(func() {
		req, _ := http.NewRequest("DELETE", wd.url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	wd.shots = os.Getenv("WALHOOK_TEST_SCREENSHOTS")
	if wd.shots == "" {
		wd.shots = t.ArtifactDir()
	} else if err := os.MkdirAll(wd.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return wd
}

// do sends one WebDriver command; path is relative to the session (or
// absolute for /session). The "value" of the answer goes into out.
func (wd *webDriver) do(method, path string, body, out any) {
	wd.t.Helper()
	if err := wd.try(method, path, body, out); err != nil {
		wd.t.Fatal(err)
	}
}

func (wd *webDriver) try(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, wd.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wd.client.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("webdriver %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdriver %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Value, out)
}

func (wd *webDriver) navigate(u string) { wd.do("POST", "/url", map[string]string{"url": u}, nil) }

func (wd *webDriver) currentURL() string {
	var u string
	wd.do("GET", "/url", nil, &u)
	return u
}

// find returns the first element matching css, failing the test if none.
func (wd *webDriver) find(css string) string {
	wd.t.Helper()
	var el map[string]string
	wd.do("POST", "/element", map[string]string{"using": "css selector", "value": css}, &el)
	return el[elementKey]
}

func (wd *webDriver) click(css string) {
	wd.do("POST", "/element/"+wd.find(css)+"/click", map[string]any{}, nil)
}

func (wd *webDriver) typeInto(css, text string) {
	el := wd.find(css)
	wd.do("POST", "/element/"+el+"/clear", map[string]any{}, nil)
	wd.do("POST", "/element/"+el+"/value", map[string]string{"text": text}, nil)
}

func (wd *webDriver) text(css string) string {
	var s string
	wd.do("GET", "/element/"+wd.find(css)+"/text", nil, &s)
	return s
}

// script runs JavaScript in the page and returns its result.
func (wd *webDriver) script(js string, args ...any) any {
	wd.t.Helper()
	if args == nil {
		args = []any{}
	}
	var v any
	wd.do("POST", "/execute/sync", map[string]any{"script": js, "args": args}, &v)
	return v
}

// waitFor polls cond (a script returning a boolean) until it holds.
func (wd *webDriver) waitFor(what, js string, args ...any) {
	wd.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, _ := wd.script(js, args...).(bool); v {
			return
		}
		if time.Now().After(deadline) {
			wd.screenshot("timeout")
			wd.t.Fatalf("timed out waiting for %s (page %s)", what, wd.currentURL())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the viewport as NN-name.png in the screenshot folder.
func (wd *webDriver) screenshot(name string) string {
	wd.t.Helper()
	var b64 string
	wd.do("GET", "/screenshot", nil, &b64)
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		wd.t.Fatal(err)
	}
	wd.shotSeq++
	p := filepath.Join(wd.shots, fmt.Sprintf("%02d-%s.png", wd.shotSeq, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		wd.t.Fatal(err)
	}
	return p
}

func (wd *webDriver) setWindow(w, h int) {
	wd.do("POST", "/window/rect", map[string]int{"width": w, "height": h}, nil)
}

// logEntry is one browser console message.
type logEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// consoleLogs returns (and clears) the browser console messages so far.
func (wd *webDriver) consoleLogs() []logEntry {
	wd.t.Helper()
	var out []logEntry
	if err := wd.try("POST", "/se/log", map[string]string{"type": "browser"}, &out); err != nil {
		if err2 := wd.try("POST", "/log", map[string]string{"type": "browser"}, &out); err2 != nil {
			wd.t.Fatalf("reading the browser console: %v; %v", err, err2)
		}
	}
	return out
}

// noConsoleErrors fails the test on any console error so far.
func (wd *webDriver) noConsoleErrors(where string) {
	wd.t.Helper()
	var errs []string
	for _, e := range wd.consoleLogs() {
		wd.t.Logf("console %s: %s", e.Level, e.Message)
		if strings.EqualFold(e.Level, "SEVERE") {
			errs = append(errs, e.Message)
		}
	}
	if len(errs) > 0 {
		wd.t.Fatalf("browser console errors %s:\n%s", where, strings.Join(errs, "\n"))
	}
}
