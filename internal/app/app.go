// Package app wires walhook together and owns the start and stop order of
// its parts. It is imported only by entry points (cmd/walhook, tests that
// run the whole service).
//
// Start order: database (embedded or configured) → checks and migrations →
// publications and slot → routing table → scheduler loaded with unfinished
// deliveries → recorder, dispatcher, scheduler running → replication stream
// → HTTP listeners. Stop order is the reverse, so that in-flight attempts
// finish (or stay pending) and their results are written before the process
// exits; the slot is confirmed only up to what was written.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/netguard"
	"github.com/walhook/walhook/internal/pgcluster"
	"github.com/walhook/walhook/internal/pipeline"
	"github.com/walhook/walhook/internal/proxy"
	"github.com/walhook/walhook/internal/recorder"
	"github.com/walhook/walhook/internal/retry"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/scheduler"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/stream"
)

// Version is set at build time (-ldflags "-X .../app.Version=...").
var Version = "dev"

// Database returns the DSN to use: database.url, or an embedded server on
// database.data_dir (started here unless a walhook already runs it). stop
// shuts down a server started here.
func Database(ctx context.Context, cfg *config.Config, log *slog.Logger) (dsn string, stop func(), err error) {
	if cfg.Database.URL != "" {
		return cfg.Database.URL, func() {}, nil
	}
	if port, ok := pgcluster.Running(cfg.Database.DataDir); ok {
		return pgcluster.DSNForPort(port, "postgres"), func() {}, nil
	}
	log.Info("no database.url: starting embedded PostgreSQL", "data_dir", cfg.Database.DataDir)
	c, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: cfg.Database.DataDir})
	if err != nil {
		return "", nil, fmt.Errorf("embedded postgres: %w", err)
	}
	dsn = c.DSN("postgres")
	log.Info("embedded PostgreSQL running", "dsn", dsn, "bindir", c.BinDir())
	return dsn, func() {
		if err := c.Stop("fast"); err != nil {
			log.Error("stop embedded postgres", "err", err)
		}
	}, nil
}

// OutboxOf translates the outbox settings.
func OutboxOf(cfg *config.Config) store.Outbox {
	schema, table, _ := config.SplitTable(cfg.Outbox.Table) // validated by config
	c := cfg.Outbox.Columns
	return store.Outbox{Schema: schema, Table: table, ID: c.ID, EventType: c.EventType, Payload: c.Payload, TenantID: c.TenantID, CreatedAt: c.CreatedAt}
}

// Prepare opens the store and makes the database ready: prerequisites,
// migrations, outbox table, publications and slot.
func Prepare(ctx context.Context, cfg *config.Config, dsn string, log *slog.Logger) (*store.Store, error) {
	st, err := store.OpenSplit(ctx, dsn, cfg.Database.StateURL, cfg.Database.Schema, cfg.Database.MaxConns)
	if err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{
		st.CheckPrerequisites,
		st.Migrate,
		func(ctx context.Context) error { return st.EnsureOutbox(ctx, OutboxOf(cfg)) },
		func(ctx context.Context) error {
			_, err := st.SlotStats(ctx, cfg.Replication.Slot)
			existed := !errors.Is(err, store.ErrSlotNotFound)
			if err := st.EnsureReplication(ctx, cfg.Replication.Slot, cfg.Replication.Publication, OutboxOf(cfg)); err != nil {
				return err
			}
			if !existed {
				log.Info("replication slot created: outbox rows committed from now on are delivered", "slot", cfg.Replication.Slot,
					"publication", cfg.Replication.Publication)
			}
			return nil
		},
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// Service builds the management service for a store.
func Service(cfg *config.Config, st *store.Store) *manage.Service {
	return &manage.Service{Store: st, Network: netguard.Policy{AllowPrivate: cfg.Delivery.AllowPrivateNetworks},
		RequireHTTPS: cfg.Delivery.RequireHTTPS, SecretOverlap: cfg.Endpoint.SecretOverlap, Catalogue: cfg.EventTypes}
}

// Server is a running walhook.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	Store    *store.Store
	Registry *prometheus.Registry
	Stream   *stream.Stream
	Router   *route.Router

	APIAddr, AdminAddr string

	stopDB func()
	stop   context.CancelFunc
	done   chan struct{}
	err    error
}

// Run starts walhook and blocks until ctx ends, then shuts down in order.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	s, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return s.Stop()
}

