package netguard

import (
	"errors"
	"net/netip"
	"strings"
)

// Reason classes reported in BlockedError.Class.
const (
	ClassUnspecified   = "unspecified"
	ClassLoopback      = "loopback"
	ClassPrivate       = "private"
	ClassLinkLocal     = "link-local"
	ClassMulticast     = "multicast"
	ClassBroadcast     = "broadcast"
	ClassMetadata      = "cloud metadata"
	ClassCGNAT         = "carrier-grade NAT"
	ClassBenchmarking  = "benchmarking"
	ClassDocumentation = "documentation"
	ClassReserved      = "reserved"
	ClassInvalid       = "invalid"
)

// ErrBlocked is returned (wrapped in a *BlockedError, so use errors.Is)
// when a destination is refused by the policy.
var ErrBlocked = errors.New("destination address not allowed")

// Policy decides which destination addresses outbound webhook requests may
// reach. The zero value is the strict default: only public addresses.
type Policy struct {
	// AllowPrivate mirrors delivery.allow_private_networks: when true,
	// everything except unspecified addresses (0.0.0.0, ::) is allowed.
	AllowPrivate bool

	// AllowCIDRs are explicit exceptions allowed even when AllowPrivate is
	// false (e.g. one internal receiver network). They never allow
	// unspecified addresses and never apply to host names in CheckURL.
	// IPv4 addresses are matched in their plain IPv4 form, so list IPv4
	// ranges as IPv4 prefixes.
	AllowCIDRs []netip.Prefix
}

// BlockedError describes a refused destination. It matches ErrBlocked with
// errors.Is.
type BlockedError struct {
	// Addr is the address that was checked, as given (invalid when a host
	// name or a non-IP dial address was refused).
	Addr netip.Addr
	// Host is the refused host name or raw dial address when Addr is not set.
	Host string
	// Class is the reason class, one of the Class* constants.
	Class string
	// Range is the matched blocked range, if any.
	Range netip.Prefix
	// Detail is extra human-readable context (e.g. "via IPv4-mapped IPv6").
	Detail string
}

// Error implements error, e.g.
// "destination address not allowed: 127.0.0.1 is loopback (127.0.0.0/8)".
func (e *BlockedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrBlocked.Error())
	b.WriteString(": ")
	switch {
	case e.Addr.IsValid():
		b.WriteString(e.Addr.String())
	case e.Host != "":
		b.WriteString("host ")
		b.WriteString(quote(e.Host))
	default:
		b.WriteString("address")
	}
	b.WriteString(" is ")
	b.WriteString(e.Class)
	var extra []string
	if e.Range.IsValid() {
		extra = append(extra, e.Range.String())
	}
	if e.Detail != "" {
		extra = append(extra, e.Detail)
	}
	if len(extra) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(extra, ", "))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

func quote(s string) string { return `"` + s + `"` }

// rule maps a range to a reason class. Tables are ordered: first match wins,
// so more specific ranges come first.
type rule struct {
	prefix netip.Prefix
	class  string
}

func r(cidr, class string) rule { return rule{netip.MustParsePrefix(cidr), class} }

