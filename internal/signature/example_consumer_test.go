package signature_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/signature"
)

// The three functions below are the consumer code of
// docs/verifying-signatures.md, character for character (TestDocsMatchCode
// keeps it so). They use nothing from package signature on purpose: they
// prove that a consumer with only the standard library verifies what Signer
// produces.

// verifyWebhook checks the Standard Webhooks headers of a request sent by
// walhook. secret is the endpoint's signing secret ("whsec_..."), body the raw
// request body exactly as received, now the current time.
func verifyWebhook(secret string, header http.Header, body []byte, now time.Time) error {
	const toleranceSeconds = 5 * 60

	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("decoding webhook secret: %w", err)
	}
	id := header.Get("webhook-id")
	timestamp := header.Get("webhook-timestamp")
	signatures := header.Get("webhook-signature")
	if id == "" || timestamp == "" || signatures == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	}

	// Reject replays and future-dated requests. The timestamp is part of the
	// signed content, so it cannot be changed without breaking the signature.
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid webhook-timestamp: %w", err)
	}
	if age := now.Unix() - sec; age > toleranceSeconds || age < -toleranceSeconds {
		return errors.New("webhook-timestamp is outside the 5 minute tolerance")
	}

	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	expected := []byte("v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)))

	// While a secret is being rotated the header carries one signature per
	// secret, separated by spaces: any one matching is enough.
	for _, sig := range strings.Split(signatures, " ") {
		if hmac.Equal([]byte(sig), expected) {
			return nil
		}
	}
	return errors.New("no matching webhook signature")
}

// verifyLegacyWebhook checks the X-Webhook-Timestamp and X-Webhook-Signature
// headers instead. Its HMAC key is the secret string itself, "whsec_" included.
func verifyLegacyWebhook(secret string, header http.Header, body []byte, now time.Time) error {
	const toleranceSeconds = 5 * 60

	timestamp := header.Get("X-Webhook-Timestamp")
	signature := header.Get("X-Webhook-Signature")
	if timestamp == "" || signature == "" {
		return errors.New("missing X-Webhook-Timestamp or X-Webhook-Signature header")
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid X-Webhook-Timestamp: %w", err)
	}
	if age := now.Unix() - sec; age > toleranceSeconds || age < -toleranceSeconds {
		return errors.New("X-Webhook-Timestamp is outside the 5 minute tolerance")
	}

	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	expected := []byte("sha256=" + hex.EncodeToString(mac.Sum(nil)))
	if !hmac.Equal([]byte(signature), expected) {
		return errors.New("X-Webhook-Signature does not match")
	}
	return nil
}

// webhookHandler verifies each request before acting on it.
func webhookHandler(secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		if err := verifyWebhook(secret, r.Header, body, time.Now()); err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		// webhook-id stays the same when walhook retries a message: use it
		// to ignore duplicates, then handle the event and answer 2xx quickly.
		w.WriteHeader(http.StatusNoContent)
	})
}

// Example_consumer shows walhook's side and a consumer's side of one delivery.
func Example_consumer() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	signer, err := signature.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	body := []byte(`{"test": 2432232314}`)
	sentAt := time.Unix(1614265330, 0)

	header := http.Header{}
	signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", sentAt, body).SetHeaders(header)
	fmt.Println(header.Get("webhook-signature"))

	receivedAt := sentAt.Add(2 * time.Second)
	fmt.Println(verifyWebhook(secret, header, body, receivedAt))
	fmt.Println(verifyLegacyWebhook(secret, header, body, receivedAt))
	fmt.Println(verifyWebhook(secret, header, []byte(`{"test": 1}`), receivedAt))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// <nil>
	// <nil>
	// no matching webhook signature
}

// consumerCase is one request as a consumer sees it, with whether a correct
// verifier must accept it under each scheme.
type consumerCase struct {
	name       string
	secret     string
	header     http.Header
	body       []byte
	now        time.Time
	wantStd    bool
	wantLegacy bool
}

