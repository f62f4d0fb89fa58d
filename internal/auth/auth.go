// Package auth decides who is calling walhook's management API and which
// tenant's objects the call may see. It owns the three auth.mode values:
//
//   - token: bearer tokens from the configuration. auth.tokens are admin
//     tokens (every tenant); auth.tenant_tokens ("TENANT=TOKEN") are bound to
//     one tenant. Tokens are compared as SHA-256 digests with
//     crypto/subtle, every configured token on every request, so neither the
//     time taken nor the comparison order says which token (if any) matched
//     or how much of it.
//   - forward: the app decides. For each request walhook sends the app's
//     auth route (auth.forward_url) the request's Cookie and Authorization
//     headers; a 2xx answer naming a tenant in auth.forward_tenant_header
//     admits the request for that tenant alone. Answers are cached for
//     auth.forward_cache_ttl per distinct Cookie + Authorization pair.
//   - none: every request is admin. Configuration refuses it unless listen
//     is a loopback address; the wiring logs a warning at every start.
//
// Invariants: a Principal is either All (admin) or bound to exactly one
// tenant, never both; nothing here logs or returns a credential.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/walhook/walhook/internal/config"
)

// Principal is who an API request acts as.
type Principal struct {
	// All is true for admins: every tenant's objects.
	All bool
	// Tenant is the one tenant a non-admin may see.
	Tenant string
}

// Scope is the tenant filter for store queries: nil for admins.
func (p Principal) Scope() *string {
	if p.All {
		return nil
	}
	t := p.Tenant
	return &t
}

// Error is a refused request: Status is 401, 403 or 503.
type Error struct {
	Status  int
	Message string
	// Challenge, when set, is the WWW-Authenticate value of a 401.
	Challenge string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// Authenticator admits or refuses API requests.
type Authenticator interface {
	// Authenticate returns the request's principal, or an *Error.
	Authenticate(r *http.Request) (Principal, error)
}

// New builds the authenticator of auth.mode. The configuration is assumed
// validated (config.Validate).
func New(c config.Auth, log *slog.Logger) (Authenticator, error) {
	switch c.Mode {
	case config.AuthToken, "":
		return NewTokens(c.Tokens, c.TenantTokens)
	case config.AuthForward:
		return NewForward(ForwardOptions{URL: c.ForwardURL, TenantHeader: c.ForwardTenantHeader,
			CacheTTL: c.ForwardCacheTTL, Timeout: c.ForwardTimeout, Logger: log})
	case config.AuthNone:
		return None{}, nil
	default:
		return nil, fmt.Errorf("auth.mode: unknown mode %q", c.Mode)
	}
}

// None admits every request as admin (auth.mode none).
type None struct{}

// Authenticate implements Authenticator.
func (None) Authenticate(*http.Request) (Principal, error) { return Principal{All: true}, nil }

// Tokens checks bearer tokens (auth.mode token).
type Tokens struct {
	digests    [][32]byte
	principals []Principal
}

// NewTokens builds the token check from admin tokens and "TENANT=TOKEN"
// entries.
func NewTokens(admin, tenant []string) (*Tokens, error) {
	t := &Tokens{}
	for _, tok := range admin {
		t.digests = append(t.digests, sha256.Sum256([]byte(tok)))
		t.principals = append(t.principals, Principal{All: true})
	}
	for i, entry := range tenant {
		name, tok, ok := config.SplitTenantToken(entry)
		if !ok {
			return nil, fmt.Errorf("auth.tenant_tokens[%d]: must be TENANT=TOKEN", i)
		}
		t.digests = append(t.digests, sha256.Sum256([]byte(tok)))
		t.principals = append(t.principals, Principal{Tenant: name})
	}
	return t, nil
}

var errNoToken = &Error{Status: http.StatusUnauthorized, Challenge: `Bearer realm="walhook"`,
	Message: "a valid bearer token is required (auth.tokens or auth.tenant_tokens)"}

// Authenticate implements Authenticator.
func (t *Tokens) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return Principal{}, errNoToken
	}
	sum := sha256.Sum256([]byte(tok))
	match := -1
	for i := range t.digests {
		eq := subtle.ConstantTimeCompare(sum[:], t.digests[i][:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return Principal{}, errNoToken
	}
	return t.principals[match], nil
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
