package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/config"
)

func TestAuthAndAPIKeys(t *testing.T) {
	valid := func(c *config.Config) {}
	tests := []struct {
		name string
		set  func(*config.Config)
		key  string // "" when valid
	}{
		{"defaults", valid, ""},
		{"tenant tokens", func(c *config.Config) {
			c.Auth.TenantTokens = []string{"acme=acme-token-0123456789", "a=b=c-token-0123456789"}
		}, ""},
		{"tenant token without tenant", func(c *config.Config) { c.Auth.TenantTokens = []string{"=acme-token-0123456789"} }, "auth.tenant_tokens[0]"},
		{"tenant token without =", func(c *config.Config) { c.Auth.TenantTokens = []string{"acme-token-0123456789"} }, "auth.tenant_tokens[0]"},
		{"short tenant token", func(c *config.Config) { c.Auth.TenantTokens = []string{"acme=short"} }, "auth.tenant_tokens[0]"},
		{"token used twice", func(c *config.Config) {
			c.Auth.Tokens = []string{"same-token-0123456789"}
			c.Auth.TenantTokens = []string{"acme=same-token-0123456789"}
		}, "auth.tenant_tokens[0]"},
		{"unknown mode", func(c *config.Config) { c.Auth.Mode = "oauth" }, "auth.mode"},
		{"forward without url", func(c *config.Config) { c.Auth.Mode = config.AuthForward }, "auth.forward_url"},
		{"forward with a relative url", func(c *config.Config) { c.Auth.Mode, c.Auth.ForwardURL = config.AuthForward, "/auth" }, "auth.forward_url"},
		{"forward", func(c *config.Config) {
			c.Auth.Mode, c.Auth.ForwardURL = config.AuthForward, "http://127.0.0.1:3000/auth"
		}, ""},
		{"bad tenant header", func(c *config.Config) { c.Auth.ForwardTenantHeader = "X Tenant" }, "auth.forward_tenant_header"},
		{"negative cache ttl", func(c *config.Config) { c.Auth.ForwardCacheTTL = -time.Second }, "auth.forward_cache_ttl"},
		{"cache off", func(c *config.Config) { c.Auth.ForwardCacheTTL = 0 }, ""},
		{"zero forward timeout", func(c *config.Config) { c.Auth.ForwardTimeout = 0 }, "auth.forward_timeout"},
		{"none on loopback", func(c *config.Config) { c.Auth.Mode = config.AuthNone }, ""},
		{"none on IPv6 loopback", func(c *config.Config) { c.Auth.Mode, c.Listen = config.AuthNone, "[::1]:8080" }, ""},
		{"none on localhost", func(c *config.Config) { c.Auth.Mode, c.Listen = config.AuthNone, "localhost:8080" }, ""},
		{"none on every interface", func(c *config.Config) { c.Auth.Mode, c.Listen = config.AuthNone, ":8080" }, "auth.mode"},
		{"none on a public address", func(c *config.Config) { c.Auth.Mode, c.Listen = config.AuthNone, "0.0.0.0:8080" }, "auth.mode"},
		{"none on a private address", func(c *config.Config) { c.Auth.Mode, c.Listen = config.AuthNone, "10.0.0.5:8080" }, "auth.mode"},
		{"negative secret overlap", func(c *config.Config) { c.Endpoint.SecretOverlap = -time.Hour }, "endpoint.secret_overlap"},
		{"secret overlap over 30 days", func(c *config.Config) { c.Endpoint.SecretOverlap = 31 * 24 * time.Hour }, "endpoint.secret_overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Defaults()
			tt.set(&c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("error %v does not name %s", err, tt.key)
			}
		})
	}
}

func TestAuthFromEnvironment(t *testing.T) {
	t.Setenv("WALHOOK_AUTH_MODE", "forward")
	t.Setenv("WALHOOK_AUTH_FORWARD_URL", "http://127.0.0.1:3000/api/walhook-auth")
	t.Setenv("WALHOOK_AUTH_TENANT_TOKENS", "acme=acme-token-0123456789, globex=globex-token-0123456789")
	t.Setenv("WALHOOK_ENDPOINT_SECRET_OVERLAP", "1h")
	t.Setenv("WALHOOK_DELIVERY_REQUIRE_HTTPS", "true")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Mode != "forward" || cfg.Auth.ForwardURL == "" || len(cfg.Auth.TenantTokens) != 2 ||
		cfg.Endpoint.SecretOverlap != time.Hour || !cfg.Delivery.RequireHTTPS || cfg.Auth.ForwardTenantHeader != "X-Walhook-Tenant" {
		t.Fatalf("loaded %+v %+v", cfg.Auth, cfg.Endpoint)
	}
}
