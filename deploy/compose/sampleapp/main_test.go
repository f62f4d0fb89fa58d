package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/walhook/walhook/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestOrdersEmitOutboxEventsInTheSameTransaction(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 2 { // idempotent
		if err := Setup(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	h := (&App{DB: pool, Log: slog.New(slog.DiscardHandler)}).Handler()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w
	}

	w := do(http.MethodPost, "/orders", `{"item": "book", "amount_cents": 1200}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var o Order
	if err := json.Unmarshal(w.Body.Bytes(), &o); err != nil || o.ID == 0 || o.Item != "book" {
		t.Fatalf("created %+v, %v", o, err)
	}
	if w := do(http.MethodPost, "/orders/"+jsonNumber(o.ID)+"/pay", ""); w.Code != http.StatusOK {
		t.Fatalf("pay: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{`{"item": "", "amount_cents": 1}`, `{"item": "x", "amount_cents": 0}`, `nope`} {
		if w := do(http.MethodPost, "/orders", bad); w.Code != http.StatusBadRequest {
			t.Errorf("create %s: %d, want 400", bad, w.Code)
		}
	}
	if w := do(http.MethodPost, "/orders/999999/pay", ""); w.Code != http.StatusNotFound {
		t.Errorf("pay a missing order: %d, want 404", w.Code)
	}

	rows, err := pool.Query(ctx, `SELECT event_type, (payload->>'id')::bigint FROM webhook_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var typ string
		var id int64
		if err := rows.Scan(&typ, &id); err != nil {
			t.Fatal(err)
		}
		if id != o.ID {
			t.Errorf("%s event for order %d, want %d", typ, id, o.ID)
		}
		got = append(got, typ)
	}
	if strings.Join(got, ",") != "order.created,order.paid" {
		t.Fatalf("outbox events = %v", got)
	}
	if w := do(http.MethodGet, "/orders", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"paid":true`) {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }
