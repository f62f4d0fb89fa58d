package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SecretPrefix marks a Standard Webhooks secret; what follows is standard
// base64 of the HMAC key.
const SecretPrefix = "whsec_"

// DefaultTolerance is the replay window: how far a signed timestamp may be
// from the verifier's clock. Five minutes is what the Standard Webhooks
// reference libraries use and absorbs ordinary clock skew.
const DefaultTolerance = 5 * time.Minute

// Header names in canonical form, so that SetHeaders can assign the map
// directly and every reader finds them through http.Header.Get. On the wire
// Standard Webhooks examples spell them in lower case; header names are
// case-insensitive, so both spellings are the same header.
const (
	HeaderID              = "Webhook-Id"
	HeaderTimestamp       = "Webhook-Timestamp"
	HeaderSignature       = "Webhook-Signature"
	HeaderLegacyDelivery  = "X-Webhook-Delivery"
	HeaderLegacyTimestamp = "X-Webhook-Timestamp"
	HeaderLegacySignature = "X-Webhook-Signature"
)

const (
	standardVersion  = "v1,"
	legacyScheme     = "sha256="
	secretBytes      = 32
	macSize          = sha256.Size
	standardEntryLen = len(standardVersion) + 44 // 44 = base64.StdEncoding.EncodedLen(macSize)
	legacyLen        = len(legacyScheme) + 2*macSize
	// signPrefixRoom covers id + "." + ts + "." for ids up to ~100 bytes, so
	// the first Sign on a fresh state does not have to grow its buffer.
	signPrefixRoom = 128
)

// Verification failures. They are returned wrapped with the header or detail
// concerned; test them with errors.Is.
var (
	ErrMissingHeader       = errors.New("missing header")
	ErrInvalidTimestamp    = errors.New("invalid timestamp")
	ErrTimestampOutOfRange = errors.New("timestamp outside tolerance")
	ErrNoMatchingSignature = errors.New("no matching signature")
)

// NewSecret returns a fresh Standard Webhooks secret. The key is 32 random
// bytes: 256 bits matches SHA-256's output, and a longer HMAC key adds no
// strength.
func NewSecret() (string, error) {
	var key [secretBytes]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("reading random key: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:]), nil
}

// DecodeSecret returns the HMAC key of a Standard Webhooks secret. A secret
// without the "whsec_" prefix is accepted because some providers hand out the
// bare base64 key.
func DecodeSecret(secret string) ([]byte, error) {
	encoded := strings.TrimPrefix(secret, SecretPrefix)
	if encoded == "" {
		return nil, errors.New("decoding secret: key after \"whsec_\" is empty")
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// The base64 error names only a byte offset, never the secret itself.
		return nil, fmt.Errorf("decoding secret: key after \"whsec_\" is not standard base64: %w", err)
	}
	return key, nil
}

// Signer signs deliveries for one endpoint. It is safe for concurrent use.
type Signer struct {
	stdKeys   [][]byte // decoded keys, current first
	legacyKey []byte   // current secret as written
	states    sync.Pool
}

// signState is everything one Sign needs, borrowed from the pool as a unit so
// a signature costs one Get/Put pair however many secrets are in rotation.
type signState struct {
	std    []hash.Hash
	legacy hash.Hash
	// buf holds the signed-content prefix and then the assembled output;
	// keeping it here lets Write and Sum run without allocating.
	buf []byte
	sum [macSize]byte
}

// NewSigner returns a Signer for the given secrets, current first, then any
// older ones still accepted by consumers during a rotation overlap.
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("creating signer: no secret")
	}
	s := &Signer{
		stdKeys:   make([][]byte, len(secrets)),
		legacyKey: []byte(secrets[0]),
	}
	for i, secret := range secrets {
		key, err := DecodeSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("creating signer: secret %d: %w", i, err)
		}
		s.stdKeys[i] = key
	}
	s.states.New = func() any {
		st := &signState{
			std:    make([]hash.Hash, len(s.stdKeys)),
			legacy: hmac.New(sha256.New, s.legacyKey),
			buf:    make([]byte, 0, signPrefixRoom+len(s.stdKeys)*(standardEntryLen+1)+legacyLen),
		}
		for i, key := range s.stdKeys {
			st.std[i] = hmac.New(sha256.New, key)
		}
		return st
	}
	return s, nil
}

