package netguard

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		name  string
		addr  string
		class string // "" means allowed even with AllowPrivate=false
	}{
		// public
		{"public v4 google dns", "8.8.8.8", ""},
		{"public v4 cloudflare dns", "1.1.1.1", ""},
		{"public v6 cloudflare dns", "2606:4700:4700::1111", ""},
		{"public v4 mapped", "::ffff:8.8.8.8", ""},
		{"public v4 via NAT64", "64:ff9b::808:808", ""},
		{"public v4 via 6to4", "2002:808:808::1", ""},
		{"public just below 10/8", "9.255.255.255", ""},
		{"public just above 172.16/12", "172.32.0.1", ""},
		{"public just below 100.64/10", "100.63.255.255", ""},
		{"public just above 100.64/10", "100.128.0.0", ""},

		// unspecified
		{"unspecified v4", "0.0.0.0", ClassUnspecified},
		{"unspecified v6", "::", ClassUnspecified},
		{"unspecified v4 mapped", "::ffff:0.0.0.0", ClassUnspecified},

		// loopback
		{"loopback 127.0.0.1", "127.0.0.1", ClassLoopback},
		{"loopback 127.255.255.254", "127.255.255.254", ClassLoopback},
		{"loopback ::1", "::1", ClassLoopback},
		{"loopback v4 mapped", "::ffff:127.0.0.1", ClassLoopback},
		{"loopback NAT64", "64:ff9b::7f00:1", ClassLoopback},
		{"loopback 6to4", "2002:7f00:1::1", ClassLoopback},

		// RFC 1918 / ULA
		{"private 10/8", "10.1.2.3", ClassPrivate},
		{"private 172.16/12 low", "172.16.0.1", ClassPrivate},
		{"private 172.16/12 high", "172.31.255.255", ClassPrivate},
		{"private 192.168/16", "192.168.1.1", ClassPrivate},
		{"private v4 mapped 10/8", "::ffff:10.0.0.1", ClassPrivate},
		{"private v4 mapped 192.168", "::ffff:192.168.0.10", ClassPrivate},
		{"private NAT64 192.168", "64:ff9b::c0a8:101", ClassPrivate},
		{"private ULA fc00::/7 fd", "fd12:3456:789a::1", ClassPrivate},
		{"private ULA fc00::/7 fc", "fc00::1", ClassPrivate},
		{"private deprecated site-local", "fec0::1", ClassPrivate},

		// link-local and metadata
		{"link-local v4", "169.254.1.1", ClassLinkLocal},
		{"link-local v6", "fe80::1", ClassLinkLocal},
		{"link-local v6 with zone", "fe80::1%eth0", ClassLinkLocal},
		{"link-local v4 mapped", "::ffff:169.254.10.10", ClassLinkLocal},
		{"metadata 169.254.169.254", "169.254.169.254", ClassMetadata},
		{"metadata v4 mapped", "::ffff:169.254.169.254", ClassMetadata},
		{"metadata NAT64", "64:ff9b::a9fe:a9fe", ClassMetadata},
		{"metadata AWS ECS", "169.254.170.2", ClassMetadata},
		{"metadata AWS IPv6", "fd00:ec2::254", ClassMetadata},
		{"metadata Alibaba", "100.100.100.200", ClassMetadata},
		{"metadata Azure wireserver", "168.63.129.16", ClassMetadata},

		// multicast / broadcast
		{"multicast v4", "224.0.0.1", ClassMulticast},
		{"multicast v4 high", "239.255.255.250", ClassMulticast},
		{"multicast v6", "ff02::1", ClassMulticast},
		{"multicast v4 mapped", "::ffff:224.0.0.251", ClassMulticast},
		{"broadcast", "255.255.255.255", ClassBroadcast},
		{"broadcast v4 mapped", "::ffff:255.255.255.255", ClassBroadcast},

		// CGNAT, benchmarking, reserved, documentation
		{"cgnat low", "100.64.0.1", ClassCGNAT},
		{"cgnat high", "100.127.255.254", ClassCGNAT},
		{"cgnat v4 mapped", "::ffff:100.64.0.1", ClassCGNAT},
		{"this network 0/8", "0.1.2.3", ClassReserved},
		{"benchmarking low", "198.18.0.1", ClassBenchmarking},
		{"benchmarking high", "198.19.255.255", ClassBenchmarking},
		{"class E reserved", "240.0.0.1", ClassReserved},
		{"IETF protocol assignments", "192.0.0.8", ClassReserved},
		{"6to4 relay anycast", "192.88.99.1", ClassReserved},
		{"TEST-NET-1", "192.0.2.10", ClassDocumentation},
		{"TEST-NET-2", "198.51.100.10", ClassDocumentation},
		{"TEST-NET-3", "203.0.113.10", ClassDocumentation},
		{"v6 documentation", "2001:db8::1", ClassDocumentation},
		{"v6 documentation 3fff::/20", "3fff::1", ClassDocumentation},
		{"v6 teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2", ClassReserved},
		{"v6 discard-only", "100::1", ClassReserved},
		{"v6 local-use NAT64", "64:ff9b:1::a00:1", ClassReserved},
		{"v6 IPv4-compatible loopback", "::127.0.0.1", ClassReserved},
		{"v6 outside 2000::/3", "4000::1", ClassReserved},
	}
	strict := Policy{}
	open := Policy{AllowPrivate: true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.addr)

			err := strict.CheckAddr(ip)
			if tt.class == "" {
				if err != nil {
					t.Fatalf("AllowPrivate=false: CheckAddr(%s) = %v, want allowed", ip, err)
				}
			} else {
				if !errors.Is(err, ErrBlocked) {
					t.Fatalf("AllowPrivate=false: CheckAddr(%s) = %v, want ErrBlocked", ip, err)
				}
				var be *BlockedError
				if !errors.As(err, &be) {
					t.Fatalf("error %T is not a *BlockedError", err)
				}
				if be.Class != tt.class {
					t.Errorf("class = %q, want %q (err: %v)", be.Class, tt.class, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, ip.String()) || !strings.Contains(msg, tt.class) {
					t.Errorf("message %q should name the address %s and class %q", msg, ip, tt.class)
				}
			}

			err = open.CheckAddr(ip)
			if tt.class == ClassUnspecified {
				if !errors.Is(err, ErrBlocked) {
					t.Fatalf("AllowPrivate=true: CheckAddr(%s) = %v, want ErrBlocked (unspecified is always blocked)", ip, err)
				}
			} else if err != nil {
				t.Fatalf("AllowPrivate=true: CheckAddr(%s) = %v, want allowed", ip, err)
			}
		})
	}
}

