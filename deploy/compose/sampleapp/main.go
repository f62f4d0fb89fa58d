// Command sampleapp is the compose demo's application: a tiny order service
// that emits webhook events the outbox way, with one INSERT into
// webhook_outbox in the same transaction as its own write. walhook runs in
// front of it (proxy.upstream) and streams the outbox.
//
//	POST /orders {"item": "book", "amount_cents": 1200}   → 201, event order.created
//	POST /orders/{id}/pay                                   → 200, event order.paid
//	GET  /orders                                            → the last 20 orders
//
// Environment:
//
//	DATABASE_URL    postgres:// URL of the app's database (required)
//	LISTEN          address to serve on (default :8000)
//	GENERATE_EVERY  if set (e.g. 2s), create an order this often, so the
//	                demo's dashboard has traffic without anyone clicking
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("sampleapp stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		return errors.New("DATABASE_URL is required")
	}
	var every time.Duration
	if v := os.Getenv("GENERATE_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("GENERATE_EVERY: %q is not a duration", v)
		}
		every = d
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Postgres (or a concurrent CREATE by walhook) may not be ready yet.
	for attempt := 1; ; attempt++ {
		err = Setup(ctx, pool)
		if err == nil {
			break
		}
		if attempt == 30 || ctx.Err() != nil {
			return fmt.Errorf("set up tables: %w", err)
		}
		log.Warn("setting up tables; retrying", "err", err)
		time.Sleep(2 * time.Second)
	}
	app := &App{DB: pool, Log: log}
	if every > 0 {
		go app.generate(ctx, every)
	}
	srv := &http.Server{Addr: os.Getenv("LISTEN"), Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if srv.Addr == "" {
		srv.Addr = ":8000"
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("sampleapp listening", "addr", srv.Addr, "generate_every", every)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Setup creates the app's table and the outbox (the shape walhook expects;
// walhook's migrate creates the same table when it starts first).
func Setup(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, `
CREATE TABLE IF NOT EXISTS orders (
  id           bigserial PRIMARY KEY,
  item         text NOT NULL,
  amount_cents bigint NOT NULL,
  paid         boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS webhook_outbox (
  id         bigserial PRIMARY KEY,
  event_type text NOT NULL,
  payload    jsonb NOT NULL,
  tenant_id  text,
  created_at timestamptz NOT NULL DEFAULT now()
);`)
	return err
}

// App serves the order API.
type App struct {
	DB  *pgxpool.Pool
	Log *slog.Logger
}

// Order is one row of orders.
type Order struct {
	ID          int64     `json:"id"`
	Item        string    `json:"item"`
	AmountCents int64     `json:"amount_cents"`
	Paid        bool      `json:"paid"`
	CreatedAt   time.Time `json:"created_at"`
}

// Handler routes the API.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "sampleapp: POST /orders {\"item\":\"book\",\"amount_cents\":1200}, POST /orders/{id}/pay, GET /orders")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("POST /orders", a.createOrder)
	mux.HandleFunc("POST /orders/{id}/pay", a.payOrder)
	mux.HandleFunc("GET /orders", a.listOrders)
	return mux
}

func (a *App) createOrder(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Item        string `json:"item"`
		AmountCents int64  `json:"amount_cents"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Item == "" || in.AmountCents <= 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"item": non-empty, "amount_cents": > 0}`})
		return
	}
	o, err := a.CreateOrder(r.Context(), in.Item, in.AmountCents)
	if err != nil {
		a.Log.Error("create order", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

// CreateOrder inserts the order and its order.created event in one
// transaction: the event exists if and only if the order does.
func (a *App) CreateOrder(ctx context.Context, item string, amountCents int64) (Order, error) {
	var o Order
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO orders (item, amount_cents) VALUES ($1, $2) RETURNING id, item, amount_cents, paid, created_at`,
			item, amountCents).Scan(&o.ID, &o.Item, &o.AmountCents, &o.Paid, &o.CreatedAt)
		if err != nil {
			return err
		}
		return emit(ctx, tx, "order.created", o)
	})
	return o, err
}

func (a *App) payOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order"})
		return
	}
	o, err := a.PayOrder(r.Context(), id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order"})
	case err != nil:
		a.Log.Error("pay order", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	default:
		writeJSON(w, http.StatusOK, o)
	}
}

// PayOrder marks an order paid and emits order.paid, in one transaction.
func (a *App) PayOrder(ctx context.Context, id int64) (Order, error) {
	var o Order
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE orders SET paid = true WHERE id = $1 RETURNING id, item, amount_cents, paid, created_at`,
			id).Scan(&o.ID, &o.Item, &o.AmountCents, &o.Paid, &o.CreatedAt)
		if err != nil {
			return err
		}
		return emit(ctx, tx, "order.paid", o)
	})
	return o, err
}

func (a *App) listOrders(w http.ResponseWriter, r *http.Request) {
	rows, err := a.DB.Query(r.Context(), `SELECT id, item, amount_cents, paid, created_at FROM orders ORDER BY id DESC LIMIT 20`)
	if err == nil {
		var orders []Order
		orders, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Order, error) {
			var o Order
			return o, row.Scan(&o.ID, &o.Item, &o.AmountCents, &o.Paid, &o.CreatedAt)
		})
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"orders": orders})
			return
		}
	}
	a.Log.Error("list orders", "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
}

// emit is the whole outbox contract: one INSERT in the caller's transaction.
func emit(ctx context.Context, tx pgx.Tx, eventType string, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload) VALUES ($1, $2)`, eventType, b)
	return err
}

// generate creates an order every interval and pays about half of them.
func (a *App) generate(ctx context.Context, every time.Duration) {
	items := []string{"book", "lamp", "mug", "chair", "poster"}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o, err := a.CreateOrder(ctx, items[rand.IntN(len(items))], 100+rand.Int64N(10_000))
		if err == nil && rand.IntN(2) == 0 {
			_, err = a.PayOrder(ctx, o.ID)
		}
		if err != nil && ctx.Err() == nil {
			a.Log.Warn("generate order", "err", err)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