// Signature is what one delivery carries in its headers. Timestamp and the
// two signatures are substrings of one string, which keeps Sign to a single
// allocation.
type Signature struct {
	ID               string // webhook-id and X-Webhook-Delivery
	Timestamp        string // unix seconds, both schemes
	StandardWebhooks string // webhook-signature
	Legacy           string // X-Webhook-Signature
}

// Sign computes both schemes for one request. ts is truncated to seconds.
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) Signature {
	st := s.states.Get().(*signState)
	defer s.states.Put(st)

	// Signed content is id "." ts "." body; the id is only needed by the
	// Standard Webhooks scheme, so the legacy content is a suffix of the same
	// prefix and both hashes are fed from one buffer.
	buf := append(st.buf[:0], msgID...)
	buf = append(buf, '.')
	tsStart := len(buf)
	buf = strconv.AppendInt(buf, ts.Unix(), 10)
	tsEnd := len(buf)
	buf = append(buf, '.')
	prefixEnd := len(buf)

	// Assemble the output after the prefix and convert it to one string at
	// the end: one allocation per Sign instead of one per field.
	out := append(buf, buf[tsStart:tsEnd]...)
	for i, h := range st.std {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, standardVersion...)
		out = base64.StdEncoding.AppendEncode(out, macOf(h, st.sum[:0], buf[:prefixEnd], body))
	}
	stdEnd := len(out) - prefixEnd
	out = append(out, legacyScheme...)
	out = hex.AppendEncode(out, macOf(st.legacy, st.sum[:0], buf[tsStart:prefixEnd], body))
	st.buf = out[:0] // keep any growth for the next Sign

	str := string(out[prefixEnd:])
	tsLen := tsEnd - tsStart
	return Signature{
		ID:               msgID,
		Timestamp:        str[:tsLen],
		StandardWebhooks: str[tsLen:stdEnd],
		Legacy:           str[stdEnd:],
	}
}

// macOf appends HMAC(prefix || body) to dst, using h after resetting it. It is
// the one place both schemes compute a MAC, for signing and verifying.
func macOf(h hash.Hash, dst, prefix, body []byte) []byte {
	h.Reset()
	h.Write(prefix)
	h.Write(body)
	return h.Sum(dst)
}

// SetHeaders writes both schemes' headers into h, replacing any values there.
// It leaves X-Webhook-Event to the caller, who knows the event type.
func (sig Signature) SetHeaders(h http.Header) {
	// One backing array for the six values; the full slice expressions cap
	// each at one element so a later h.Add copies instead of overwriting the
	// next header's value.
	v := [...]string{sig.ID, sig.Timestamp, sig.StandardWebhooks, sig.ID, sig.Timestamp, sig.Legacy}
	vals := v[:]
	h[HeaderID] = vals[0:1:1]
	h[HeaderTimestamp] = vals[1:2:2]
	h[HeaderSignature] = vals[2:3:3]
	h[HeaderLegacyDelivery] = vals[3:4:4]
	h[HeaderLegacyTimestamp] = vals[4:5:5]
	h[HeaderLegacySignature] = vals[5:6:6]
}

// AppendHeaders appends the same six headers as name/value pairs, for a
// client that writes its request head itself.
func (sig Signature) AppendHeaders(dst [][2]string) [][2]string {
	return append(dst,
		[2]string{HeaderID, sig.ID}, [2]string{HeaderTimestamp, sig.Timestamp},
		[2]string{HeaderSignature, sig.StandardWebhooks}, [2]string{HeaderLegacyDelivery, sig.ID},
		[2]string{HeaderLegacyTimestamp, sig.Timestamp}, [2]string{HeaderLegacySignature, sig.Legacy})
}

// Verify checks the Standard Webhooks headers of a request against secret.
// It accepts the request if any "v1," entry of webhook-signature matches, so a
// consumer holding either side of a rotation verifies; entries of other
// versions (such as asymmetric "v1a,") are ignored. tolerance <= 0 means
// DefaultTolerance, so a zero value never disables the replay window.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := DecodeSecret(secret)
	if err != nil {
		return err
	}
	_, err = verifyWith(hmac.New(sha256.New, key), nil, h, body, now, tolerance)
	return err
}

// Verifier is Verify for one secret, for a receiver that checks many
// requests: the key is decoded once and HMAC states are reused, as Signer
// does. It is safe for concurrent use. Only NewVerifier makes a usable one.
type Verifier struct {
	states sync.Pool // *verifyState
}

type verifyState struct {
	mac    hash.Hash
	prefix []byte
}

