// Package config owns walhook's configuration: the keys, their defaults, how
// they are loaded (defaults < YAML file < WALHOOK_* environment, through
// koanf) and validated.
//
// Every key has a default here and a documented line in config/walhook.yaml;
// a test keeps the two in step. Unknown keys and bad values are errors that
// name the key, so a typo never silently falls back to a default.
//
// Environment variables: WALHOOK_ followed by the key in upper case with dots
// replaced by underscores (delivery.allow_private_networks is
// WALHOOK_DELIVERY_ALLOW_PRIVATE_NETWORKS). Lists are comma-separated.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the whole configuration of one walhook process.
type Config struct {
	Database    Database `koanf:"database"`
	Listen      string   `koanf:"listen"`
	AdminListen string   `koanf:"admin_listen"`
	// AdminPprof serves net/http/pprof under /debug/pprof/ on admin_listen.
	AdminPprof      bool          `koanf:"admin_pprof"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	Log             Log           `koanf:"log"`
	API             API           `koanf:"api"`
	UI              UI            `koanf:"ui"`
	Proxy           Proxy         `koanf:"proxy"`
	Auth            Auth          `koanf:"auth"`
	Outbox          Outbox        `koanf:"outbox"`
	Replication     Replication   `koanf:"replication"`
	Delivery        Delivery      `koanf:"delivery"`
	Endpoint        Endpoint      `koanf:"endpoint"`
	Metrics         Metrics       `koanf:"metrics"`
	// EventTypes is the catalogue of event types the app emits, offered when
	// subscribing; types seen on the stream are added to it.
	EventTypes []string `koanf:"event_types"`
}

// Database says where walhook's Postgres is.
type Database struct {
	// URL of the app's Postgres; empty starts an embedded private server.
	URL string `koanf:"url"`
	// Schema holds walhook's own tables.
	Schema string `koanf:"schema"`
	// StateURL, when set, is the Postgres database for what walhook
	// records per delivery: events, deliveries, attempts, dead letters, the
	// stream's cursor. Endpoints stay beside the outbox. On another server,
	// these writes stay out of the WAL the outbox's walsender reads.
	StateURL string `koanf:"state_url"`
	// DataDir of the embedded server (only without URL).
	DataDir  string `koanf:"data_dir"`
	MaxConns int    `koanf:"max_conns"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

// API configures the management API on Listen.
type API struct {
	// Prefix under which walhook serves its own routes.
	Prefix string `koanf:"prefix"`
}

// UI configures the dashboard served at api.prefix (package ui).
type UI struct {
	// Enabled serves the dashboard; false leaves only the JSON API.
	Enabled bool `koanf:"enabled"`
	// SessionTTL is how long a dashboard sign-in lasts (auth.mode token).
	SessionTTL time.Duration `koanf:"session_ttl"`
}

// Proxy configures the reverse proxy to the app on Listen.
type Proxy struct {
	// Upstream is the app's base URL (http://127.0.0.1:3000); every
	// request outside api.prefix goes there. Empty: walhook serves only its
	// own routes.
	Upstream string `koanf:"upstream"`
	// TrustedProxies are CIDRs of load balancers in front of walhook whose
	// X-Forwarded-* headers are kept and extended; others' are replaced.
	TrustedProxies []string `koanf:"trusted_proxies"`
}

// Auth modes.
const (
	AuthToken   = "token"   // bearer tokens from Tokens and TenantTokens
	AuthForward = "forward" // ask the app at ForwardURL for each request
	AuthNone    = "none"    // no authentication: only on a loopback listen
)

// Auth configures who may call the management API and which tenants they see.
type Auth struct {
	// Mode is token, forward or none.
	Mode string `koanf:"mode"`
	// Tokens are bearer tokens with access to every tenant (admin).
	Tokens []string `koanf:"tokens"`
	// TenantTokens are "TENANT=TOKEN" entries: bearer tokens that see only
	// the objects of one tenant. The tenant is what precedes the first "=".
	TenantTokens []string `koanf:"tenant_tokens"`
	// ForwardURL is the app's auth route (mode forward): walhook sends it
	// the request's Cookie and Authorization headers; a 2xx answer naming a
	// tenant in ForwardTenantHeader admits the request for that tenant.
	ForwardURL string `koanf:"forward_url"`
	// ForwardTenantHeader is the answer header naming the tenant.
	ForwardTenantHeader string `koanf:"forward_tenant_header"`
	// ForwardCacheTTL is how long an answer is reused for the same Cookie
	// and Authorization; 0 asks the app every time.
	ForwardCacheTTL time.Duration `koanf:"forward_cache_ttl"`
	// ForwardTimeout bounds one request to ForwardURL.
	ForwardTimeout time.Duration `koanf:"forward_timeout"`
}

// SplitTenantToken splits an auth.tenant_tokens entry "TENANT=TOKEN".
func SplitTenantToken(entry string) (tenant, token string, ok bool) {
	tenant, token, ok = strings.Cut(entry, "=")
	return tenant, token, ok && tenant != "" && token != ""
}

// Outbox describes the table the app inserts events into.
type Outbox struct {
	Table           string  `koanf:"table"`
	Columns         Columns `koanf:"columns"`
	MaxPayloadBytes int     `koanf:"max_payload_bytes"`
	// PayloadKinds are the JSON kinds a payload may be: object, array,
	// string, number, boolean, null. Other rows are dead-lettered.
	PayloadKinds []string `koanf:"payload_kinds"`
}

// Columns names the outbox columns; TenantID and CreatedAt may be empty when
// the table has no such column.
type Columns struct {
	ID        string `koanf:"id"`
	EventType string `koanf:"event_type"`
	Payload   string `koanf:"payload"`
	TenantID  string `koanf:"tenant_id"`
	CreatedAt string `koanf:"created_at"`
}

// Replication configures the logical replication stream.
type Replication struct {
	Slot        string `koanf:"slot"`
	Publication string `koanf:"publication"`
	// StatusInterval is how often the confirmed position is reported even
	// when nothing changed (Postgres' wal_sender_timeout is 60s by default).
	StatusInterval time.Duration `koanf:"status_interval"`
	// HeartbeatInterval is how often walhook writes a transactional logical
	// message so an idle outbox does not pin WAL; 0 disables it.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// ReadAheadBytes bounds the memory of rows received ahead of routing
	// and recording, so Postgres decodes on meanwhile (see stream.Options).
	ReadAheadBytes int64 `koanf:"read_ahead_bytes"`
	// SpillBytes of transactions may wait in a file in SpillDir (empty:
	// the system's temporary directory) once the read-ahead's memory is
	// full, so Postgres never waits for walhook; 0 turns it off.
	SpillBytes int64  `koanf:"spill_bytes"`
	SpillDir   string `koanf:"spill_dir"`
}

// Delivery configures outbound webhook requests.
type Delivery struct {
	Timeout              time.Duration `koanf:"timeout"`
	AllowPrivateNetworks bool          `koanf:"allow_private_networks"`
	// RequireHTTPS refuses endpoint URLs that are not https when endpoints
	// are created or their URL is changed.
	RequireHTTPS  bool            `koanf:"require_https"`
	MaxAttempts   int             `koanf:"max_attempts"`
	RetrySchedule []time.Duration `koanf:"retry_schedule"`
	// RetryJitter spreads each retry delay by ±this fraction.
	RetryJitter float64 `koanf:"retry_jitter"`
	// Workers bounds concurrent requests across all endpoints.
	Workers int `koanf:"workers"`
	// EndpointInflight bounds concurrent requests to one endpoint.
	EndpointInflight int `koanf:"endpoint_inflight"`
	// ResponseBodyLimit is how many characters of a response are kept.
	ResponseBodyLimit int    `koanf:"response_body_limit"`
	UserAgent         string `koanf:"user_agent"`
	// QueueLimit is how many attempts may wait in one endpoint's queue in
	// memory; beyond it, deliveries are parked by id and their payloads
	// read back from the store when the queue has room again.
	QueueLimit     int            `koanf:"queue_limit"`
	CircuitBreaker CircuitBreaker `koanf:"circuit_breaker"`
}

// CircuitBreaker stops sending to an endpoint that keeps failing: after
// Failures consecutive failed attempts its deliveries wait, without spending
// attempts, until one probe request succeeds. Probes are spaced by Cooldown,
// doubling after each failed probe up to MaxCooldown.
type CircuitBreaker struct {
	Failures    int           `koanf:"failures"`
	Cooldown    time.Duration `koanf:"cooldown"`
	MaxCooldown time.Duration `koanf:"max_cooldown"`
}

// Metrics configures what /metrics exports beyond the defaults.
type Metrics struct {
	// EndpointLabels, when positive, labels final delivery outcomes with
	// the endpoint id for that many endpoints (the rest as "_other"):
	// ids are unbounded, so this is opt-in and capped.
	EndpointLabels int `koanf:"endpoint_labels"`
}

// Endpoint configures endpoint health.
type Endpoint struct {
	// DisableAfter disables an endpoint whose attempts have all failed for
	// this long (0: never); re-enabling it is an explicit action.
	DisableAfter time.Duration `koanf:"disable_after"`
	// SecretOverlap is how long the previous secret keeps signing (beside
	// the new one) after a rotation, unless the rotation asks otherwise.
	SecretOverlap time.Duration `koanf:"secret_overlap"`
}

// Defaults returns the configuration used where nothing else is said.
func Defaults() Config {
	return Config{
		Database: Database{
			Schema:   "walhook",
			DataDir:  ".walhook/pg",
			MaxConns: 8,
		},
		Listen:          "127.0.0.1:8080",
		AdminListen:     "127.0.0.1:9090",
		ShutdownTimeout: 30 * time.Second,
		Log:             Log{Level: "info", Format: "text"},
		API:             API{Prefix: "/webhooks/"},
		UI:              UI{Enabled: true, SessionTTL: 12 * time.Hour},
		Proxy:           Proxy{TrustedProxies: []string{}},
		Auth: Auth{Mode: AuthToken, Tokens: []string{}, TenantTokens: []string{},
			ForwardTenantHeader: "X-Walhook-Tenant", ForwardCacheTTL: 5 * time.Second, ForwardTimeout: 5 * time.Second},
		Outbox: Outbox{
			Table: "public.webhook_outbox",
			Columns: Columns{
				ID:        "id",
				EventType: "event_type",
				Payload:   "payload",
				TenantID:  "tenant_id",
				CreatedAt: "created_at",
			},
			MaxPayloadBytes: 256 << 10,
			PayloadKinds:    []string{"object", "array"},
		},
		Replication: Replication{
			Slot:              "walhook",
			Publication:       "walhook",
			StatusInterval:    time.Second,
			HeartbeatInterval: 30 * time.Second,
			ReadAheadBytes:    8 << 20,
			SpillBytes:        1 << 30,
		},
		Delivery: Delivery{
			Timeout:           10 * time.Second,
			MaxAttempts:       5,
			RetrySchedule:     []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour},
			RetryJitter:       0.2,
			Workers:           256,
			EndpointInflight:  8,
			ResponseBodyLimit: 1000,
			UserAgent:         "walhook",
			QueueLimit:        10000,
			CircuitBreaker:    CircuitBreaker{Failures: 5, Cooldown: 30 * time.Second, MaxCooldown: 10 * time.Minute},
		},
		Endpoint:   Endpoint{DisableAfter: 5 * 24 * time.Hour, SecretOverlap: 24 * time.Hour},
		EventTypes: []string{},
	}
}

