package route_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, eventType string
		want               bool
	}{
		{"order.created", "order.created", true},
		{"order.created", "order.updated", false},
		{"order.created", "order.created.v2", false},
		{"order.*", "order.created", true},
		{"order.*", "order.item.added", true},
		{"order.*", "order", false},
		{"order.*", "orders.created", false},
		{"*.failed", "payment.failed", true},
		{"*.failed", "payment.failed.retry", false},
		{"*", "anything.at.all", true},
		{"*", "", true},
		{"order.*.added", "order.item.added", true},
		{"order.*.added", "order.added", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"**", "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.eventType, func(t *testing.T) {
			if got := route.Match(tt.pattern, tt.eventType); got != tt.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tt.pattern, tt.eventType, got, tt.want)
			}
		})
	}
}

func TestValidatePattern(t *testing.T) {
	for _, ok := range []string{"order.created", "order.*", "*", "v1:user/created", "a_b-c"} {
		if err := route.ValidatePattern(ok); err != nil {
			t.Errorf("ValidatePattern(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "order created", "order.<script>", strings.Repeat("a", 201), "é"} {
		if err := route.ValidatePattern(bad); err == nil {
			t.Errorf("ValidatePattern(%q) accepted", bad)
		}
	}
}

// FuzzMatch checks Match against a straightforward recursive glob.
func FuzzMatch(f *testing.F) {
	f.Add("order.*", "order.created")
	f.Add("*a*", "banana")
	f.Add("a*b*c", "aXbYc")
	f.Fuzz(func(t *testing.T, p, s string) {
		if got, want := route.Match(p, s), glob(p, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", p, s, got, want)
		}
	})
}

func glob(p, s string) bool {
	if p == "" {
		return s == ""
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if glob(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && p[0] == s[0] && glob(p[1:], s[1:])
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestTableMatchesTenantAndActive(t *testing.T) {
	r := route.NewRouter()
	err := r.Replace([]*store.Endpoint{
		{ID: "all", EventTypes: []string{"*"}, Secret: secret, Active: true},
		{ID: "orders", EventTypes: []string{"order.*"}, Secret: secret, Active: true},
		{ID: "paused", EventTypes: []string{"*"}, Secret: secret, Active: false},
		{ID: "acme", TenantID: "acme", EventTypes: []string{"order.created"}, Secret: secret, Active: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(eps []*route.Endpoint) string {
		var out []string
		for _, e := range eps {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	tests := []struct {
		name, tenant, eventType, want string
	}{
		{"no tenant, order event", "", "order.created", "all,orders"},
		{"no tenant, other event", "", "user.created", "all"},
		{"tenant event reaches only that tenant", "acme", "order.created", "acme"},
		{"tenant pattern mismatch", "acme", "order.updated", ""},
		{"unknown tenant", "globex", "order.created", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := r.Table()
			for i := 0; i < 2; i++ { // second time from the memo
				if got := ids(tbl.Match(tt.tenant, tt.eventType)); got != tt.want {
					t.Fatalf("Match(%q, %q) = %q, want %q", tt.tenant, tt.eventType, got, tt.want)
				}
			}
		})
	}

	before := r.Table()
	if err := r.Upsert(&store.Endpoint{ID: "paused", EventTypes: []string{"*"}, Secret: secret, Active: true}); err != nil {
		t.Fatal(err)
	}
	if got := ids(r.Table().Match("", "user.created")); got != "all,paused" {
		t.Fatalf("after resume: %q", got)
	}
	if got := ids(before.Match("", "user.created")); got != "all" {
		t.Fatalf("old snapshot changed: %q", got)
	}
	r.Remove("all")
	if got := ids(r.Table().Match("", "user.created")); got != "paused" {
		t.Fatalf("after remove: %q", got)
	}
}