// NewVerifier returns a Verifier for a Standard Webhooks secret.
func NewVerifier(secret string) (*Verifier, error) {
	key, err := DecodeSecret(secret)
	if err != nil {
		return nil, err
	}
	v := &Verifier{}
	v.states.New = func() any { return &verifyState{mac: hmac.New(sha256.New, key)} }
	return v, nil
}

// Verify is the package's Verify with the Verifier's secret.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	st := v.states.Get().(*verifyState)
	var err error
	st.prefix, err = verifyWith(st.mac, st.prefix, h, body, now, tolerance)
	if cap(st.prefix) <= 1<<10 { // a huge webhook-id does not stay pooled
		v.states.Put(st)
	}
	return err
}

// verifyWith is Verify with mac keyed by the secret; it builds the signed
// prefix in buf and returns it for reuse.
func verifyWith(mac hash.Hash, buf []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) ([]byte, error) {
	id := h.Get(HeaderID)
	if id == "" {
		return buf, fmt.Errorf("webhook-id: %w", ErrMissingHeader)
	}
	ts := h.Get(HeaderTimestamp)
	if ts == "" {
		return buf, fmt.Errorf("webhook-timestamp: %w", ErrMissingHeader)
	}
	sigs := h.Get(HeaderSignature)
	if sigs == "" {
		return buf, fmt.Errorf("webhook-signature: %w", ErrMissingHeader)
	}
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return buf, fmt.Errorf("webhook-timestamp: %w", err)
	}

	buf = append(append(append(append(buf[:0], id...), '.'), ts...), '.')
	var sum [macSize]byte
	var want [standardEntryLen]byte
	copy(want[:], standardVersion)
	base64.StdEncoding.Encode(want[len(standardVersion):], macOf(mac, sum[:0], buf, body))

	for entry := range strings.SplitSeq(sigs, " ") {
		// Comparing whole entries, version included, ignores other versions
		// and rejects a bare "v1," without special cases.
		if hmac.Equal([]byte(entry), want[:]) {
			return buf, nil
		}
	}
	return buf, fmt.Errorf("webhook-signature: %w", ErrNoMatchingSignature)
}

// VerifyLegacy checks the original-design headers (X-Webhook-Timestamp and
// X-Webhook-Signature "sha256=<lower-case hex>") against secret, keyed by the
// secret's bytes as written. The timestamp rule is the same as Verify's.
func VerifyLegacy(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("verifying legacy signature: empty secret")
	}
	ts := h.Get(HeaderLegacyTimestamp)
	if ts == "" {
		return fmt.Errorf("x-webhook-timestamp: %w", ErrMissingHeader)
	}
	sig := h.Get(HeaderLegacySignature)
	if sig == "" {
		return fmt.Errorf("x-webhook-signature: %w", ErrMissingHeader)
	}
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return fmt.Errorf("x-webhook-timestamp: %w", err)
	}

	prefix := make([]byte, 0, len(ts)+1)
	prefix = append(append(prefix, ts...), '.')
	var sum [macSize]byte
	var want [legacyLen]byte
	copy(want[:], legacyScheme)
	hex.Encode(want[len(legacyScheme):], macOf(hmac.New(sha256.New, []byte(secret)), sum[:0], prefix, body))
	if !hmac.Equal([]byte(sig), want[:]) {
		return fmt.Errorf("x-webhook-signature: %w", ErrNoMatchingSignature)
	}
	return nil
}

// checkTimestamp enforces the replay window. Only plain decimal digits are
// accepted: the value is part of the signed content, so admitting "+" or
// spaces would only add spellings for the same instant.
func checkTimestamp(ts string, now time.Time, tolerance time.Duration) error {
	valid := true
	for i := 0; valid && i < len(ts); i++ {
		valid = '0' <= ts[i] && ts[i] <= '9'
	}
	if !valid {
		// %.24q bounds what attacker-chosen input can put into a log line.
		return fmt.Errorf("%.24q is not unix seconds: %w", ts, ErrInvalidTimestamp)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		// Only overflow is left; such an instant is certainly out of range.
		return fmt.Errorf("%.24q overflows int64: %w", ts, ErrTimestampOutOfRange)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare whole seconds: sec is arbitrary input, and subtracting it from
	// the clock as integers cannot overflow the way converting it to a
	// time.Time and back to a Duration can.
	nowSec, tolSec := now.Unix(), int64(tolerance/time.Second)
	if sec < nowSec-tolSec || sec > nowSec+tolSec {
		return fmt.Errorf("%s is not within %v of %d: %w", ts, tolerance, nowSec, ErrTimestampOutOfRange)
	}
	return nil
}
