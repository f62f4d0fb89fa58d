package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/waitfor"
)

const (
	acmeToken   = "acme-token-0123456789"
	globexToken = "globex-token-0123456789"
)

// tenantConfig has an admin token and one token each for acme and globex.
func tenantConfig(t *testing.T, dsn string) *config.Config {
	cfg := testConfig(t, dsn)
	cfg.Auth.TenantTokens = []string{"acme=" + acmeToken, "globex=" + globexToken}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// insertTenantEvents commits n outbox rows of a tenant ("" for none).
func insertTenantEvents(t *testing.T, dsn, tenant, eventType string, n int) {
	t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(t, dsn)
	defer conn.Close(context.Background())
	for i := range n {
		if _, err := conn.Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload, tenant_id) VALUES ($1, $2, nullif($3, ''))`,
			eventType, fmt.Sprintf(`{"n": %d, "tenant": %q}`, i, tenant), tenant); err != nil {
			t.Fatal(err)
		}
	}
}

// bad counts requests whose signatures or headers did not verify.
func (r *receiver) bad() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badSigns
}

func (r *receiver) setSecret(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = secret
}

func ids[T any](p pageJSON[T], id func(T) string) []string {
	var out []string
	for _, v := range p.Data {
		out = append(out, id(v))
	}
	sort.Strings(out)
	return out
}

func TestAPITenantsSeeOnlyTheirOwnObjects(t *testing.T) {
	db := pgtest.New(t)
	cfg := tenantConfig(t, db.DSN)
	s := start(t, cfg)
	defer s.Stop()
	admin, acme, globex := newAPIClient(t, s, token), newAPIClient(t, s, acmeToken), newAPIClient(t, s, globexToken)

	acmeRcv, globexRcv := newReceiver(t), newReceiver(t)
	acmeEP := acme.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["*"]}`, acmeRcv.srv.URL))
	acmeRcv.setSecret(acmeEP.Secret)
	globexEP := globex.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["*"],"tenant_id":"globex"}`, globexRcv.srv.URL))
	globexRcv.setSecret(globexEP.Secret)
	untenanted := admin.createEndpoint(`{"url":"https://example.com/none","events":["nothing.matches"]}`)
	adminForAcme := admin.createEndpoint(`{"url":"https://example.com/acme","events":["nothing.matches"],"tenant_id":"acme"}`)
	if acmeEP.TenantID != "acme" || globexEP.TenantID != "globex" || untenanted.TenantID != "" || adminForAcme.TenantID != "acme" {
		t.Fatalf("tenants: acme %q, globex %q, admin %q and %q", acmeEP.TenantID, globexEP.TenantID, untenanted.TenantID, adminForAcme.TenantID)
	}
	acme.fails("POST", "/endpoints", `{"url":"https://example.com","events":["*"],"tenant_id":"globex"}`, 422, "tenant_id")

	insertTenantEvents(t, db.DSN, "acme", "order.created", 2)
	insertTenantEvents(t, db.DSN, "globex", "order.created", 3)
	waitfor.True(t, "every tenant's deliveries", 10*time.Second, func() bool { return acmeRcv.distinct() == 2 && globexRcv.distinct() == 3 })
	if acmeRcv.bad()+globexRcv.bad() != 0 {
		t.Fatal("a delivery was not signed with its endpoint's secret")
	}

	// Objects of globex, as acme must never see them.
	// A request can arrive before its delivery's row is committed: wait for
	// the record.
	waitfor.True(t, "every delivery to be recorded as delivered", 10*time.Second, func() bool {
		return countStatus(t, s.Store, "delivered") == 5
	})
	var gDeliveries pageJSON[deliveryJSON]
	globex.call("GET", "/deliveries", "", http.StatusOK, &gDeliveries)
	if len(gDeliveries.Data) != 3 {
		t.Fatalf("globex sees %d deliveries, want its 3", len(gDeliveries.Data))
	}
	gDelivery, gEvent := gDeliveries.Data[0].ID, gDeliveries.Data[0].EventID

	t.Run("another tenant's objects are 404 like unknown ones", func(t *testing.T) {
		tests := []struct{ name, method, path, body string }{
			{"get endpoint", "GET", "/endpoints/" + globexEP.ID, ""},
			{"update endpoint", "PATCH", "/endpoints/" + globexEP.ID, `{"description":"mine now"}`},
			{"pause endpoint", "PATCH", "/endpoints/" + globexEP.ID, `{"active":false}`},
			{"delete endpoint", "DELETE", "/endpoints/" + globexEP.ID, ""},
			{"rotate secret", "POST", "/endpoints/" + globexEP.ID + "/rotate-secret", ""},
			{"send test event", "POST", "/endpoints/" + globexEP.ID + "/test", ""},
			{"recover", "POST", "/endpoints/" + globexEP.ID + "/recover?since=1h", ""},
			{"get untenanted endpoint", "GET", "/endpoints/" + untenanted.ID, ""},
			{"get delivery", "GET", "/deliveries/" + gDelivery, ""},
			{"retry delivery", "POST", "/deliveries/" + gDelivery + "/retry", ""},
			{"get event", "GET", "/events/" + gEvent, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, theirs := acme.do(tt.method, tt.path, tt.body)
				if code != http.StatusNotFound {
					t.Fatalf("status %d, want 404: %s", code, theirs)
				}
				// Indistinguishable from an id that does not exist.
				_, unknown := acme.do(tt.method, replaceID(tt.path), tt.body)
				if string(theirs) != string(unknown) {
					t.Fatalf("another tenant's object answers %s, an unknown one %s", theirs, unknown)
				}
			})
		}
		var still endpointJSON
		globex.call("GET", "/endpoints/"+globexEP.ID, "", http.StatusOK, &still)
		if still.Description != "" || !still.Active || still.PreviousSecretExpiresAt != nil {
			t.Fatalf("acme's refused requests changed globex's endpoint: %+v", still)
		}
		if globexRcv.requests() != 3 {
			t.Fatalf("globex's receiver got %d requests, want its 3 (no test event, no retry)", globexRcv.requests())
		}
	})

	t.Run("lists show only the caller's tenant", func(t *testing.T) {
		epID := func(e endpointJSON) string { return e.ID }
		dTenant := func(d deliveryJSON) string { return d.TenantID }
		eTenant := func(e struct {
			TenantID string `json:"tenant_id"`
		}) string {
			return e.TenantID
		}
		var eps pageJSON[endpointJSON]
		acme.call("GET", "/endpoints", "", http.StatusOK, &eps)
		if got, want := ids(eps, epID), sorted(acmeEP.ID, adminForAcme.ID); !slices.Equal(got, want) {
			t.Errorf("acme lists endpoints %v, want %v", got, want)
		}
		acme.call("GET", "/endpoints?tenant_id=globex", "", http.StatusOK, &eps)
		if len(eps.Data) != 0 {
			t.Errorf("acme asking for globex's endpoints got %d", len(eps.Data))
		}
		admin.call("GET", "/endpoints?tenant_id=globex", "", http.StatusOK, &eps)
		if got := ids(eps, epID); !slices.Equal(got, []string{globexEP.ID}) {
			t.Errorf("admin filtering globex got %v", got)
		}
		admin.call("GET", "/endpoints", "", http.StatusOK, &eps)
		if len(eps.Data) != 4 {
			t.Errorf("admin lists %d endpoints, want all 4", len(eps.Data))
		}
		var ds pageJSON[deliveryJSON]
		acme.call("GET", "/deliveries", "", http.StatusOK, &ds)
		if got := ids(ds, dTenant); !slices.Equal(got, []string{"acme", "acme"}) {
			t.Errorf("acme lists deliveries of tenants %v", got)
		}
		acme.call("GET", "/deliveries?tenant_id=globex", "", http.StatusOK, &ds)
		if len(ds.Data) != 0 {
			t.Errorf("acme asking for globex's deliveries got %d", len(ds.Data))
		}
		var evs pageJSON[struct {
			TenantID string `json:"tenant_id"`
		}]
		acme.call("GET", "/events", "", http.StatusOK, &evs)
		if got := ids(evs, eTenant); !slices.Equal(got, []string{"acme", "acme"}) {
			t.Errorf("acme lists events of tenants %v", got)
		}
		admin.call("GET", "/events", "", http.StatusOK, &evs)
		if len(evs.Data) != 5 {
			t.Errorf("admin lists %d events, want all 5", len(evs.Data))
		}
	})

	t.Run("a tenant manages its own endpoints", func(t *testing.T) {
		var got endpointJSON
		acme.call("PATCH", "/endpoints/"+adminForAcme.ID, `{"description":"acme's","tenant_id":"acme"}`, http.StatusOK, &got)
		if got.Description != "acme's" {
			t.Fatalf("update: %+v", got)
		}
		acme.fails("PATCH", "/endpoints/"+adminForAcme.ID, `{"tenant_id":"globex"}`, 422, "tenant_id")
		acme.call("DELETE", "/endpoints/"+adminForAcme.ID, "", http.StatusNoContent, nil)
	})
}

// replaceID swaps the id in an API path ("/endpoints/ID/...") for one that
// does not exist.
func replaceID(path string) string {
	segs := strings.Split(path, "/")
	segs[2] = "x_doesnotexist"
	return strings.Join(segs, "/")
}

func sorted(vs ...string) []string {
	sort.Strings(vs)
	return vs
}
