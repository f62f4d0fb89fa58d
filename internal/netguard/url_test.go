package netguard

import (
	"errors"
	"testing"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		requireHTTPS bool
		wantErr      error // nil: valid; ErrInvalidURL or ErrBlocked otherwise
	}{
		{"https hostname", "https://hooks.example.com/walhook?x=1", false, false, nil},
		{"http hostname", "http://hooks.example.com/in", false, false, nil},
		{"https with port", "https://hooks.example.com:8443/in", false, true, nil},
		{"uppercase scheme and host", "HTTPS://Hooks.Example.COM/in", false, true, nil},
		{"public ipv4 literal", "https://8.8.8.8/x", false, false, nil},
		{"public ipv6 literal", "https://[2606:4700:4700::1111]:443/x", false, false, nil},
		{"idn host", "https://bücher.example/hook", false, false, nil},
		{"trailing dot fqdn", "https://hooks.example.com./x", false, false, nil},
		{"hostname with digits", "https://1password.com/x", false, false, nil},

		{"empty", "", false, false, ErrInvalidURL},
		{"unparsable", "http://[::1/", false, false, ErrInvalidURL},
		{"relative", "/just/a/path", false, false, ErrInvalidURL},
		{"ftp scheme", "ftp://example.com/file", false, false, ErrInvalidURL},
		{"javascript scheme", "javascript:alert(1)", false, false, ErrInvalidURL},
		{"opaque http", "http:example.com", false, false, ErrInvalidURL},
		{"no host", "http:///path", false, false, ErrInvalidURL},
		{"only port", "http://:8080/path", false, false, ErrInvalidURL},
		{"userinfo", "http://user:pass@example.com", false, false, ErrInvalidURL},
		{"user without password", "https://user@example.com/", false, false, ErrInvalidURL},
		{"userinfo allowed private still refused", "http://user:pass@example.com", true, false, ErrInvalidURL},
		{"fragment", "https://example.com/hook#frag", false, false, ErrInvalidURL},
		{"empty fragment", "https://example.com/hook#", false, false, ErrInvalidURL},
		{"require https with http", "http://example.com/hook", false, true, ErrInvalidURL},
		{"port zero", "http://example.com:0/", false, false, ErrInvalidURL},
		{"port too large", "http://example.com:65536/", false, false, ErrInvalidURL},
		{"bad host char", "http://exa*mple.com/", false, false, ErrInvalidURL},
		{"empty label", "http://a..example.com/", false, false, ErrInvalidURL},
		{"percent-encoded ascii host", "http://%6c%6fcalhost/", false, false, ErrInvalidURL},
		{"decimal ipv4", "http://2130706433/", false, false, ErrInvalidURL},
		{"short ipv4", "http://127.1/", false, false, ErrInvalidURL},
		{"hex ipv4", "http://0x7f.0.0.1/", false, false, ErrInvalidURL},
		{"octal ipv4", "http://0177.0.0.1/", false, false, ErrInvalidURL},
		{"numeric host even when private allowed", "http://2130706433/", true, false, ErrInvalidURL},

		{"loopback literal with port", "http://127.0.0.1:8080/x", false, false, ErrBlocked},
		{"ipv6 loopback literal", "http://[::1]/", false, false, ErrBlocked},
		{"mapped loopback literal", "http://[::ffff:127.0.0.1]/", false, false, ErrBlocked},
		{"metadata literal", "http://169.254.169.254/latest/meta-data", false, false, ErrBlocked},
		{"private literal", "https://10.0.0.5/hook", false, false, ErrBlocked},
		{"link-local zoned literal", "http://[fe80::1%25eth0]/", false, false, ErrBlocked},
		{"localhost", "http://localhost/", false, false, ErrBlocked},
		{"localhost uppercase trailing dot", "http://LOCALHOST./", false, false, ErrBlocked},
		{"sub.localhost", "http://foo.localhost/", false, false, ErrBlocked},
		{"localhost.localdomain", "http://localhost.localdomain:9000/", false, false, ErrBlocked},
		{"gcp metadata name", "http://metadata.google.internal/computeMetadata/v1/", false, false, ErrBlocked},
		{"mdns name", "http://printer.local/", false, false, ErrBlocked},
		{"home.arpa name", "http://nas.home.arpa/", false, false, ErrBlocked},
		{"unspecified literal", "http://0.0.0.0/", false, false, ErrBlocked},
		{"unspecified literal even with private", "http://0.0.0.0:8080/", true, false, ErrBlocked},

		{"loopback allowed with AllowPrivate", "http://127.0.0.1/", true, false, nil},
		{"localhost allowed with AllowPrivate", "http://localhost:8080/", true, false, nil},
		{"metadata name allowed with AllowPrivate", "http://metadata.google.internal/", true, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{AllowPrivate: tt.allowPrivate}
			u, err := p.CheckURL(tt.url, tt.requireHTTPS)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want ok", tt.url, err)
				}
				if u == nil || u.Host == "" {
					t.Fatalf("CheckURL(%q) returned URL %v without host", tt.url, u)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckURL(%q) = %v, want error wrapping %q", tt.url, err, tt.wantErr)
			}
			if u != nil {
				t.Errorf("CheckURL(%q) returned URL %v alongside error", tt.url, u)
			}
			t.Logf("%s -> %v", tt.url, err)
		})
	}
}