// Start starts walhook and returns once it is streaming and serving.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	dsn, stopDB, err := Database(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := Prepare(ctx, cfg, dsn, log)
	if err != nil {
		stopDB()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, Store: st, stopDB: stopDB, done: make(chan struct{})}
	if err := s.start(ctx, dsn); err != nil {
		st.Close()
		stopDB()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, dsn string) error {
	cfg, log, st := s.cfg, s.log, s.Store
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.PerEndpoint(reg, cfg.Metrics.EndpointLabels)
	reg.MustRegister(metrics.NewReplicationCollector(cfg.Replication.Slot, func(ctx context.Context) (metrics.SlotStats, error) {
		ss, err := st.SlotStats(ctx, cfg.Replication.Slot)
		return metrics.SlotStats{Active: ss.Active, WALStatus: ss.WALStatus, ConfirmedFlushLSN: ss.ConfirmedFlushLSN, LagBytes: ss.LagBytes, RetainedWALBytes: ss.RetainedWALBytes}, err
	}, metrics.ReplicationOptions{}))
	m.BuildInfo.WithLabelValues(Version, runtime.Version()).Set(1)
	s.Registry = reg

	router := route.NewRouter()
	eps, err := st.PageEndpoints(ctx, store.EndpointPage{})
	if err != nil {
		return err
	}
	if err := router.Replace(eps); err != nil {
		return err
	}
	s.Router = router
	cursor, err := st.ClaimCursor(ctx, cfg.Replication.Slot)
	if err != nil {
		return err
	}

	policy := retry.Policy{Schedule: cfg.Delivery.RetrySchedule, MaxAttempts: cfg.Delivery.MaxAttempts, Jitter: cfg.Delivery.RetryJitter}
	var sched *scheduler.Scheduler
	rec := recorder.New(recorder.Options{Store: st, Slot: cfg.Replication.Slot, Scheduler: schedulerRef{&sched}, Logger: log, Metrics: m,
		FinalFlush: max(cfg.ShutdownTimeout/4, time.Second)})
	rec.SetDurable(cursor)
	cb := cfg.Delivery.CircuitBreaker
	disp := delivery.New(delivery.Options{
		Workers: cfg.Delivery.Workers, EndpointInflight: cfg.Delivery.EndpointInflight, Timeout: cfg.Delivery.Timeout,
		BodyLimit: cfg.Delivery.ResponseBodyLimit, UserAgent: cfg.Delivery.UserAgent, Policy: policy,
		QueueLimit: cfg.Delivery.QueueLimit, DisableAfter: cfg.Endpoint.DisableAfter, Resumer: schedulerRef{&sched},
		Breaker: delivery.Breaker{Failures: cb.Failures, Cooldown: cb.Cooldown, MaxCooldown: cb.MaxCooldown},
		Network: netguard.Policy{AllowPrivate: cfg.Delivery.AllowPrivateNetworks}, Logger: log, Metrics: m,
	}, rec)
	sched = scheduler.New(scheduler.Options{Store: st, Router: router, Dispatcher: disp, Sink: rec,
		Window: cfg.Delivery.QueueLimit, Logger: log, Metrics: m})
	metrics.EndpointStates(reg, func() map[string]int { return endpointStates(router.Table(), disp.Circuits()) })
	loaded, err := sched.Load(ctx)
	if err != nil {
		return err
	}
	log.Info("scheduler loaded unfinished deliveries", "count", loaded)

	pipe := pipeline.New(pipeline.Options{
		Outbox: pipeline.Outbox{Outbox: OutboxOf(cfg), MaxPayloadBytes: cfg.Outbox.MaxPayloadBytes, PayloadKinds: cfg.Outbox.PayloadKinds},
		Schema: cfg.Database.Schema, MaxAttempts: cfg.Delivery.MaxAttempts,
		Store: st, Router: router, Recorder: rec, Dispatcher: disp, Scheduler: sched, Logger: log, Metrics: m,
	})
	if cfg.Replication.SpillBytes > 0 {
		// A spill directory that cannot be written would only show during
		// a backlog, as a warning and a spill turned off.
		f, err := os.CreateTemp(cfg.Replication.SpillDir, "walhook-read-ahead-check-*")
		if err != nil {
			return fmt.Errorf("replication.spill_dir: %w", err)
		}
		f.Close()
		if err := os.Remove(f.Name()); err != nil {
			return fmt.Errorf("replication.spill_dir: %w", err)
		}
		if dir := filepath.Dir(f.Name()); memoryBacked(dir) {
			log.Warn("replication.spill_dir is memory-backed (tmpfs): a backlog spilled there takes memory, up to replication.spill_bytes; set it to a directory on disk",
				"dir", dir, "spill_bytes", cfg.Replication.SpillBytes)
		}
	}
	s.Stream = stream.New(stream.Options{
		DSN: dsn, Slot: cfg.Replication.Slot,
		Publications:   []string{cfg.Replication.Publication, store.EndpointsPublication(cfg.Replication.Publication)},
		StatusInterval: cfg.Replication.StatusInterval, ReadAhead: cfg.Replication.ReadAheadBytes,
		Spill: cfg.Replication.SpillBytes, SpillDir: cfg.Replication.SpillDir, Logger: log,
		OnConfirm: func(lsn uint64) { m.ConfirmedLSN.Set(float64(lsn)) },
	}, pipe)

	apiLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	s.APIAddr, s.AdminAddr = apiLn.Addr().String(), adminLn.Addr().String()
	own, svc, err := managementAPI(cfg, st, disp, eps, log)
	if err != nil {
		apiLn.Close()
		adminLn.Close()
		return err
	}
	upstream, err := Upstream(cfg, log)
	if err != nil {
		apiLn.Close()
		adminLn.Close()
		return err
	}
	// No WriteTimeout: it would cut proxied streams and websockets.
	apiSrv := &http.Server{Handler: proxy.Mount(cfg.API.Prefix, own, upstream), ReadHeaderTimeout: 10 * time.Second}
	adminSrv := &http.Server{Handler: s.adminHandler(reg), ReadHeaderTimeout: 10 * time.Second}

	// Lifetimes: the stream stops first, then listeners, scheduler and
	// dispatcher; the recorder last, so it writes every result.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stopRun
	var wg, recWG sync.WaitGroup
	recWG.Add(1)
	go func() { defer recWG.Done(); rec.Run(recCtx) }()
	wg.Add(6)
	go func() { defer wg.Done(); sched.Run(runCtx) }()
	go func() {
		defer wg.Done()
		if err := s.Stream.Run(runCtx, cursor); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("replication stream stopped", "err", err)
		}
	}()
	go func() { defer wg.Done(); s.heartbeat(runCtx) }()
	go func() { defer wg.Done(); s.observe(runCtx, m) }()
	go func() { defer wg.Done(); svc.RunSecretExpiry(runCtx, log) }()
	go func() {
		defer wg.Done()
		serve := func(srv *http.Server, ln net.Listener) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "addr", ln.Addr(), "err", err)
			}
		}
		go serve(apiSrv, apiLn)
		go serve(adminSrv, adminLn)
		<-runCtx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout/2)
		defer cancel()
		_ = apiSrv.Shutdown(sctx)
		_ = adminSrv.Shutdown(sctx)
	}()
	log.Info("walhook serving", "listen", s.APIAddr, "admin_listen", s.AdminAddr, "upstream", cfg.Proxy.Upstream, "slot", cfg.Replication.Slot,
		"outbox", cfg.Outbox.Table, "endpoints", len(eps))

	go func() {
		defer close(s.done)
		// Everything fits in shutdown_timeout: in-flight attempts get three
		// quarters of it (then they are cut and recorded as retrying), the
		// recorder's last flush the rest.
		<-runCtx.Done()
		log.Info("walhook stopping", "in_flight_grace", cfg.ShutdownTimeout*3/4)
		var dispWG sync.WaitGroup
		dispWG.Add(1)
		go func() { defer dispWG.Done(); disp.Stop(cfg.ShutdownTimeout * 3 / 4) }()
		wg.Wait()
		dispWG.Wait()
		stopRec()
		recWG.Wait()
		st.Close()
		s.stopDB()
		log.Info("walhook stopped")
	}()
	return nil
}

