// Package route decides which endpoints receive an event: an endpoint
// matches when it is active, its tenant equals the event's tenant (an
// endpoint without a tenant receives only events without a tenant), and one
// of its patterns matches the event type.
//
// Patterns are event types in which '*' stands for any run of characters,
// dots included: "order.created", "order.*", "*.failed", "*".
//
// The Table is an immutable snapshot, swapped atomically on every endpoint
// change, so matching on the stream's hot path takes no lock.
package route

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
)

// ValidatePattern reports whether p can be used as an event-type pattern.
func ValidatePattern(p string) error {
	if p == "" {
		return errors.New("pattern must not be empty")
	}
	if len(p) > 200 {
		return errors.New("pattern must be at most 200 characters")
	}
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._-:/*", r):
		default:
			return fmt.Errorf("pattern %q: character %q not allowed (use letters, digits, . _ - : / and *)", p, r)
		}
	}
	return nil
}

// Match reports whether event type t matches pattern p.
func Match(p, t string) bool {
	if !strings.Contains(p, "*") {
		return p == t
	}
	parts := strings.Split(p, "*")
	if !strings.HasPrefix(t, parts[0]) {
		return false
	}
	t = t[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(t, part)
		if i < 0 {
			return false
		}
		t = t[i+len(part):]
	}
	return strings.HasSuffix(t, last)
}

// Endpoint is an endpoint compiled for routing and signing. It is immutable:
// a change to the endpoint makes a new value.
type Endpoint struct {
	*store.Endpoint
	Signer *signature.Signer
}

// Compile prepares an endpoint for the table. The previous secret of a
// rotation signs beside the current one until PreviousSecretExpiresAt (a
// zero time: no end); an endpoint compiled after that signs with the current
// secret alone. Compiling happens when the endpoint changes, so a running
// walhook also relies on manage's secret expiry, which clears expired
// previous secrets in the table when they end and so reloads the endpoint.
func Compile(e *store.Endpoint) (*Endpoint, error) {
	secrets := []string{e.Secret}
	if e.PreviousSecret != "" && (e.PreviousSecretExpiresAt.IsZero() || time.Now().Before(e.PreviousSecretExpiresAt)) {
		secrets = append(secrets, e.PreviousSecret)
	}
	signer, err := signature.NewSigner(secrets...)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", e.ID, err)
	}
	return &Endpoint{Endpoint: e, Signer: signer}, nil
}

func (e *Endpoint) matches(eventType string) bool {
	for _, p := range e.EventTypes {
		if Match(p, eventType) {
			return true
		}
	}
	return false
}

// maxCached bounds the memo of (tenant, type) answers; event types are few in
// practice, but a misbehaving producer must not grow memory without bound.
const maxCached = 10000

// Table is an immutable set of active endpoints.
type Table struct {
	byID     map[string]*Endpoint
	byTenant map[string][]*Endpoint
	mu       sync.Mutex
	cache    map[[2]string][]*Endpoint
}

func newTable(byID map[string]*Endpoint) *Table {
	t := &Table{byID: byID, byTenant: map[string][]*Endpoint{}, cache: map[[2]string][]*Endpoint{}}
	for _, e := range byID {
		if e.Active {
			t.byTenant[e.TenantID] = append(t.byTenant[e.TenantID], e)
		}
	}
	return t
}

// Match returns the endpoints that receive an event; the slice is shared
// and must not be modified.
func (t *Table) Match(tenant, eventType string) []*Endpoint {
	key := [2]string{tenant, eventType}
	t.mu.Lock()
	hit, ok := t.cache[key]
	t.mu.Unlock()
	if ok {
		return hit
	}
	var out []*Endpoint
	for _, e := range t.byTenant[tenant] {
		if e.matches(eventType) {
			out = append(out, e)
		}
	}
	t.mu.Lock()
	if len(t.cache) < maxCached {
		t.cache[key] = out
	}
	t.mu.Unlock()
	return out
}

// Get returns an endpoint by id, active or not.
func (t *Table) Get(id string) (*Endpoint, bool) {
	e, ok := t.byID[id]
	return e, ok
}

// Each calls fn for every endpoint of the table, active or not.
func (t *Table) Each(fn func(*Endpoint)) {
	for _, e := range t.byID {
		fn(e)
	}
}

// Len is the number of endpoints in the table.
func (t *Table) Len() int { return len(t.byID) }

// Router holds the current table.
type Router struct {
	current atomic.Pointer[Table]
	mu      sync.Mutex // serialises writers
}

// NewRouter makes a router with an empty table.
func NewRouter() *Router {
	r := &Router{}
	r.current.Store(newTable(map[string]*Endpoint{}))
	return r
}

// Table is the current snapshot.
func (r *Router) Table() *Table { return r.current.Load() }

// Replace installs a table of exactly these endpoints.
func (r *Router) Replace(eps []*store.Endpoint) error {
	byID := make(map[string]*Endpoint, len(eps))
	for _, e := range eps {
		c, err := Compile(e)
		if err != nil {
			return err
		}
		byID[e.ID] = c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current.Store(newTable(byID))
	return nil
}

// Upsert adds or replaces one endpoint.
func (r *Router) Upsert(e *store.Endpoint) error {
	c, err := Compile(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.current.Load().byID
	byID := make(map[string]*Endpoint, len(old)+1)
	for k, v := range old {
		byID[k] = v
	}
	byID[e.ID] = c
	r.current.Store(newTable(byID))
	return nil
}

// Remove drops an endpoint.
func (r *Router) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.current.Load().byID
	if _, ok := old[id]; !ok {
		return
	}
	byID := make(map[string]*Endpoint, len(old))
	for k, v := range old {
		if k != id {
			byID[k] = v
		}
	}
	r.current.Store(newTable(byID))
}