func consumerCases(t *testing.T) []consumerCase {
	t.Helper()
	newSecret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	oldSecret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(newSecret, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	sentAt := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"order.paid","data":{"id":42,"note":"ünïcode"}}`)
	signed := func() http.Header {
		h := http.Header{}
		signer.Sign("msg_2f1c9a", sentAt, body).SetHeaders(h)
		return h
	}
	with := func(edit func(http.Header)) http.Header {
		h := signed()
		edit(h)
		return h
	}
	return []consumerCase{
		{name: "new secret", secret: newSecret, header: signed(), body: body, now: sentAt.Add(time.Second), wantStd: true, wantLegacy: true},
		{name: "old secret during rotation", secret: oldSecret, header: signed(), body: body, now: sentAt, wantStd: true},
		{name: "clock 4m behind", secret: newSecret, header: signed(), body: body, now: sentAt.Add(-4 * time.Minute), wantStd: true, wantLegacy: true},
		{name: "tampered body", secret: newSecret, header: signed(), body: append(bytes.Clone(body), '\n'), now: sentAt},
		{name: "unrelated secret", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", header: signed(), body: body, now: sentAt},
		{name: "replayed after 6 minutes", secret: newSecret, header: signed(), body: body, now: sentAt.Add(6 * time.Minute)},
		{name: "future dated by 6 minutes", secret: newSecret, header: signed(), body: body, now: sentAt.Add(-6 * time.Minute)},
		{name: "changed id", secret: newSecret, header: with(func(h http.Header) { h.Set("webhook-id", "msg_other") }), body: body, now: sentAt, wantLegacy: true},
		{name: "missing signatures", secret: newSecret, header: with(func(h http.Header) { h.Del("webhook-signature"); h.Del("x-webhook-signature") }), body: body, now: sentAt},
		{name: "bare v1 entry", secret: newSecret, header: with(func(h http.Header) { h.Set("webhook-signature", "v1,") }), body: body, now: sentAt, wantLegacy: true},
	}
}

func TestConsumerCode(t *testing.T) {
	for _, tc := range consumerCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			// The package's verifiers must agree with the documented ones.
			checks := []struct {
				name string
				err  error
				want bool
			}{
				{"verifyWebhook", verifyWebhook(tc.secret, tc.header, tc.body, tc.now), tc.wantStd},
				{"signature.Verify", signature.Verify(tc.secret, tc.header, tc.body, tc.now, signature.DefaultTolerance), tc.wantStd},
				{"verifyLegacyWebhook", verifyLegacyWebhook(tc.secret, tc.header, tc.body, tc.now), tc.wantLegacy},
				{"signature.VerifyLegacy", signature.VerifyLegacy(tc.secret, tc.header, tc.body, tc.now, signature.DefaultTolerance), tc.wantLegacy},
			}
			for _, c := range checks {
				if (c.err == nil) != c.want {
					t.Errorf("%s: error %v, want accepted=%v", c.name, c.err, c.want)
				}
			}
		})
	}
}

func TestConsumerHandler(t *testing.T) {
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(webhookHandler(secret))
	t.Cleanup(srv.Close)
	body := []byte(`{"type":"order.paid"}`)

	tests := []struct {
		name string
		body []byte
		want int
	}{
		{name: "signed", body: body, want: http.StatusNoContent},
		{name: "tampered", body: []byte(`{"type":"order.refunded"}`), want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			signer.Sign("msg_1", time.Now(), body).SetHeaders(req.Header)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestNodeConsumer runs the documented Node.js verifier (testdata/verify.js)
// against requests produced by Signer.
func TestNodeConsumer(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	for _, tc := range consumerCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			// Node lower-cases incoming header names; so does this.
			headers := map[string]string{}
			for k := range tc.header {
				headers[strings.ToLower(k)] = tc.header.Get(k)
			}
			in, err := json.Marshal(map[string]any{
				"secret":      tc.secret,
				"headers":     headers,
				"body_base64": base64.StdEncoding.EncodeToString(tc.body),
				"now":         tc.now.Unix(),
			})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(node, "testdata/verify.js")
			cmd.Stdin = bytes.NewReader(in)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			var exitErr *exec.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				t.Fatalf("running node: %v", err)
			}
			accepted := err == nil && strings.TrimSpace(stdout.String()) == "ok"
			if accepted != tc.wantStd {
				t.Errorf("node accepted=%v, want %v (stdout %q, stderr %q)", accepted, tc.wantStd, stdout.String(), stderr.String())
			}
			if !accepted && !strings.Contains(stderr.String(), "webhook") {
				t.Errorf("node rejected without saying why: stderr %q", stderr.String())
			}
		})
	}
}

var fencedBlock = regexp.MustCompile("(?s)```(go|js)\n(.*?)```")

// TestDocsMatchCode keeps the snippets in docs/verifying-signatures.md
// identical to the code the tests above run, and checks that the Go snippet
// compiles on its own as a consumer would paste it.
func TestDocsMatchCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/verifying-signatures.md")
	if err != nil {
		t.Fatal(err)
	}
	var goSnippet, jsSnippet string
	for _, m := range fencedBlock.FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[2], "func verifyWebhook") || strings.Contains(m[2], "function verifyWebhook") {
			if m[1] == "go" {
				goSnippet = m[2]
			} else {
				jsSnippet = m[2]
			}
		}
	}
	if goSnippet == "" || jsSnippet == "" {
		t.Fatal("docs lack the Go or the Node.js verifyWebhook snippet")
	}

	code, err := os.ReadFile("example_consumer_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, goFuncs, ok := strings.Cut(goSnippet, "\n)\n\n")
	if !ok {
		t.Fatal("Go snippet has no import block")
	}
	if !strings.Contains(string(code), goFuncs) {
		t.Error("Go snippet in docs differs from the functions in example_consumer_test.go")
	}
	js, err := os.ReadFile("testdata/verify.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), jsSnippet) {
		t.Error("Node.js snippet in docs differs from testdata/verify.js")
	}

	if testing.Short() {
		return
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/consumer\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "webhook.go"), []byte(goSnippet), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "vet", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docs Go snippet does not build on its own: %v\n%s", err, out)
	}
}
