// Package netguard owns walhook's outbound network policy: the SSRF
// protection that decides which destination addresses a webhook delivery
// may connect to.
//
// Webhook endpoint URLs are supplied by customers, so without a guard a
// customer could make the sidecar issue requests to the loopback
// interface, the host's private network, or a cloud metadata service
// (169.254.169.254 and friends). Unless the operator sets
// delivery.allow_private_networks (Policy.AllowPrivate), such
// destinations are refused.
//
// # Why the check happens at dial time
//
// Validating the URL when an endpoint is created is not enough: a host
// name can resolve to a public address when it is validated and to
// 127.0.0.1 a second later (DNS rebinding), and a name may have several
// addresses of which only some are private. The authoritative check is
// therefore Policy.Control, installed as the net.Dialer control hook by
// Policy.DialContext. It runs after DNS resolution, once per connection
// attempt (including every Happy Eyeballs attempt), against the exact IP
// address the socket is about to connect to. Policy.CheckURL is only a
// fast, lookup-free validation that gives users immediate feedback; it
// never resolves names.
//
// Redirects are not followed by deliveries (a 3xx response is the result
// of the attempt); NoRedirects is the http.Client.CheckRedirect hook for
// that. Even if a client did follow redirects, every new connection would
// still pass through the dial-time check.
//
// The dial-time check only sees the address the transport dials. The
// delivery http.Transport must therefore not use an HTTP proxy (leave
// Transport.Proxy nil): through a proxy the guard would vet the proxy's
// address, not the webhook destination's.
//
// # What is blocked
//
// Unspecified addresses (0.0.0.0, ::) are always refused, because
// connecting to them reaches the local host. When AllowPrivate is false,
// the following are refused as well (reason class in brackets; the first
// matching range wins):
//
// IPv4:
//
//	0.0.0.0/8          "this network"                     [reserved]
//	10.0.0.0/8         RFC 1918                           [private]
//	100.64.0.0/10      shared address space, RFC 6598     [carrier-grade NAT]
//	100.100.100.200/32 Alibaba Cloud metadata             [cloud metadata]
//	127.0.0.0/8        loopback                           [loopback]
//	168.63.129.16/32   Azure WireServer / IMDS host       [cloud metadata]
//	169.254.169.254/32 AWS/GCP/Azure/OCI/... metadata     [cloud metadata]
//	169.254.170.2/32   AWS ECS task metadata              [cloud metadata]
//	169.254.0.0/16     link-local                         [link-local]
//	172.16.0.0/12      RFC 1918                           [private]
//	192.0.0.0/24       IETF protocol assignments          [reserved]
//	192.0.2.0/24       TEST-NET-1                         [documentation]
//	192.88.99.0/24     deprecated 6to4 relay anycast      [reserved]
//	192.168.0.0/16     RFC 1918                           [private]
//	198.18.0.0/15      benchmarking, RFC 2544             [benchmarking]
//	198.51.100.0/24    TEST-NET-2                         [documentation]
//	203.0.113.0/24     TEST-NET-3                         [documentation]
//	224.0.0.0/4        multicast                          [multicast]
//	255.255.255.255/32 limited broadcast                  [broadcast]
//	240.0.0.0/4        reserved ("class E")               [reserved]
//
// IPv6:
//
//	::1/128            loopback                           [loopback]
//	::ffff:0:0/96      IPv4-mapped: judged as the embedded IPv4 address
//	64:ff9b::/96       NAT64 (RFC 6052): judged as the embedded IPv4 address
//	64:ff9b:1::/48     local-use NAT64 (RFC 8215)         [reserved]
//	100::/64           discard-only (RFC 6666)            [reserved]
//	2001::/23          IETF protocol assignments, incl.
//	                   Teredo 2001::/32 (embeds IPv4)     [reserved]
//	2001:db8::/32      documentation                      [documentation]
//	2002::/16          6to4: judged as the embedded IPv4 address
//	3fff::/20          documentation (RFC 9637)           [documentation]
//	5f00::/16          SRv6 SIDs (RFC 9602)               [reserved]
//	fd00:ec2::254/128  AWS IMDS over IPv6                 [cloud metadata]
//	fc00::/7           unique local addresses             [private]
//	fe80::/10          link-local                         [link-local]
//	fec0::/10          deprecated site-local              [private]
//	ff00::/8           multicast                          [multicast]
//	anything else outside 2000::/3 (global unicast), e.g. the
//	deprecated IPv4-compatible ::a.b.c.d               [reserved]
//
// IPv6 zones are ignored for classification (fe80::1%eth0 is link-local).
// Policy.AllowCIDRs lists explicit exceptions that are allowed even when
// AllowPrivate is false (never for unspecified addresses); they match
// addresses only, never host names.
//
// Policy.CheckURL additionally refuses, when AllowPrivate is false, host
// names that are local by definition: "localhost", "*.localhost",
// "localhost.localdomain", and the private-use suffixes ".local" (mDNS),
// ".internal" (e.g. metadata.google.internal) and ".home.arpa". It also
// refuses numeric host names that some resolvers would interpret as
// non-canonical IPv4 literals (e.g. 2130706433, 0x7f.1, 127.1).
package netguard
