package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidURL is wrapped by every CheckURL error that is about the URL's
// shape rather than its destination (those wrap ErrBlocked instead).
var ErrInvalidURL = errors.New("invalid webhook URL")

func invalidURL(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidURL}, args...)...)
}

// CheckURL validates an endpoint URL at creation/update time and returns it
// parsed. It gives fast feedback only; the dial-time check (Control) is the
// real guard. It performs no DNS lookups.
//
// Requirements: scheme http or https (only https when requireHTTPS), a host,
// a port (if any) in 1-65535, no userinfo (credentials in the URL), no
// fragment. A literal IP host must pass CheckAddr. When AllowPrivate is
// false, local-only names ("localhost", "*.localhost",
// "localhost.localdomain", "*.local", "*.internal", "*.home.arpa") are
// refused. Numeric host names that some resolvers read as non-canonical
// IPv4 literals (e.g. "2130706433", "0x7f.1", "127.1") are always refused.
//
// Errors are user-facing and wrap ErrInvalidURL or ErrBlocked.
func (p Policy) CheckURL(raw string, requireHTTPS bool) (*url.URL, error) {
	if raw == "" {
		return nil, invalidURL("url is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, invalidURL("cannot parse url: %v", err)
	}
	switch {
	case u.Scheme == "":
		return nil, invalidURL("url must be absolute and start with https:// or http://")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, invalidURL("scheme must be http or https, got %q", u.Scheme)
	case requireHTTPS && u.Scheme != "https":
		return nil, invalidURL("scheme must be https (plain http endpoints are not allowed)")
	}
	if u.Opaque != "" {
		return nil, invalidURL("url must have the form %s://host/path", u.Scheme)
	}
	if u.User != nil {
		return nil, invalidURL("url must not contain credentials (user:password@); use endpoint headers or the signing secret instead")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, invalidURL("url must not contain a fragment (#...)")
	}
	host := u.Hostname()
	if host == "" {
		return nil, invalidURL("url must include a host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, invalidURL("port must be between 1 and 65535, got %q", port)
		}
	}

	if ip, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(ip); err != nil {
			return nil, err
		}
		return u, nil
	}
	if strings.Contains(host, ":") {
		return nil, invalidURL("host %q is not a valid IP address", host)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if err := checkHostname(name); err != nil {
		return nil, err
	}
	if !p.AllowPrivate {
		if class, why := localName(name); class != "" {
			return nil, &BlockedError{Host: host, Class: class, Detail: why}
		}
	}
	return u, nil
}

// checkHostname performs a syntactic check of a (lower-cased, trailing dot
// removed) DNS host name. Non-ASCII bytes are accepted (IDNs).
func checkHostname(name string) error {
	if name == "" || len(name) > 253 {
		return invalidURL("host %q is not a valid host name", name)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return invalidURL("host %q is not a valid host name", name)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80) {
				return invalidURL("host %q contains invalid character %q", name, string(c))
			}
		}
	}
	// WHATWG URL rules: a host whose last label is numeric is an IPv4
	// address; resolvers built on inet_aton accept forms like 127.1,
	// 0x7f.0.0.1 or 2130706433. Only the canonical dotted quad is accepted.
	if last := labels[len(labels)-1]; isNumericLabel(last) {
		return invalidURL("host %q looks like a non-standard IPv4 address; use the dotted form a.b.c.d or a DNS name", name)
	}
	return nil
}

func isNumericLabel(l string) bool {
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		for i := 0; i < len(l); i++ {
			if !strings.ContainsRune("0123456789abcdef", rune(l[i])) {
				return false
			}
		}
		return true // includes a bare "0x"
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// localName reports whether name (lower-cased, no trailing dot) is local by
// definition, returning the reason class and a short explanation.
func localName(name string) (class, why string) {
	switch {
	case name == "localhost" || strings.HasSuffix(name, ".localhost") || name == "localhost.localdomain":
		return ClassLoopback, "local host name"
	case strings.HasSuffix(name, ".local"):
		return ClassPrivate, "mDNS link-local name"
	case name == "internal" || strings.HasSuffix(name, ".internal"):
		return ClassPrivate, "private-use .internal name"
	case name == "home.arpa" || strings.HasSuffix(name, ".home.arpa"):
		return ClassPrivate, "private-use home.arpa name"
	}
	return "", ""
}
