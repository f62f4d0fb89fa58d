package app_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walhook/walhook/internal/pgtest"
)

// TestDashboardInABrowser drives the dashboard in headless chromium against
// a running walhook and real receivers: sign in, create an endpoint through
// the form, see its secret once, send a test event, watch deliveries appear
// live, make the receiver fail and see retrying, press Retry now, and check
// that a payload with <script> is text. Every page is screenshotted (in
// $WALHOOK_TEST_SCREENSHOTS, or the test's artifact folder: go test -artifacts);
// any browser console error fails the test.
func TestDashboardInABrowser(t *testing.T) {
	wd := startBrowser(t)
	db := pgtest.New(t)
	cfg := testConfig(t, db.DSN)
	cfg.EventTypes = []string{"order.created", "order.paid", "invoice.failed"}
	s := start(t, cfg)
	defer s.Stop()
	rcv := newReceiver(t)
	var failing atomic.Bool
	rcv.fail = func(string, int) int {
		if failing.Load() {
			return 500
		}
		return 0
	}
	base := "http://" + s.APIAddr + "/webhooks"

	// Sign in: the dashboard sends us to the form first.
	wd.navigate(base + "/")
	wd.waitFor("the sign-in form", `return document.querySelector("#token") !== null`)
	wd.screenshot("sign-in")
	wd.typeInto("#token", "wrong-token-0123456789")
	wd.click("button[type=submit].primary")
	wd.waitFor("the error beside the token", `return document.querySelector("#token-error") !== null`)
	wd.typeInto("#token", token)
	wd.click("button[type=submit].primary")
	wd.waitFor("the endpoints page", `return document.querySelector("h1") && document.querySelector("h1").textContent === "Endpoints"`)
	wd.screenshot("endpoints-empty")

	// Add an endpoint through the form; a mistake first.
	wd.click("a.button.primary") // Add Endpoint
	wd.waitFor("the form", `return document.querySelector("#url") !== null`)
	wd.typeInto("#url", "ftp://nowhere")
	wd.click(`input[name=events][value="order.created"]`)
	wd.click("button[type=submit].primary")
	wd.waitFor("the URL error beside its field", `return document.querySelector("#url-error") !== null && document.querySelector("#url").getAttribute("aria-invalid") === "true"`)
	wd.screenshot("endpoint-form-error")
	if checked := wd.script(`return document.querySelector('input[name=events][value="order.created"]').checked`); checked != true {
		t.Fatal("the form lost the picked event type")
	}
	wd.typeInto("#url", rcv.srv.URL+"/hook")
	wd.typeInto("#description", "Orders <b>service</b>")
	wd.typeInto("#patterns", "order.*")
	wd.typeInto("#headers", "X-Team: payments")
	wd.click("button[type=submit].primary")
	wd.waitFor("the secret", `return document.querySelector("#secret") !== null`)
	secret := wd.text("#secret")
	if !strings.HasPrefix(secret, "whsec_") || !strings.Contains(wd.text(".warning"), "will not be shown again") {
		t.Fatalf("secret %q", secret)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()
	wd.click("button[data-copy]")
	wd.waitFor("the copy button's answer", `var t = document.querySelector("button[data-copy]").textContent; return t === "Copied" || t.indexOf("Ctrl+C") >= 0`)
	wd.screenshot("endpoint-created-secret")

	// The endpoint page never shows the secret again.
	wd.click("a.button") // Continue to the endpoint
	wd.waitFor("the endpoint page", `return document.querySelector("#actions") !== null`)
	if strings.Contains(wd.script(`return document.documentElement.outerHTML`).(string), secret) {
		t.Fatal("the endpoint page shows the secret")
	}
	if got := wd.text("h1"); got != rcv.srv.URL+"/hook" {
		t.Fatalf("endpoint page title %q", got)
	}

	// Send a test event: we land on its delivery, delivered.
	wd.click(`form[action$="/test"] button`)
	wd.waitFor("the delivered test event", `var b = document.querySelector("[data-status]"); return b !== null && b.getAttribute("data-status") === "delivered"`)
	if rcv.requests() != 1 {
		t.Fatalf("receiver got %d requests, want the test event", rcv.requests())
	}
	wd.screenshot("test-event-delivered")

	// The delivery log updates live: an outbox event appears as delivered
	// without a reload.
	wd.navigate(base + "/deliveries")
	wd.waitFor("the deliveries page", `return document.querySelector("tbody[data-live]") !== null`)
	wd.script(`window.__noReload = true`)
	insertEvents(t, db.DSN, 1, "order.created", true)
	wd.waitFor("a delivered order.created row", `return Array.from(document.querySelectorAll("tbody tr")).some(function (tr) {
		return tr.textContent.indexOf("order.created") >= 0 && tr.querySelector(".badge-delivered") !== null })`)
	if wd.script(`return window.__noReload === true`) != true {
		t.Fatal("the page reloaded instead of updating")
	}
	wd.screenshot("deliveries-delivered")

	// A failing receiver: the next event shows as retrying, live.
	failing.Store(true)
	insertEvents(t, db.DSN, 1, "order.created", true)
	wd.waitFor("a retrying row", `return document.querySelector("tbody .badge-retrying") !== null`)
	if wd.script(`return window.__noReload === true`) != true {
		t.Fatal("the page reloaded instead of updating")
	}
	wd.screenshot("deliveries-retrying")

	// Filters: by status.
	wd.navigate(base + "/deliveries?status=retrying")
	wd.waitFor("the filtered log", `return document.querySelectorAll("tbody tr").length === 1 && document.querySelector("tbody .badge-retrying") !== null`)

	// Its detail: the payload with <script> is text, not markup.
	// Followed by its address: the live table may be redrawn between
	// finding the link and clicking it.
	wd.navigate(wd.script(`return document.querySelector("tbody tr a").href`).(string))
	wd.waitFor("the delivery page", `return document.querySelector("pre.payload") !== null`)
	payload := wd.text("pre.payload")
	if !strings.Contains(payload, `"html": "<script>x</script>"`) {
		t.Fatalf("payload shown as %q", payload)
	}
	if n := wd.script(`return document.querySelectorAll("main script, pre script").length`); n != float64(0) {
		t.Fatalf("the payload made %v script elements", n)
	}
	if hs := wd.text("section[aria-labelledby=headers-h]"); !strings.Contains(hs, "X-Team") || !strings.Contains(hs, "••••") || strings.Contains(hs, secret) {
		t.Fatalf("headers shown:\n%s", hs)
	}
	if got := wd.text("table.attempts tbody"); !strings.Contains(got, "500") {
		t.Fatalf("attempts:\n%s", got)
	}
	wd.screenshot("delivery-retrying")

	// Fix the receiver and press Retry now.
	failing.Store(false)
	wd.click(`form[action$="/retry"] button`)
	wd.waitFor("the retried delivery delivered", `var b = document.querySelector("[data-status]"); return b !== null && b.getAttribute("data-status") === "delivered"`)
	wd.waitFor("the second attempt", `return document.querySelectorAll("table.attempts tbody tr").length === 2`)
	wd.screenshot("delivery-retried-delivered")

	// The endpoint list: state, chips, activity, last delivery.
	wd.navigate(base + "/")
	wd.waitFor("the endpoint card", `return document.querySelector(".endpoint .state-active") !== null`)
	if got := wd.text(".endpoint .chips"); !strings.Contains(got, "order.created") || !strings.Contains(got, "order.*") {
		t.Fatalf("chips %q", got)
	}
	if got := wd.text(".endpoint .rate"); !strings.Contains(got, "%") {
		t.Fatalf("success rate %q", got)
	}
	if got := wd.text(".endpoint-main .desc"); got != "Orders <b>service</b>" {
		t.Fatalf("description %q", got)
	}
	wd.screenshot("endpoints")

	// Endpoint detail, filtered; then pause and resume.
	wd.click(".endpoint h2 a")
	wd.waitFor("the endpoint page", `return document.querySelector("#actions") !== null`)
	wd.screenshot("endpoint-detail")
	wd.click(`form[action$="/pause"] button`)
	wd.waitFor("paused", `return document.querySelector(".state-paused") !== null`)
	wd.click(`form[action$="/resume"] button`)
	wd.waitFor("active again", `return document.querySelector(".state-active") !== null`)
	wd.click("a.button[href$=edit]")
	wd.waitFor("the edit form", `return document.querySelector("#url") !== null`)
	wd.screenshot("endpoint-edit")

	// A phone's width: nothing wider than the screen but scrolling tables.
	wd.setWindow(390, 844)
	wd.navigate(base + "/")
	wd.waitFor("the endpoints page", `return document.querySelector(".endpoint") !== null`)
	if w := wd.script(`return document.documentElement.scrollWidth <= window.innerWidth + 1`); w != true {
		t.Fatal("the endpoints page is wider than a phone")
	}
	wd.screenshot("endpoints-phone")
	wd.navigate(base + "/deliveries")
	wd.waitFor("the deliveries page", `return document.querySelector("tbody[data-live]") !== null`)
	wd.screenshot("deliveries-phone")

	wd.noConsoleErrors("on the dashboard")
	t.Logf("screenshots in %s", wd.shots)
}
