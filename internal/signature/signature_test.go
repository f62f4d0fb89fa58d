package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
)

type vector struct {
	Name      string `json:"name"`
	Secret    string `json:"secret"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
	Now       int64  `json:"now"`
	Signed    bool   `json:"signed"`
	Want      string `json:"want"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors in testdata/vectors.json")
	}
	return file.Vectors
}

var wantErrs = map[string]error{
	"ok":                     nil,
	"missing_header":         ErrMissingHeader,
	"invalid_timestamp":      ErrInvalidTimestamp,
	"timestamp_out_of_range": ErrTimestampOutOfRange,
	"no_matching_signature":  ErrNoMatchingSignature,
}

func checkErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Errorf("%s: got error %v, want success", what, got)
		}
		return
	}
	if !errors.Is(got, want) {
		t.Errorf("%s: got error %v, want %v", what, got, want)
	}
}

func mustSigner(tb testing.TB, secrets ...string) *Signer {
	tb.Helper()
	s, err := NewSigner(secrets...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustSecret(tb testing.TB) string {
	tb.Helper()
	s, err := NewSecret()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestStandardWebhooksVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			want, ok := wantErrs[v.Want]
			if !ok {
				t.Fatalf("unknown want %q in vectors.json", v.Want)
			}
			h := http.Header{}
			// Lower-case names as the spec's examples send them: Get must
			// still find them once net/http has canonicalised them.
			h.Set("webhook-id", v.ID)
			h.Set("webhook-timestamp", v.Timestamp)
			h.Set("webhook-signature", v.Signature)
			err := Verify(v.Secret, h, []byte(v.Body), time.Unix(v.Now, 0), DefaultTolerance)
			checkErr(t, "Verify", err, want)

			if !v.Signed {
				return
			}
			sec, err := strconv.ParseInt(v.Timestamp, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sig := mustSigner(t, v.Secret).Sign(v.ID, time.Unix(sec, 0), []byte(v.Body))
			if sig.StandardWebhooks != v.Signature {
				t.Errorf("Sign: webhook-signature = %q, want %q", sig.StandardWebhooks, v.Signature)
			}
			if sig.Timestamp != v.Timestamp || sig.ID != v.ID {
				t.Errorf("Sign: id, timestamp = %q, %q; want %q, %q", sig.ID, sig.Timestamp, v.ID, v.Timestamp)
			}
		})
	}
}

// TestHexHMAC proves the MAC primitive both schemes share against GitHub's
// published X-Hub-Signature-256 example, which is the legacy scheme's
// encoding: hex HMAC-SHA256 keyed by the secret string's bytes.
func TestHexHMAC(t *testing.T) {
	const (
		key  = "It's a Secret to Everybody"
		want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	)
	tests := []struct {
		name         string
		prefix, body string
	}{
		{name: "whole message as body", body: "Hello, World!"},
		{name: "whole message as prefix", prefix: "Hello, World!"},
		{name: "split between prefix and body", prefix: "Hello, ", body: "World!"},
	}
	h := hmac.New(sha256.New, []byte(key))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Reusing h across cases also proves macOf resets it.
			got := hex.EncodeToString(macOf(h, nil, []byte(tt.prefix), []byte(tt.body)))
			if got != want {
				t.Errorf("hex HMAC = %s, want %s", got, want)
			}
		})
	}
}

// TestLegacyScheme pins the legacy construction with an independent
// computation: key is the secret as written, content is ts "." body.
func TestLegacyScheme(t *testing.T) {
	sig := mustSigner(t, vectorSecret).Sign(vectorID, time.Unix(vectorTS, 0), []byte(vectorBody))
	mac := hmac.New(sha256.New, []byte(vectorSecret))
	mac.Write([]byte(strconv.Itoa(vectorTS) + "." + vectorBody))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); sig.Legacy != want {
		t.Errorf("Legacy = %q, want %q", sig.Legacy, want)
	}
}