// PayloadKinds are the JSON kinds outbox.payload_kinds may name.
var PayloadKinds = []string{"object", "array", "string", "number", "boolean", "null"}

// FieldError is a configuration error about one key.
type FieldError struct {
	Key     string
	Message string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Message }

var (
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
	// Slot names are restricted by Postgres to lower case, digits, underscore.
	slotRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
)

// Validate checks every value; the error joins one *FieldError per problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	if c.Database.URL != "" {
		u, err := url.Parse(c.Database.URL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("database.url", "must be a postgres:// URL")
		}
	}
	if !identRE.MatchString(c.Database.Schema) {
		bad("database.schema", "%q is not a plain SQL identifier", c.Database.Schema)
	}
	if c.Database.StateURL != "" {
		u, err := url.Parse(c.Database.StateURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("database.state_url", "must be a postgres:// URL")
		}
	}
	if c.Database.URL == "" && c.Database.DataDir == "" {
		bad("database.data_dir", "must be set when database.url is empty")
	}
	if c.Database.MaxConns < 2 {
		bad("database.max_conns", "must be at least 2, got %d", c.Database.MaxConns)
	}
	for key, addr := range map[string]string{"listen": c.Listen, "admin_listen": c.AdminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if base := strings.TrimSuffix(c.API.Prefix, "/"); !strings.HasPrefix(c.API.Prefix, "/") || !strings.HasSuffix(c.API.Prefix, "/") ||
		(base != "" && path.Clean(base) != base) {
		bad("api.prefix", "must be a clean path that starts and ends with /, like /webhooks/, got %q", c.API.Prefix)
	}
	if c.Proxy.Upstream != "" {
		u, err := url.Parse(c.Proxy.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("proxy.upstream", "must be an http(s)://host[:port] URL without credentials, got %q", c.Proxy.Upstream)
		}
	}
	for i, cidr := range c.Proxy.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			bad(fmt.Sprintf("proxy.trusted_proxies[%d]", i), "%q is not a CIDR like 10.0.0.0/8", cidr)
		}
	}
	c.validateAuth(bad)
	if _, _, err := SplitTable(c.Outbox.Table); err != nil {
		bad("outbox.table", "%v", err)
	}
	cols := map[string]string{
		"outbox.columns.id":         c.Outbox.Columns.ID,
		"outbox.columns.event_type": c.Outbox.Columns.EventType,
		"outbox.columns.payload":    c.Outbox.Columns.Payload,
		"outbox.columns.tenant_id":  c.Outbox.Columns.TenantID,
		"outbox.columns.created_at": c.Outbox.Columns.CreatedAt,
	}
	for key, col := range cols {
		optional := key == "outbox.columns.tenant_id" || key == "outbox.columns.created_at"
		if col == "" && optional {
			continue
		}
		if !identRE.MatchString(col) {
			bad(key, "%q is not a plain SQL identifier", col)
		}
	}
	if c.Outbox.MaxPayloadBytes < 1 {
		bad("outbox.max_payload_bytes", "must be positive")
	}
	if len(c.Outbox.PayloadKinds) == 0 {
		bad("outbox.payload_kinds", "must list at least one of %s", strings.Join(PayloadKinds, ", "))
	}
	for i, k := range c.Outbox.PayloadKinds {
		if !slices.Contains(PayloadKinds, k) {
			bad(fmt.Sprintf("outbox.payload_kinds[%d]", i), "%q is not one of %s", k, strings.Join(PayloadKinds, ", "))
		}
	}
	if !slotRE.MatchString(c.Replication.Slot) {
		bad("replication.slot", "%q: use 1-63 lower-case letters, digits or _", c.Replication.Slot)
	}
	if !identRE.MatchString(c.Replication.Publication) {
		bad("replication.publication", "%q is not a plain SQL identifier", c.Replication.Publication)
	}
	if c.Replication.StatusInterval <= 0 || c.Replication.StatusInterval > 30*time.Second {
		bad("replication.status_interval", "must be between 0 and 30s, got %s", c.Replication.StatusInterval)
	}
	if c.Replication.HeartbeatInterval < 0 {
		bad("replication.heartbeat_interval", "must not be negative")
	}
	if c.Replication.SpillBytes != 0 && c.Replication.SpillBytes < 1<<20 {
		bad("replication.spill_bytes", "must be 0 (off) or at least 1048576, got %d", c.Replication.SpillBytes)
	}
	if c.Replication.ReadAheadBytes < 64<<10 || c.Replication.ReadAheadBytes > 1<<30 {
		bad("replication.read_ahead_bytes", "must be between 65536 and 1073741824, got %d", c.Replication.ReadAheadBytes)
	}
	if c.Delivery.Timeout <= 0 {
		bad("delivery.timeout", "must be positive")
	}
	if c.Delivery.MaxAttempts < 1 {
		bad("delivery.max_attempts", "must be at least 1, got %d", c.Delivery.MaxAttempts)
	}
	if len(c.Delivery.RetrySchedule) == 0 {
		bad("delivery.retry_schedule", "must list at least one delay")
	}
	for i, d := range c.Delivery.RetrySchedule {
		if d <= 0 {
			bad(fmt.Sprintf("delivery.retry_schedule[%d]", i), "must be positive, got %s", d)
		}
	}
	if c.Delivery.RetryJitter < 0 || c.Delivery.RetryJitter > 0.5 {
		bad("delivery.retry_jitter", "must be between 0 and 0.5, got %v", c.Delivery.RetryJitter)
	}
	if c.Delivery.Workers < 1 {
		bad("delivery.workers", "must be at least 1")
	}
	if c.Delivery.EndpointInflight < 1 {
		bad("delivery.endpoint_inflight", "must be at least 1")
	}
	if c.Delivery.ResponseBodyLimit < 0 {
		bad("delivery.response_body_limit", "must not be negative")
	}
	if c.Delivery.QueueLimit < c.Delivery.EndpointInflight {
		bad("delivery.queue_limit", "must be at least delivery.endpoint_inflight (%d)", c.Delivery.EndpointInflight)
	}
	cb := c.Delivery.CircuitBreaker
	if cb.Failures < 0 {
		bad("delivery.circuit_breaker.failures", "must not be negative (0 turns the breaker off)")
	}
	if cb.Cooldown <= 0 {
		bad("delivery.circuit_breaker.cooldown", "must be positive")
	}
	if cb.MaxCooldown < cb.Cooldown {
		bad("delivery.circuit_breaker.max_cooldown", "must be at least delivery.circuit_breaker.cooldown")
	}
	if c.Metrics.EndpointLabels < 0 || c.Metrics.EndpointLabels > 10000 {
		bad("metrics.endpoint_labels", "must be between 0 (off) and 10000")
	}
	if c.Endpoint.DisableAfter < 0 {
		bad("endpoint.disable_after", "must not be negative (0 never disables)")
	}
	if c.UI.SessionTTL < time.Minute || c.UI.SessionTTL > 30*24*time.Hour {
		bad("ui.session_ttl", "must be between 1m and 720h, got %s", c.UI.SessionTTL)
	}
	if c.Endpoint.SecretOverlap < 0 || c.Endpoint.SecretOverlap > 30*24*time.Hour {
		bad("endpoint.secret_overlap", "must be between 0s and 720h, got %s", c.Endpoint.SecretOverlap)
	}
	return errors.Join(errs...)
}