// Upstream builds the reverse proxy to proxy.upstream (a 404 handler when
// none is configured).
func Upstream(cfg *config.Config, log *slog.Logger) (http.Handler, error) {
	opts := proxy.Options{Logger: log}
	if cfg.Proxy.Upstream != "" {
		u, err := url.Parse(cfg.Proxy.Upstream)
		if err != nil {
			return nil, fmt.Errorf("proxy.upstream: %w", err)
		}
		opts.Upstream = u
	}
	for _, c := range cfg.Proxy.TrustedProxies {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("proxy.trusted_proxies: %w", err)
		}
		opts.TrustedProxies = append(opts.TrustedProxies, p)
	}
	h, err := proxy.New(opts)
	if err != nil {
		return nil, fmt.Errorf("proxy.upstream: %w", err)
	}
	return h, nil
}

// schedulerRef breaks the construction cycles recorder → scheduler →
// dispatcher → recorder and dispatcher → scheduler: the scheduler exists
// before anything runs.
type schedulerRef struct{ s **scheduler.Scheduler }

func (r schedulerRef) Schedule(id string, at time.Time)   { (*r.s).Schedule(id, at) }
func (r schedulerRef) Park(endpointID, deliveryID string) { (*r.s).Park(endpointID, deliveryID) }
func (r schedulerRef) Resume(endpointID string, n int)    { (*r.s).Resume(endpointID, n) }
func (r schedulerRef) Parked() int                        { return (*r.s).Parked() }