func TestRoundTrip(t *testing.T) {
	secret := mustSecret(t)
	other := mustSecret(t)
	signer := mustSigner(t, secret)
	signedAt := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"order.paid","data":{"id":42}}`)

	tests := []struct {
		name string
		// edit changes the request or the verifier's view before verifying.
		edit       func(h http.Header, body *[]byte, secret *string, now *time.Time)
		wantStd    error
		wantLegacy error
	}{
		{
			name: "unmodified",
			edit: func(http.Header, *[]byte, *string, *time.Time) {},
		},
		{
			name:       "tampered body",
			edit:       func(_ http.Header, b *[]byte, _ *string, _ *time.Time) { *b = append(*b, ' ') },
			wantStd:    ErrNoMatchingSignature,
			wantLegacy: ErrNoMatchingSignature,
		},
		{
			name:       "empty body",
			edit:       func(_ http.Header, b *[]byte, _ *string, _ *time.Time) { *b = nil },
			wantStd:    ErrNoMatchingSignature,
			wantLegacy: ErrNoMatchingSignature,
		},
		{
			name:       "wrong secret",
			edit:       func(_ http.Header, _ *[]byte, s *string, _ *time.Time) { *s = other },
			wantStd:    ErrNoMatchingSignature,
			wantLegacy: ErrNoMatchingSignature,
		},
		{
			// The legacy scheme never signed the id; only Standard Webhooks
			// binds it.
			name:    "wrong id",
			edit:    func(h http.Header, _ *[]byte, _ *string, _ *time.Time) { h.Set(HeaderID, "msg_other") },
			wantStd: ErrNoMatchingSignature,
		},
		{
			name: "timestamp moved within window",
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Set(HeaderTimestamp, "1700000001")
				h.Set(HeaderLegacyTimestamp, "1700000001")
			},
			wantStd:    ErrNoMatchingSignature,
			wantLegacy: ErrNoMatchingSignature,
		},
		{
			name: "signatures swapped between schemes",
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				std, legacy := h.Get(HeaderSignature), h.Get(HeaderLegacySignature)
				h.Set(HeaderSignature, legacy)
				h.Set(HeaderLegacySignature, std)
			},
			wantStd:    ErrNoMatchingSignature,
			wantLegacy: ErrNoMatchingSignature,
		},
		{
			name: "upper-case hex",
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Set(HeaderLegacySignature, "sha256="+strings.ToUpper(strings.TrimPrefix(h.Get(HeaderLegacySignature), "sha256=")))
			},
			wantLegacy: ErrNoMatchingSignature,
		},
		{
			name:    "missing webhook-id",
			edit:    func(h http.Header, _ *[]byte, _ *string, _ *time.Time) { h.Del(HeaderID) },
			wantStd: ErrMissingHeader,
		},
		{
			name: "missing timestamps",
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Del(HeaderTimestamp)
				h.Del(HeaderLegacyTimestamp)
			},
			wantStd:    ErrMissingHeader,
			wantLegacy: ErrMissingHeader,
		},
		{
			name: "missing signatures",
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Del(HeaderSignature)
				h.Del(HeaderLegacySignature)
			},
			wantStd:    ErrMissingHeader,
			wantLegacy: ErrMissingHeader,
		},
		{
			name: "empty signature values",
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Set(HeaderSignature, "")
				h.Set(HeaderLegacySignature, "")
			},
			wantStd:    ErrMissingHeader,
			wantLegacy: ErrMissingHeader,
		},
		{
			name:       "no headers at all",
			edit:       func(h http.Header, _ *[]byte, _ *string, _ *time.Time) { clear(h) },
			wantStd:    ErrMissingHeader,
			wantLegacy: ErrMissingHeader,
		},
	}
	for _, ts := range []string{"abc", "+1700000000", "-1700000000", "1700000000.0", " 1700000000", "1.7e9", "1700000000\n"} {
		tests = append(tests, struct {
			name       string
			edit       func(h http.Header, body *[]byte, secret *string, now *time.Time)
			wantStd    error
			wantLegacy error
		}{
			name: "malformed timestamp " + strconv.Quote(ts),
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Set(HeaderTimestamp, ts)
				h.Set(HeaderLegacyTimestamp, ts)
			},
			wantStd:    ErrInvalidTimestamp,
			wantLegacy: ErrInvalidTimestamp,
		})
	}
	for _, c := range []struct {
		name string
		now  time.Time
		want error
	}{
		{"received 5m after signing", signedAt.Add(5 * time.Minute), nil},
		{"received 5m1s after signing", signedAt.Add(5*time.Minute + time.Second), ErrTimestampOutOfRange},
		{"clock 5m behind", signedAt.Add(-5 * time.Minute), nil},
		{"clock 5m1s behind", signedAt.Add(-5*time.Minute - time.Second), ErrTimestampOutOfRange},
		{"received a day later", signedAt.Add(24 * time.Hour), ErrTimestampOutOfRange},
		{"receiver clock at epoch", time.Unix(0, 0), ErrTimestampOutOfRange},
	} {
		tests = append(tests, struct {
			name       string
			edit       func(h http.Header, body *[]byte, secret *string, now *time.Time)
			wantStd    error
			wantLegacy error
		}{
			name:       c.name,
			edit:       func(_ http.Header, _ *[]byte, _ *string, now *time.Time) { *now = c.now },
			wantStd:    c.want,
			wantLegacy: c.want,
		})
	}
	for _, ts := range []string{"0", "9223372036854775807", "9999999999999999999", "17000000000000000000000"} {
		tests = append(tests, struct {
			name       string
			edit       func(h http.Header, body *[]byte, secret *string, now *time.Time)
			wantStd    error
			wantLegacy error
		}{
			name: "far timestamp " + ts,
			edit: func(h http.Header, _ *[]byte, _ *string, _ *time.Time) {
				h.Set(HeaderTimestamp, ts)
				h.Set(HeaderLegacyTimestamp, ts)
			},
			wantStd:    ErrTimestampOutOfRange,
			wantLegacy: ErrTimestampOutOfRange,
		})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			signer.Sign("msg_2f1c", signedAt, body).SetHeaders(h)
			b, s, now := slices.Clone(body), secret, signedAt
			tt.edit(h, &b, &s, &now)
			checkErr(t, "Verify", Verify(s, h, b, now, DefaultTolerance), tt.wantStd)
			checkErr(t, "VerifyLegacy", VerifyLegacy(s, h, b, now, DefaultTolerance), tt.wantLegacy)
		})
	}
}

func TestToleranceZeroMeansDefault(t *testing.T) {
	h := http.Header{}
	signedAt := time.Unix(vectorTS, 0)
	mustSigner(t, vectorSecret).Sign(vectorID, signedAt, []byte(vectorBody)).SetHeaders(h)
	for _, tol := range []time.Duration{0, -time.Second} {
		t.Run(tol.String(), func(t *testing.T) {
			checkErr(t, "within default", Verify(vectorSecret, h, []byte(vectorBody), signedAt.Add(4*time.Minute), tol), nil)
			checkErr(t, "beyond default", Verify(vectorSecret, h, []byte(vectorBody), signedAt.Add(6*time.Minute), tol), ErrTimestampOutOfRange)
			checkErr(t, "legacy beyond default", VerifyLegacy(vectorSecret, h, []byte(vectorBody), signedAt.Add(6*time.Minute), tol), ErrTimestampOutOfRange)
		})
	}
	checkErr(t, "custom tolerance", Verify(vectorSecret, h, []byte(vectorBody), signedAt.Add(6*time.Minute), 10*time.Minute), nil)
}

func TestRotation(t *testing.T) {
	newSecret, oldSecret, unrelated := mustSecret(t), mustSecret(t), mustSecret(t)
	signer := mustSigner(t, newSecret, oldSecret)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"rotating":true}`)
	sig := signer.Sign("msg_rot", now, body)

	entries := strings.Split(sig.StandardWebhooks, " ")
	if len(entries) != 2 {
		t.Fatalf("webhook-signature has %d entries, want 2: %q", len(entries), sig.StandardWebhooks)
	}
	// Current first: it is exactly what a single-secret signer would send.
	if want := mustSigner(t, newSecret).Sign("msg_rot", now, body); entries[0] != want.StandardWebhooks || sig.Legacy != want.Legacy {
		t.Errorf("rotation signer does not lead with the new secret:\n got %q / %q\nwant %q / %q", entries[0], sig.Legacy, want.StandardWebhooks, want.Legacy)
	}
	if want := mustSigner(t, oldSecret).Sign("msg_rot", now, body); entries[1] != want.StandardWebhooks {
		t.Errorf("second entry = %q, want old secret's %q", entries[1], want.StandardWebhooks)
	}

	h := http.Header{}
	sig.SetHeaders(h)
	tests := []struct {
		name       string
		secret     string
		wantStd    error
		wantLegacy error
	}{
		{name: "new secret", secret: newSecret},
		{name: "old secret", secret: oldSecret, wantLegacy: ErrNoMatchingSignature},
		{name: "unrelated secret", secret: unrelated, wantStd: ErrNoMatchingSignature, wantLegacy: ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, "Verify", Verify(tt.secret, h, body, now, DefaultTolerance), tt.wantStd)
			checkErr(t, "VerifyLegacy", VerifyLegacy(tt.secret, h, body, now, DefaultTolerance), tt.wantLegacy)
		})
	}
}

