package netguard

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
)

// Control is a net.Dialer.Control function enforcing the policy on the
// address actually being connected to. The dialer calls it after DNS
// resolution, once per connection attempt, with the literal "ip:port" it is
// about to connect to, so it is immune to DNS rebinding. Anything it cannot
// interpret as an IP destination (including non-IP networks such as "unix")
// is refused: the guard fails closed. The RawConn is not used.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	var (
		ip  netip.Addr
		err error
	)
	switch {
	case strings.HasPrefix(network, "tcp"), strings.HasPrefix(network, "udp"):
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(address)
		ip = ap.Addr()
	case strings.HasPrefix(network, "ip"):
		ip, err = netip.ParseAddr(address)
		if err != nil {
			var ap netip.AddrPort
			if ap, err = netip.ParseAddrPort(address); err == nil {
				ip = ap.Addr()
			}
		}
	default:
		return &BlockedError{Host: address, Class: ClassInvalid, Detail: "network " + quote(network) + " is not an IP network"}
	}
	if err != nil {
		return &BlockedError{Host: address, Class: ClassInvalid, Detail: "not an IP address and port"}
	}
	return p.CheckAddr(ip)
}

// DialContext returns a dial function for http.Transport.DialContext. It
// dials with a copy of d (nil means a zero net.Dialer; d itself is not
// modified), keeping its timeout, keep-alive, resolver and other settings,
// with the policy installed as the control hook. A Control or
// ControlContext already set on d still runs, after the policy check
// succeeds.
func (p Policy) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	if d != nil {
		nd = *d
	}
	prevCtx, prev := nd.ControlContext, nd.Control
	nd.Control = nil
	nd.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := p.Control(network, address, c); err != nil {
			return err
		}
		switch {
		case prevCtx != nil:
			return prevCtx(ctx, network, address, c)
		case prev != nil:
			return prev(network, address, c)
		}
		return nil
	}
	return nd.DialContext
}

// NoRedirects is an http.Client.CheckRedirect function that refuses to
// follow redirects: it returns http.ErrUseLastResponse, so the client
// returns the 3xx response itself (with its body unclosed) and the
// delivery records it as the attempt's result.
func NoRedirects(req *http.Request, via []*http.Request) error {
	return http.ErrUseLastResponse
}