func TestCheckAddrInvalid(t *testing.T) {
	for _, p := range []Policy{{}, {AllowPrivate: true}} {
		if err := p.CheckAddr(netip.Addr{}); !errors.Is(err, ErrBlocked) {
			t.Errorf("AllowPrivate=%v: zero Addr: got %v, want ErrBlocked", p.AllowPrivate, err)
		}
	}
}

func TestCheckAddrMessage(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want string
	}{
		{"plain", "127.0.0.1", "destination address not allowed: 127.0.0.1 is loopback (127.0.0.0/8)"},
		{"mapped", "::ffff:10.0.0.1", "destination address not allowed: ::ffff:10.0.0.1 is private (10.0.0.0/8, via IPv4-mapped IPv6)"},
		{"nat64", "64:ff9b::a9fe:a9fe", "destination address not allowed: 64:ff9b::a9fe:a9fe is cloud metadata (169.254.169.254/32, via NAT64 64:ff9b::/96 embedding 169.254.169.254)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Policy{}.CheckAddr(netip.MustParseAddr(tt.addr))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAllowCIDRs(t *testing.T) {
	p := Policy{AllowCIDRs: []netip.Prefix{
		netip.MustParsePrefix("10.20.0.0/16"),
		netip.MustParsePrefix("fd00:1::/32"),
		netip.MustParsePrefix("0.0.0.0/8"),
	}}
	tests := []struct {
		name    string
		addr    string
		allowed bool
	}{
		{"inside v4 exception", "10.20.1.1", true},
		{"inside v4 exception, mapped", "::ffff:10.20.1.1", true},
		{"inside v4 exception, NAT64", "64:ff9b::a14:101", true},
		{"outside v4 exception", "10.21.0.1", false},
		{"inside v6 exception", "fd00:1::5", true},
		{"outside v6 exception", "fd00:2::5", false},
		{"loopback not excepted", "127.0.0.1", false},
		{"unspecified never excepted", "0.0.0.0", false},
		{"public still allowed", "8.8.8.8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.allowed && err != nil {
				t.Fatalf("got %v, want allowed", err)
			}
			if !tt.allowed && !errors.Is(err, ErrBlocked) {
				t.Fatalf("got %v, want ErrBlocked", err)
			}
		})
	}
}