func TestNewSecret(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	for _, s := range []string{a, b} {
		if !strings.HasPrefix(s, SecretPrefix) {
			t.Errorf("%q lacks prefix %q", s, SecretPrefix)
		}
		key, err := DecodeSecret(s)
		if err != nil {
			t.Fatalf("DecodeSecret(NewSecret()): %v", err)
		}
		if len(key) != 32 {
			t.Errorf("key is %d bytes, want 32", len(key))
		}
	}
	if a == b {
		t.Errorf("two calls returned the same secret %q", a)
	}
}

func TestDecodeSecret(t *testing.T) {
	const key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	want, _ := base64.StdEncoding.DecodeString(key)
	tests := []struct {
		name    string
		secret  string
		want    []byte
		wantErr string // substring naming what is wrong
	}{
		{name: "with prefix", secret: "whsec_" + key, want: want},
		{name: "without prefix", secret: key, want: want},
		{name: "empty", secret: "", wantErr: "empty"},
		{name: "prefix only", secret: "whsec_", wantErr: "empty"},
		{name: "url-safe alphabet", secret: "whsec_ab-_", wantErr: "not standard base64"},
		{name: "missing padding", secret: "whsec_YWJj" + "ZA", wantErr: "not standard base64"},
		{name: "spaces", secret: "whsec_" + key[:8] + " " + key[8:], wantErr: "not standard base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSecret(tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeSecret(%q) error = %v, want one mentioning %q", tt.secret, err, tt.wantErr)
				}
				if len(tt.secret) > len(SecretPrefix) && strings.Contains(err.Error(), strings.TrimPrefix(tt.secret, SecretPrefix)) {
					t.Errorf("error %q leaks the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("DecodeSecret(%q) = %x, want %x", tt.secret, got, tt.want)
			}
		})
	}
}

