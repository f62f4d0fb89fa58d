package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/waitfor"
)

// listAll follows next cursors and returns every item and the page sizes.
func listAll[T any](c *apiClient, path string) ([]T, []int) {
	c.t.Helper()
	var all []T
	var sizes []int
	sep := "?"
	if slices.Contains([]byte(path), '?') {
		sep = "&"
	}
	next := ""
	for {
		var p pageJSON[T]
		c.call("GET", path+next, "", http.StatusOK, &p)
		all = append(all, p.Data...)
		sizes = append(sizes, len(p.Data))
		if p.Next == "" {
			return all, sizes
		}
		next = sep + "cursor=" + url.QueryEscape(p.Next)
	}
}

func TestAPIDeliveriesEventsAndEventTypes(t *testing.T) {
	db := pgtest.New(t)
	cfg := tenantConfig(t, db.DSN)
	cfg.EventTypes = []string{"order.created", "customer.created"}
	s := start(t, cfg)
	defer s.Stop()
	c, outsider := newAPIClient(t, s, token), newAPIClient(t, s, globexToken)

	orders, everything, payments := newReceiver(t), newReceiver(t), newReceiver(t)
	payments.fail = func(string, int) int { return http.StatusInternalServerError }
	epOrders := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["order.*"]}`, orders.srv.URL))
	epAll := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["*"]}`, everything.srv.URL))
	epPay := c.createEndpoint(fmt.Sprintf(`{"url":%q,"events":["payment.*"],"max_attempts":1}`, payments.srv.URL))
	orders.setSecret(epOrders.Secret)
	everything.setSecret(epAll.Secret)
	payments.setSecret(epPay.Secret)

	before := time.Now().UTC()
	insertEvents(t, db.DSN, 60, "order.created", true)
	insertEvents(t, db.DSN, 1, "payment.failed", true)
	waitfor.True(t, "122 deliveries to finish", 15*time.Second, func() bool {
		return countStatus(t, s.Store, "delivered") == 121 && countStatus(t, s.Store, "failed") == 1
	})
	after := time.Now().UTC()

	t.Run("pages of 50, newest first, every delivery once", func(t *testing.T) {
		all, sizes := listAll[deliveryJSON](c, "/deliveries")
		if !slices.Equal(sizes, []int{50, 50, 22}) {
			t.Fatalf("page sizes %v, want [50 50 22]", sizes)
		}
		seen := map[string]bool{}
		for i, d := range all {
			if seen[d.ID] {
				t.Fatalf("delivery %s listed twice", d.ID)
			}
			seen[d.ID] = true
			if i > 0 && d.CreatedAt.After(all[i-1].CreatedAt) {
				t.Fatalf("not newest first at %d: %s after %s", i, d.CreatedAt, all[i-1].CreatedAt)
			}
		}
		var p pageJSON[deliveryJSON]
		if c.call("GET", "/deliveries?limit=250", "", http.StatusOK, &p); len(p.Data) != 122 || p.Next != "" {
			t.Fatalf("limit=250: %d deliveries, next %q", len(p.Data), p.Next)
		}
	})

	t.Run("filters", func(t *testing.T) {
		q := url.QueryEscape
		tests := []struct {
			name, query string
			want        int
		}{
			{"by endpoint", "endpoint_id=" + epOrders.ID, 60},
			{"by status", "status=failed", 1},
			{"by event type", "event_type=payment.failed", 2},
			{"by endpoint and status", "endpoint_id=" + epAll.ID + "&status=delivered", 61},
			{"since before", "since=" + q(before.Add(-time.Second).Format(time.RFC3339Nano)), 122},
			{"since a duration ago", "since=1h", 122},
			{"since after", "since=" + q(after.Add(time.Second).Format(time.RFC3339Nano)), 0},
			{"until before", "until=" + q(before.Add(-time.Second).Format(time.RFC3339Nano)), 0},
			{"within the range", "since=" + q(before.Add(-time.Second).Format(time.RFC3339)) + "&until=" + q(after.Add(time.Second).Format(time.RFC3339)), 122},
			{"unknown endpoint", "endpoint_id=ep_nobody", 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				all, _ := listAll[deliveryJSON](c, "/deliveries?limit=100&"+tt.query)
				if len(all) != tt.want {
					t.Fatalf("%d deliveries, want %d", len(all), tt.want)
				}
			})
		}
		bad := []struct{ name, query, field string }{
			{"unknown status", "status=lost", "status"},
			{"limit over 250", "limit=251", "limit"},
			{"limit not a number", "limit=ten", "limit"},
			{"since not a time", "since=yesterday", "since"},
			{"until not a time", "until=2026-13-01", "until"},
			{"forged cursor", "cursor=" + q("bm90IGEgY3Vyc29y"), "cursor"},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) { c.fails("GET", "/deliveries?"+tt.query, "", 400, tt.field) })
		}
	})

	var failed pageJSON[deliveryJSON]
	c.call("GET", "/deliveries?status=failed", "", http.StatusOK, &failed)
	payID := failed.Data[0].ID

	t.Run("a delivery with its attempt log", func(t *testing.T) {
		var d deliveryJSON
		raw := c.call("GET", "/deliveries/"+payID, "", http.StatusOK, &d)
		if d.Status != "failed" || d.Attempts != 1 || d.EndpointID != epPay.ID || len(d.AttemptLog) != 1 {
			t.Fatalf("delivery: %s", raw)
		}
		a := d.AttemptLog[0]
		if a.Attempt != 1 || a.StatusCode == nil || *a.StatusCode != 500 || a.Response != "nope" || a.DurationMS <= 0 || a.StartedAt.Location() != time.UTC {
			t.Fatalf("attempt: %+v", a)
		}
		c.fails("GET", "/deliveries/msg_doesnotexist", "", 404, "")
		outsider.hidden([3]string{"GET", "/deliveries/" + payID, ""}, [3]string{"POST", "/deliveries/" + payID + "/retry", ""},
			[3]string{"POST", "/endpoints/" + epPay.ID + "/recover?since=1h", ""}, [3]string{"GET", "/events/" + d.EventID, ""})
		for _, list := range []string{"/deliveries", "/events"} {
			var p pageJSON[json.RawMessage]
			if outsider.call("GET", list, "", http.StatusOK, &p); len(p.Data) != 0 {
				t.Fatalf("another tenant lists %d of %s", len(p.Data), list)
			}
		}
	})

	t.Run("retry re-sends one delivery; a pending one is a conflict", func(t *testing.T) {
		payments.mu.Lock()
		payments.fail = nil
		payments.mu.Unlock()
		var d deliveryJSON
		c.call("POST", "/deliveries/"+payID+"/retry", "", http.StatusAccepted, &d)
		if d.Status != "retrying" || d.ID != payID {
			t.Fatalf("retry answered %+v", d)
		}
		waitfor.True(t, "the retried delivery to be delivered", 10*time.Second, func() bool {
			var got deliveryJSON
			c.call("GET", "/deliveries/"+payID, "", http.StatusOK, &got)
			return got.Status == "delivered" && got.Attempts == 2 && len(got.AttemptLog) == 2
		})
		if _, err := s.Store.Pool().Exec(context.Background(), `UPDATE deliveries SET status = 'pending' WHERE id = $1`, payID); err != nil {
			t.Fatal(err)
		}
		c.fails("POST", "/deliveries/"+payID+"/retry", "", http.StatusConflict, "")
		c.fails("POST", "/deliveries/msg_doesnotexist/retry", "", 404, "")
		c.fails("POST", "/deliveries/"+payID+"/retry", `{"now":true}`, 400, "now")
	})

	t.Run("recover re-queues an endpoint's failed deliveries since a time", func(t *testing.T) {
		payments.mu.Lock()
		payments.fail = func(string, int) int { return http.StatusServiceUnavailable }
		payments.mu.Unlock()
		insertEvents(t, db.DSN, 2, "payment.refused", true)
		waitfor.True(t, "two more failures", 10*time.Second, func() bool { return countStatus(t, s.Store, "failed") == 2 })
		payments.mu.Lock()
		payments.fail = nil
		payments.mu.Unlock()
		var out struct {
			EndpointID string    `json:"endpoint_id"`
			Since      time.Time `json:"since"`
			Requeued   int       `json:"requeued"`
		}
		c.call("POST", "/endpoints/"+epPay.ID+"/recover?since=1h", "", http.StatusOK, &out)
		if out.Requeued != 2 || out.EndpointID != epPay.ID || time.Since(out.Since) < 59*time.Minute {
			t.Fatalf("recover answered %+v", out)
		}
		waitfor.True(t, "recovered deliveries delivered", 10*time.Second, func() bool { return countStatus(t, s.Store, "failed") == 0 })
		c.fails("POST", "/endpoints/"+epPay.ID+"/recover", "", 400, "since")
		c.fails("POST", "/endpoints/"+epPay.ID+"/recover?since=last+week", "", 400, "since")
		c.fails("POST", "/endpoints/ep_doesnotexist/recover?since=1h", "", 404, "")
	})

	t.Run("events with payloads and fan-out", func(t *testing.T) {
		type event struct {
			ID         string          `json:"id"`
			EventType  string          `json:"event_type"`
			OutboxID   string          `json:"outbox_id"`
			Payload    json.RawMessage `json:"payload"`
			Deliveries []deliveryJSON  `json:"deliveries"`
		}
		all, sizes := listAll[event](c, "/events")
		if len(all) != 63 || sizes[0] != 50 {
			t.Fatalf("%d events in pages %v, want 63 starting with 50", len(all), sizes)
		}
		if all[0].Payload != nil {
			t.Fatalf("the list carries payloads: %s", all[0].Payload)
		}
		var orders pageJSON[event]
		c.call("GET", "/events?event_type=order.created&limit=1", "", http.StatusOK, &orders)
		if len(orders.Data) != 1 || orders.Next == "" {
			t.Fatalf("event_type filter: %+v", orders)
		}
		var got event
		c.call("GET", "/events/"+orders.Data[0].ID, "", http.StatusOK, &got)
		var payload struct {
			N    int    `json:"n"`
			HTML string `json:"html"`
		}
		if err := json.Unmarshal(got.Payload, &payload); err != nil || payload.HTML != "<script>x</script>" || got.OutboxID == "" {
			t.Fatalf("payload %s (%v), outbox id %q", got.Payload, err, got.OutboxID)
		}
		var to []string
		for _, d := range got.Deliveries {
			to = append(to, d.EndpointID)
		}
		if !slices.Equal(sorted(to...), sorted(epOrders.ID, epAll.ID)) {
			t.Fatalf("order event fanned out to %v, want the order and catch-all endpoints", to)
		}
		c.fails("GET", "/events/evt_doesnotexist", "", 404, "")
		c.fails("GET", "/events?since=soon", "", 400, "since")
	})

	t.Run("event types: configured and seen", func(t *testing.T) {
		var types struct {
			Data []struct {
				Name        string     `json:"name"`
				Configured  bool       `json:"configured"`
				FirstSeenAt *time.Time `json:"first_seen_at"`
			} `json:"data"`
		}
		c.call("GET", "/event-types", "", http.StatusOK, &types)
		var got []string
		for _, et := range types.Data {
			got = append(got, fmt.Sprintf("%s configured=%v seen=%v", et.Name, et.Configured, et.FirstSeenAt != nil))
		}
		want := []string{
			"customer.created configured=true seen=false",
			"order.created configured=true seen=true",
			"payment.failed configured=false seen=true",
			"payment.refused configured=false seen=true",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("event types\n got %q\nwant %q", got, want)
		}
	})
}
