package netguard_test

import (
	"net"
	"net/http"
	"time"

	"github.com/walhook/walhook/internal/netguard"
)

// Wiring the policy into the delivery HTTP client.
func Example() {
	policy := netguard.Policy{AllowPrivate: false}
	client := &http.Client{
		Transport: &http.Transport{
			Proxy: nil, // a proxy would make the dial-time check see the proxy, not the endpoint
			DialContext: policy.DialContext(&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}),
		},
		CheckRedirect: netguard.NoRedirects,
		Timeout:       30 * time.Second,
	}
	_ = client
}