func TestNewSignerErrors(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		wantErr string
	}{
		{name: "no secrets", wantErr: "no secret"},
		{name: "bad current", secrets: []string{"whsec_%%%"}, wantErr: "secret 0"},
		{name: "bad old", secrets: []string{vectorSecret, "whsec_"}, wantErr: "secret 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSigner(tt.secrets...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewSigner error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if s != nil {
				t.Errorf("NewSigner returned a signer with an error")
			}
		})
	}
}

func TestSetHeaders(t *testing.T) {
	sig := Signature{ID: "msg_1", Timestamp: "1700000000", StandardWebhooks: "v1,abc", Legacy: "sha256=def"}
	h := http.Header{
		"X-Webhook-Event": {"order.paid"},
		HeaderID:          {"stale", "values"},
	}
	sig.SetHeaders(h)
	want := http.Header{
		"X-Webhook-Event":     {"order.paid"},
		"Webhook-Id":          {"msg_1"},
		"Webhook-Timestamp":   {"1700000000"},
		"Webhook-Signature":   {"v1,abc"},
		"X-Webhook-Delivery":  {"msg_1"},
		"X-Webhook-Timestamp": {"1700000000"},
		"X-Webhook-Signature": {"sha256=def"},
	}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("headers = %v\nwant %v", h, want)
	}
	for k := range want {
		if http.CanonicalHeaderKey(k) != k {
			t.Errorf("%q is not canonical, h.Get would miss it", k)
		}
	}
	// The values share one array; appending to one must not clobber the next.
	h.Add(HeaderID, "extra")
	if got := h.Values(HeaderTimestamp); !slices.Equal(got, []string{"1700000000"}) {
		t.Errorf("after Add to webhook-id, webhook-timestamp = %q", got)
	}
}