// endpointStates counts endpoints by state for walhook_endpoints.
func endpointStates(t *route.Table, circuits map[string]string) map[string]int {
	n := map[string]int{}
	t.Each(func(e *route.Endpoint) {
		switch {
		case !e.Active && e.DisabledReason != "":
			n[metrics.EndpointDisabled]++
		case !e.Active:
			n[metrics.EndpointPaused]++
		case circuits[e.ID] != "":
			n[metrics.EndpointCircuitOpen]++
		default:
			n[metrics.EndpointActive]++
		}
	})
	return n
}

// Stop shuts walhook down in order and waits for it.
func (s *Server) Stop() error {
	s.stop()
	<-s.done
	return s.err
}

// heartbeat writes a transactional logical message now and then, so an idle
// outbox still gives the slot something to confirm and WAL is not pinned.
func (s *Server) heartbeat(ctx context.Context) {
	if s.cfg.Replication.HeartbeatInterval <= 0 {
		return
	}
	t := time.NewTicker(s.cfg.Replication.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Store.EmitHeartbeat(ctx, "walhook-heartbeat"); err != nil && ctx.Err() == nil {
				s.log.Warn("heartbeat failed", "err", err)
			}
		}
	}
}

// observe copies stream state into gauges.
func (s *Server) observe(ctx context.Context, m *metrics.Metrics) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var spilled int64
	for {
		st := s.Stream.Status()
		m.ReceivedLSN.Set(float64(st.Received))
		m.ReadAheadBytes.Set(float64(st.ReadAheadBytes))
		m.SpillBytes.Set(float64(st.SpillBytes))
		m.SpilledBytes.Add(float64(st.SpilledBytes - spilled))
		spilled = st.SpilledBytes
		if st.Connected {
			m.StreamConnected.Set(1)
		} else {
			m.StreamConnected.Set(0)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) adminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if s.cfg.AdminPprof {
		// Contention profiles too (/debug/pprof/mutex and /block): their
		// sampling costs a little, and pprof is opt-in.
		runtime.SetMutexProfileFraction(100)
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems := s.readiness(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			writeReadiness(w, "unavailable", problems)
			return
		}
		writeReadiness(w, "ok", nil)
	})
	return mux
}

// readiness lists what keeps walhook from doing its job.
func (s *Server) readiness(ctx context.Context) []string {
	var problems []string
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		problems = append(problems, "database unreachable: "+err.Error())
	} else if ok, err := s.Store.MigrationsApplied(ctx); err != nil || !ok {
		problems = append(problems, "migrations not applied")
	}
	st := s.Stream.Status()
	switch {
	case !st.Connected:
		problems = append(problems, "replication stream not connected")
	case time.Since(st.LastActivity) > 3*s.cfg.Replication.StatusInterval+30*time.Second:
		problems = append(problems, "replication stream stalled: nothing from postgres since "+st.LastActivity.UTC().Format(time.RFC3339))
	}
	return problems
}

func writeReadiness(w http.ResponseWriter, status string, problems []string) {
	body := struct {
		Status   string   `json:"status"`
		Problems []string `json:"problems,omitempty"`
	}{status, problems}
	_ = json.NewEncoder(w).Encode(body)
}