// Immutable tables, built once at package initialisation.
var (
	v4Rules = []rule{
		r("0.0.0.0/32", ClassUnspecified),
		r("0.0.0.0/8", ClassReserved),
		r("10.0.0.0/8", ClassPrivate),
		r("100.100.100.200/32", ClassMetadata),
		r("100.64.0.0/10", ClassCGNAT),
		r("127.0.0.0/8", ClassLoopback),
		r("168.63.129.16/32", ClassMetadata),
		r("169.254.169.254/32", ClassMetadata),
		r("169.254.170.2/32", ClassMetadata),
		r("169.254.0.0/16", ClassLinkLocal),
		r("172.16.0.0/12", ClassPrivate),
		r("192.0.0.0/24", ClassReserved),
		r("192.0.2.0/24", ClassDocumentation),
		r("192.88.99.0/24", ClassReserved),
		r("192.168.0.0/16", ClassPrivate),
		r("198.18.0.0/15", ClassBenchmarking),
		r("198.51.100.0/24", ClassDocumentation),
		r("203.0.113.0/24", ClassDocumentation),
		r("224.0.0.0/4", ClassMulticast),
		r("255.255.255.255/32", ClassBroadcast),
		r("240.0.0.0/4", ClassReserved),
	}
	v6Rules = []rule{
		r("::/128", ClassUnspecified),
		r("::1/128", ClassLoopback),
		r("64:ff9b:1::/48", ClassReserved),
		r("100::/64", ClassReserved),
		r("2001::/23", ClassReserved),
		r("2001:db8::/32", ClassDocumentation),
		r("3fff::/20", ClassDocumentation),
		r("5f00::/16", ClassReserved),
		r("fd00:ec2::254/128", ClassMetadata),
		r("fc00::/7", ClassPrivate),
		r("fec0::/10", ClassPrivate),
		r("fe80::/10", ClassLinkLocal),
		r("ff00::/8", ClassMulticast),
	}
	nat64Prefix         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix     = netip.MustParsePrefix("2002::/16")
	globalUnicastPrefix = netip.MustParsePrefix("2000::/3")
)

// match is the result of classifying an address.
type match struct {
	class    string
	prefix   netip.Prefix
	detail   string
	embedded netip.Addr // IPv4 address embedded in a NAT64/6to4 address
}

func lookup(rules []rule, ip netip.Addr) (match, bool) {
	for _, ru := range rules {
		if ru.prefix.Contains(ip) {
			return match{class: ru.class, prefix: ru.prefix}, true
		}
	}
	return match{}, false
}

// classify returns the blocked class of ip (zone-less, already unmapped),
// or false if ip is an ordinary public address.
func classify(ip netip.Addr) (match, bool) {
	if ip.Is4() {
		return lookup(v4Rules, ip)
	}
	if m, ok := lookup(v6Rules, ip); ok {
		return m, true
	}
	b := ip.As16()
	var (
		v4  netip.Addr
		via string
	)
	switch {
	case nat64Prefix.Contains(ip):
		v4 = netip.AddrFrom4([4]byte(b[12:16]))
		via = "NAT64 " + nat64Prefix.String()
	case sixToFourPrefix.Contains(ip):
		v4 = netip.AddrFrom4([4]byte(b[2:6]))
		via = "6to4 " + sixToFourPrefix.String()
	case !globalUnicastPrefix.Contains(ip):
		return match{class: ClassReserved, detail: "outside global unicast " + globalUnicastPrefix.String()}, true
	default:
		return match{}, false
	}
	m, ok := lookup(v4Rules, v4)
	if !ok {
		return match{}, false // translation of a public IPv4 address
	}
	m.embedded = v4
	m.detail = "via " + via + " embedding " + v4.String()
	return m, true
}

// CheckAddr reports whether ip may be contacted: nil if allowed, otherwise a
// *BlockedError wrapping ErrBlocked that names the address and the reason
// class. See the package documentation for the list of blocked ranges.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4
// address they carry; NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses
// as their embedded IPv4 address.
func (p Policy) CheckAddr(ip netip.Addr) error {
	if !ip.IsValid() {
		return &BlockedError{Class: ClassInvalid, Detail: "not a valid IP address"}
	}
	norm := ip.WithZone("").Unmap()
	m, blocked := classify(norm)
	if !blocked {
		return nil
	}
	if m.class != ClassUnspecified {
		if p.AllowPrivate || p.allowedByCIDR(norm) || (m.embedded.IsValid() && p.allowedByCIDR(m.embedded)) {
			return nil
		}
	}
	e := &BlockedError{Addr: ip, Class: m.class, Range: m.prefix, Detail: m.detail}
	if ip.Is4In6() {
		e.Detail = "via IPv4-mapped IPv6"
	}
	return e
}

func (p Policy) allowedByCIDR(ip netip.Addr) bool {
	for _, pfx := range p.AllowCIDRs {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}