func TestSignConcurrent(t *testing.T) {
	newSecret, oldSecret := mustSecret(t), mustSecret(t)
	signer := mustSigner(t, newSecret, oldSecret)
	now := time.Unix(1_700_000_000, 0)
	const goroutines, perGoroutine = 32, 100
	// Verifiers are shared by all goroutines, as a receiver shares one.
	var verifiers []*Verifier
	for _, secret := range []string{newSecret, oldSecret} {
		v, err := NewVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	stranger, err := NewVerifier(mustSecret(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				id := fmt.Sprintf("msg_%d_%d", g, i)
				// Bodies and ids of varying length exercise the pooled
				// buffers' reuse across sizes.
				body := []byte(strings.Repeat("x", (g*perGoroutine+i)%2048))
				ts := now.Add(time.Duration(i) * time.Second)
				h := http.Header{}
				signer.Sign(id, ts, body).SetHeaders(h)
				for _, secret := range []string{newSecret, oldSecret} {
					if err := Verify(secret, h, body, ts, DefaultTolerance); err != nil {
						t.Errorf("%s: Verify: %v", id, err)
					}
				}
				if err := VerifyLegacy(newSecret, h, body, ts, DefaultTolerance); err != nil {
					t.Errorf("%s: VerifyLegacy: %v", id, err)
				}
				// A reused state must neither accept a changed body nor
				// carry anything from one request to the next.
				tampered := append(body[:len(body):len(body)], '!')
				for _, v := range verifiers {
					if err := v.Verify(h, tampered, ts, DefaultTolerance); !errors.Is(err, ErrNoMatchingSignature) {
						t.Errorf("%s: Verifier.Verify of a changed body: %v", id, err)
					}
					if err := v.Verify(h, body, ts, DefaultTolerance); err != nil {
						t.Errorf("%s: Verifier.Verify: %v", id, err)
					}
				}
				if err := stranger.Verify(h, body, ts, DefaultTolerance); !errors.Is(err, ErrNoMatchingSignature) {
					t.Errorf("%s: a Verifier of another secret: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
}

// TestSignAllocs holds the hot path to a single allocation, the string that
// all of Signature's fields share.
func TestSignAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	signer := mustSigner(t, mustSecret(t))
	body := make([]byte, 1024)
	ts := time.Unix(1_700_000_000, 0)
	signer.Sign("msg_warm", ts, body)
	if n := testing.AllocsPerRun(1000, func() { signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body) }); n > 1 {
		t.Errorf("Sign allocates %v times per call, want at most 1", n)
	}
}

// FuzzVerify feeds arbitrary headers and bodies to both verifiers. Against an
// independent HMAC computation it checks that they accept exactly when the
// header holds the signature a signer would produce and the timestamp is in
// the window, and that Sign agrees with that computation.
func FuzzVerify(f *testing.F) {
	now := time.Unix(vectorTS, 0)
	signer := mustSigner(f, vectorSecret)
	key, err := DecodeSecret(vectorSecret)
	if err != nil {
		f.Fatal(err)
	}
	good := signer.Sign(vectorID, now, []byte(vectorBody))
	f.Add(good.ID, good.Timestamp, good.StandardWebhooks, good.Legacy, []byte(vectorBody))
	f.Add(good.ID, good.Timestamp, "v1, v1a,xyz "+good.StandardWebhooks+" ", good.Legacy+" ", []byte(vectorBody))
	f.Add(good.ID, good.Timestamp, "v1,", "sha256=", []byte(vectorBody))
	f.Add(good.ID, "1614265331", good.StandardWebhooks, good.Legacy, []byte(vectorBody))
	f.Add(good.ID, "+1614265330", good.StandardWebhooks, good.Legacy, []byte(vectorBody))
	f.Add(good.ID, "01614265330", "v1,"+strings.Repeat("A", 43)+"=", "sha256="+strings.Repeat("0", 64), []byte{})
	f.Add("", "", "", "", []byte(nil))
	f.Add("msg_\x00", "99999999999999999999", "\xff,\xff", "sha256=\xff", []byte("\x00"))

	f.Fuzz(func(t *testing.T, id, ts, stdHeader, legacyHeader string, body []byte) {
		h := http.Header{
			HeaderID:              {id},
			HeaderTimestamp:       {ts},
			HeaderSignature:       {stdHeader},
			HeaderLegacyTimestamp: {ts},
			HeaderLegacySignature: {legacyHeader},
		}
		stdErr := Verify(vectorSecret, h, body, now, DefaultTolerance)
		legacyErr := VerifyLegacy(vectorSecret, h, body, now, DefaultTolerance)
		for _, err := range []error{stdErr, legacyErr} {
			if err != nil && !errors.Is(err, ErrMissingHeader) && !errors.Is(err, ErrInvalidTimestamp) &&
				!errors.Is(err, ErrTimestampOutOfRange) && !errors.Is(err, ErrNoMatchingSignature) {
				t.Fatalf("error %v is none of the sentinels", err)
			}
		}

		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		wantStd := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		mac = hmac.New(sha256.New, []byte(vectorSecret))
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		wantLegacy := "sha256=" + hex.EncodeToString(mac.Sum(nil))

		sec, perr := strconv.ParseUint(ts, 10, 63)
		inWindow := perr == nil && int64(sec) >= vectorTS-300 && int64(sec) <= vectorTS+300
		stdOK := id != "" && inWindow && slices.Contains(strings.Split(stdHeader, " "), wantStd)
		legacyOK := inWindow && legacyHeader == wantLegacy
		if (stdErr == nil) != stdOK {
			t.Errorf("Verify(id=%q ts=%q sig=%q) = %v, want accepted=%v", id, ts, stdHeader, stdErr, stdOK)
		}
		if (legacyErr == nil) != legacyOK {
			t.Errorf("VerifyLegacy(ts=%q sig=%q) = %v, want accepted=%v", ts, legacyHeader, legacyErr, legacyOK)
		}

		// Sign must agree with the independent computation whenever ts is
		// what Sign would write for that instant.
		if perr == nil && strconv.FormatUint(sec, 10) == ts {
			sig := signer.Sign(id, time.Unix(int64(sec), 0), body)
			if sig.StandardWebhooks != wantStd || sig.Legacy != wantLegacy || sig.Timestamp != ts {
				t.Errorf("Sign(%q, %s) = %+v, want %s / %s", id, ts, sig, wantStd, wantLegacy)
			}
		}
	})
}

func benchBody() []byte {
	body := []byte(`{"type":"order.paid","data":{"padding":"`)
	body = append(body, strings.Repeat("x", 1024-len(body)-3)...)
	return append(body, `"}}`...)
}

func BenchmarkSign(b *testing.B) {
	signer := mustSigner(b, mustSecret(b))
	body := benchBody()
	ts := time.Unix(1_700_000_000, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		signer.Sign("msg_2Vw1qHfPZp8bL0m3xYk9TcR4sD", ts, body)
	}
}

func BenchmarkSignRotation(b *testing.B) {
	signer := mustSigner(b, mustSecret(b), mustSecret(b))
	body := benchBody()
	ts := time.Unix(1_700_000_000, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		signer.Sign("msg_2Vw1qHfPZp8bL0m3xYk9TcR4sD", ts, body)
	}
}

func BenchmarkSignParallel(b *testing.B) {
	signer := mustSigner(b, mustSecret(b))
	body := benchBody()
	ts := time.Unix(1_700_000_000, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			signer.Sign("msg_2Vw1qHfPZp8bL0m3xYk9TcR4sD", ts, body)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	secret := mustSecret(b)
	body := benchBody()
	ts := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	mustSigner(b, secret).Sign("msg_2Vw1qHfPZp8bL0m3xYk9TcR4sD", ts, body).SetHeaders(h)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(secret, h, body, ts, DefaultTolerance); err != nil {
			b.Fatal(err)
		}
	}
}