// headerNameRE is an HTTP header name (RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// validateAuth checks the auth section.
func (c *Config) validateAuth(bad func(key, format string, args ...any)) {
	a := c.Auth
	seen := map[string]bool{}
	for i, tok := range a.Tokens {
		if len(tok) < 16 {
			bad(fmt.Sprintf("auth.tokens[%d]", i), "must be at least 16 characters")
		}
		if seen[tok] {
			bad(fmt.Sprintf("auth.tokens[%d]", i), "is listed twice")
		}
		seen[tok] = true
	}
	for i, entry := range a.TenantTokens {
		key := fmt.Sprintf("auth.tenant_tokens[%d]", i)
		_, tok, ok := SplitTenantToken(entry)
		switch {
		case !ok:
			bad(key, "must be TENANT=TOKEN")
		case len(tok) < 16:
			bad(key, "token must be at least 16 characters")
		case seen[tok]:
			bad(key, "token is listed twice (in auth.tokens or auth.tenant_tokens)")
		}
		seen[tok] = true
	}
	switch a.Mode {
	case AuthToken:
	case AuthForward:
		u, err := url.Parse(a.ForwardURL)
		if a.ForwardURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("auth.forward_url", "must be the app's http(s) auth route when auth.mode is forward, got %q", a.ForwardURL)
		}
	case AuthNone:
		if !loopback(c.Listen) {
			bad("auth.mode", "none is refused unless listen is a loopback address (127.0.0.1, ::1 or localhost), got %q", c.Listen)
		}
	default:
		bad("auth.mode", "must be token, forward or none, got %q", a.Mode)
	}
	if !headerNameRE.MatchString(a.ForwardTenantHeader) {
		bad("auth.forward_tenant_header", "%q is not an HTTP header name", a.ForwardTenantHeader)
	}
	if a.ForwardCacheTTL < 0 {
		bad("auth.forward_cache_ttl", "must not be negative (0 turns the cache off)")
	}
	if a.ForwardTimeout <= 0 {
		bad("auth.forward_timeout", "must be positive")
	}
}

// loopback reports whether a listen address binds only a loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// SplitTable splits "schema.table" (schema defaults to public).
func SplitTable(s string) (schema, table string, err error) {
	schema, table = "public", s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		schema, table = s[:i], s[i+1:]
	}
	if !identRE.MatchString(schema) || !identRE.MatchString(table) {
		return "", "", fmt.Errorf("%q is not schema.table of plain SQL identifiers", s)
	}
	return schema, table, nil
}
