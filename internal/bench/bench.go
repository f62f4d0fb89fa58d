// Package bench owns walhook's end-to-end benchmark harness: it starts a
// throwaway PostgreSQL, builds walhook and runs it as a separate process
// configured by WALHOOK_* variables, serves webhook receivers in process,
// produces outbox rows, and measures what arrives (throughput, COMMIT to
// receiver latency, walhook's CPU and memory, Postgres' rows and WAL per
// delivery) against the machine's own ceilings measured in the same run:
// a plain Go HTTP client against the same receivers, and the producer
// inserting with nobody consuming.
//
// cmd/walhook-bench is its command line; Run is the whole harness.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config of one run.
type Config struct {
	// Events committed in the measured phase; ignored when Duration is set.
	Events int64
	// Duration of the measured phase's production, instead of Events.
	Duration time.Duration
	// Rate in events per second over all connections; 0 = as fast as possible.
	Rate         float64
	Conns        int
	RowsPerTxn   int
	PayloadBytes int
	// Endpoints subscribed to every event (fan-out), HangEndpoints of them
	// never answering: they hold each request until walhook's timeout, and
	// the others' throughput is what is measured.
	Endpoints       int
	HangEndpoints   int
	ReceiverLatency time.Duration
	// FailureRatio of requests answered 500 (walhook retries them).
	FailureRatio float64
	// Warmup produces for this long, at the same settings, before the
	// measured phase; its deliveries are awaited and not measured.
	Warmup time.Duration
	// EndpointsLive creates the endpoints while walhook runs (they reach it
	// through the replication stream) instead of before it starts.
	EndpointsLive bool
	// Catchup stops walhook for the measured phase's production and measures
	// how fast a restarted walhook delivers the backlog.
	Catchup bool

	// EndpointInflight is walhook's delivery.endpoint_inflight; the raw HTTP
	// ceiling uses EndpointInflight × answering endpoints connections unless
	// RawConcurrency says otherwise.
	EndpointInflight int
	RawConcurrency   int
	// CeilingDuration is how long each ceiling is measured.
	CeilingDuration time.Duration
	// DrainTimeout bounds the wait for deliveries after production ends;
	// StallTimeout gives up earlier when none arrives for that long.
	DrainTimeout time.Duration
	StallTimeout time.Duration

	// DeliveryTimeout is walhook's delivery.timeout; 0 keeps its default.
	DeliveryTimeout time.Duration
	// RetrySchedule and MaxAttempts set delivery.retry_schedule and
	// delivery.max_attempts when not empty/0. With failures and none given,
	// "1s" and 10 are used, so that retries finish within the run.
	RetrySchedule string
	MaxAttempts   int
	// WalhookSettings are more walhook configuration keys (e.g.
	// "delivery.workers") and values, passed as WALHOOK_* variables.
	WalhookSettings map[string]string
	// PGSettings override the server settings of pgSettings.
	PGSettings map[string]string

	// Verify checks every request's Standard Webhooks signature.
	Verify bool
	// Server is the receivers' HTTP server: ServerLean (the default) or
	// ServerNetHTTP.
	Server string
	// StateServer starts a second Postgres for walhook's records
	// (database.state_url), so that they stay out of the outbox server's
	// WAL. Its CPU counts as Postgres'.
	StateServer bool
	// Keep leaves the temporary directory (Postgres data, logs, binary).
	Keep bool
	// Repo is the walhook repository; empty finds it from the working
	// directory. WalhookBin skips the build and runs that binary.
	Repo       string
	WalhookBin string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// WalhookProfile, when set, is where a CPU profile of walhook taken
	// during the measured phase is written (walhook serves pprof on its
	// admin listener for it).
	WalhookProfile string
	// ProfileSeconds is the length of that profile.
	ProfileSeconds int
}

// DefaultConfig is what the command runs without flags.
func DefaultConfig() Config {
	return Config{
		Events:           10000,
		Conns:            4,
		RowsPerTxn:       1,
		PayloadBytes:     512,
		Endpoints:        1,
		Warmup:           2 * time.Second,
		EndpointInflight: 8,
		CeilingDuration:  3 * time.Second,
		DrainTimeout:     5 * time.Minute,
		StallTimeout:     30 * time.Second,
		Verify:           true,
		Server:           ServerLean,
	}
}

func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Events > 0 || c.Duration > 0, "set events (> 0) or duration")
	check(c.Rate >= 0, "rate must not be negative")
	check(c.Conns >= 1, "conns must be at least 1")
	check(c.RowsPerTxn >= 1, "rows-per-txn must be at least 1")
	check(c.PayloadBytes >= 0, "payload-bytes must not be negative")
	check(c.Endpoints >= 1, "endpoints must be at least 1")
	check(c.HangEndpoints >= 0 && c.HangEndpoints < c.Endpoints, "hang-endpoints must be between 0 and endpoints-1")
	check(c.FailureRatio >= 0 && c.FailureRatio < 1, "failure-ratio must be in [0, 1)")
	check(c.ReceiverLatency >= 0 && c.Warmup >= 0, "durations must not be negative")
	check(c.EndpointInflight >= 1, "endpoint-inflight must be at least 1")
	check(c.RawConcurrency >= 0, "raw-concurrency must not be negative")
	check(c.Server == ServerLean || c.Server == ServerNetHTTP, "receiver-server must be %q or %q", ServerLean, ServerNetHTTP)
	check(c.CeilingDuration > 0, "ceiling duration must be positive")
	check(c.DrainTimeout > 0 && c.StallTimeout > 0, "drain and stall timeouts must be positive")
	return errors.Join(errs...)
}

// run is the state of one Run; its cleanups undo what it started.
type run struct {
	cfg      Config
	clk      clock
	dir      string
	dsn      string
	stateDSN string // empty: walhook's records are in dsn's database
	pgPID    int
	statePID int // the state server's postmaster; 0 without one
	wh       *walhookProc
	settings map[string]string // walhook's, as keys
	rcv      []*receiver       // answering endpoints first, hanging ones last
	cleanups []func()
}

func (r *run) answering() []*receiver { return r.rcv[:r.cfg.Endpoints-r.cfg.HangEndpoints] }

func (r *run) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		prefix := fmt.Sprintf("walhook-bench %6.2fs: ", time.Since(r.clk.base).Seconds())
		fmt.Fprintf(r.cfg.Progress, prefix+format+"\n", args...)
	}
}

// Run executes one benchmark and returns its report. An incomplete run
// (deliveries missing at the deadline) is a report with Complete false, not
// an error; errors are failures of the harness or of walhook's process, and
// carry the end of walhook's log. Everything started is stopped before Run
// returns, also when ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, clk: clock{base: time.Now()}}
	defer func() {
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
	}()
	// Registered after the cleanups, so it runs before them: the log is
	// still there.
	defer func() {
		var shown *logTailError
		if err != nil && ctx.Err() == nil && r.wh != nil && r.wh.cmd != nil && !errors.As(err, &shown) {
			err = fmt.Errorf("%w%s", err, r.wh.tailNote())
		}
	}()
	rep, err = r.execute(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	return rep, err
}

func (r *run) execute(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	dir, err := os.MkdirTemp("", "walhook-bench-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	r.dir = dir
	r.cleanups = append(r.cleanups, func() {
		if cfg.Keep {
			r.progress("kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	// Postgres runs as user postgres when we are root: it must traverse the
	// directory (MkdirTemp makes it 0700).
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}

	bin := cfg.WalhookBin
	if bin == "" {
		root, err := moduleRoot(ctx, cfg.Repo)
		if err != nil {
			return nil, err
		}
		bin = filepath.Join(dir, "walhook")
		r.progress("building walhook from %s", root)
		if err := buildWalhook(ctx, root, bin); err != nil {
			return nil, fmt.Errorf("build walhook: %w", err)
		}
	}

	pgs := pgSettings(cfg.PGSettings)
	r.progress("starting PostgreSQL in %s", dir)
	pg, stopPG, err := startPostgres(ctx, dir, pgs)
	if err != nil {
		return nil, err
	}
	r.cleanups = append(r.cleanups, func() {
		if err := stopPG(); err != nil {
			r.progress("stop postgres: %v", err)
		}
	})
	r.dsn = pg.DSN(benchDB)
	if r.pgPID, err = postmasterPID(pg.DataDir()); err != nil {
		return nil, err
	}
	if cfg.StateServer {
		if err := r.startStateServer(ctx, filepath.Join(dir, "state"), pgs); err != nil {
			return nil, err
		}
	}

	r.progress("measuring the producer alone for %s", cfg.CeilingDuration)
	producerAlone, err := r.producerCeiling(ctx)
	if err != nil {
		return nil, fmt.Errorf("producer ceiling: %w", err)
	}

	for i := range cfg.Endpoints {
		rc, err := newReceiver(receiverOptions{
			Latency: cfg.ReceiverLatency, FailureRatio: cfg.FailureRatio, Verify: cfg.Verify, Clock: r.clk,
			Server: cfg.Server,
			Hang:   i >= cfg.Endpoints-cfg.HangEndpoints,
		})
		if err != nil {
			return nil, err
		}
		r.rcv = append(r.rcv, rc)
		r.cleanups = append(r.cleanups, rc.close)
	}
	var urls []string
	for _, rc := range r.answering() {
		urls = append(urls, rc.url)
	}
	conc := cfg.RawConcurrency
	if conc == 0 {
		conc = cfg.EndpointInflight * len(urls)
	}
	// The raw ceiling is measured before walhook starts and again after it
	// stopped. This machine's speed drifts over seconds (other guests on
	// the host, which steal time does not show when they share a core's
	// siblings), so one measurement made the ratio swing by ten points;
	// the two together bracket the window.
	rawHTTP := func(when string) (rawResult, error) {
		r.progress("measuring raw HTTP %s for %s (%d concurrent requests)", when, cfg.CeilingDuration, conc)
		raw, err := rawHTTPCeiling(ctx, urls, conc, sampleBody(cfg.PayloadBytes), cfg.CeilingDuration)
		if err != nil {
			return raw, fmt.Errorf("raw HTTP ceiling %s: %w", when, err)
		}
		return raw, nil
	}
	rawBefore, err := rawHTTP("before")
	if err != nil {
		return nil, err
	}

	r.configureWalhook(bin)
	// By default the endpoints exist before walhook starts, so it loads them
	// with its routing table: the live path (an endpoint created while
	// walhook runs reaches it through the replication stream) is raced by
	// walhook reloading the row before its commit is visible, see
	// Config.EndpointsLive.
	if !cfg.EndpointsLive {
		if err := r.createEndpoints(ctx, bin); err != nil {
			return nil, err
		}
	}
	if err := r.startWalhook(ctx); err != nil {
		return nil, err
	}
	r.cleanups = append(r.cleanups, func() { _ = r.wh.stop(r.stopGrace()) })
	if cfg.EndpointsLive {
		if err := r.createEndpoints(ctx, bin); err != nil {
			return nil, err
		}
	}

	pgBefore, err := snapshotPG(ctx, r.dsn, false)
	if err != nil {
		return nil, err
	}
	var stateBefore pgSnapshot
	if r.stateDSN != "" {
		if stateBefore, err = snapshotPG(ctx, r.stateDSN, false); err != nil {
			return nil, err
		}
	}
	prod, err := newProducer(ctx, producerOptions{
		DSN: r.dsn, Table: outboxTable, Conns: cfg.Conns, RowsPerTxn: cfg.RowsPerTxn,
		Rate: cfg.Rate, PayloadBytes: cfg.PayloadBytes, Clock: r.clk,
	})
	if err != nil {
		return nil, err
	}
	defer prod.close()

	active := int64(len(r.answering()))
	warm := &production{}
	if cfg.Warmup > 0 {
		// At full speed a warm-up could pile up more than the measured
		// phase itself; it never produces more than half of it.
		var limit int64
		if cfg.Duration == 0 {
			limit = max(1, cfg.Events/2)
		}
		r.progress("warming up for %s", cfg.Warmup)
		if warm, err = prod.run(ctx, 0, limit, cfg.Warmup); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		done, err := r.waitDeliveries(ctx, warm.events*active, "warm-up")
		if err != nil {
			return nil, err
		}
		if !done {
			return nil, fmt.Errorf("warm-up: %d of %d deliveries arrived before the deadline (%s)", r.delivered(), warm.events*active, r.perEndpoint())
		}
	}

	m, err := r.measure(ctx, prod, warm)
	if err != nil {
		return nil, err
	}

	// Backends report their row counts when they exit: stop walhook and
	// close the producer before the final statistics.
	r.progress("stopping walhook")
	m.exitErr = r.wh.stop(r.stopGrace())
	prod.close()
	statsDeliveries := r.delivered()
	pgAfter, err := snapshotPG(ctx, r.dsn, true)
	if err != nil {
		return nil, err
	}
	var stateTables map[string]tupleCounts
	if r.stateDSN != "" {
		stateAfter, err := snapshotPG(ctx, r.stateDSN, true)
		if err != nil {
			return nil, err
		}
		stateTables, _ = stateAfter.since(stateBefore)
	}
	rawAfter, err := rawHTTP("after")
	if err != nil {
		return nil, err
	}
	raw := rawBefore.with(rawAfter)

	r.progress("done")
	rep := r.report(m, warm, producerAlone, raw, pgs)
	tables, wal := pgAfter.since(pgBefore)
	r.postgresRows(rep, tables, wal, statsDeliveries)
	rep.Postgres.StateTables = stateTables
	if cfg.Keep {
		rep.TempDir = dir
	}
	return rep, nil
}

// stopGrace is how long a SIGTERM'd walhook may take: its shutdown_timeout
// for in-flight requests plus time to write their results.
func (r *run) stopGrace() time.Duration {
	d, err := time.ParseDuration(r.settings["shutdown_timeout"])
	if err != nil {
		d = 30 * time.Second
	}
	return d + 15*time.Second
}

// producerCeiling measures the producer into a scratch table shaped like
// the outbox, before walhook exists: the rate Postgres and this machine
// allow without anyone consuming.
func (r *run) producerCeiling(ctx context.Context) (float64, error) {
	if err := execSQL(ctx, r.dsn, `CREATE TABLE `+scratchTable+` (id bigserial PRIMARY KEY, event_type text NOT NULL,
		payload jsonb NOT NULL, tenant_id text, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("create scratch table: %w", err)
	}
	p, err := newProducer(ctx, producerOptions{
		DSN: r.dsn, Table: scratchTable, Conns: r.cfg.Conns, RowsPerTxn: r.cfg.RowsPerTxn,
		PayloadBytes: r.cfg.PayloadBytes, Clock: r.clk,
	})
	if err != nil {
		return 0, err
	}
	prod, err := p.run(ctx, 0, 0, r.cfg.CeilingDuration)
	p.close()
	if err != nil {
		return 0, err
	}
	if err := execSQL(ctx, r.dsn, `DROP TABLE `+scratchTable); err != nil {
		return 0, fmt.Errorf("drop scratch table: %w", err)
	}
	return prod.rate(), nil
}

// createEndpoints subscribes every receiver with `walhook endpoint create`.
func (r *run) createEndpoints(ctx context.Context, bin string) error {
	r.progress("creating %d endpoints", len(r.rcv))
	for i, rc := range r.rcv {
		_, secret, err := createEndpoint(ctx, bin, r.wh.env, rc.url, fmt.Sprintf("walhook-bench receiver %d", i))
		if err != nil {
			return err
		}
		if err := rc.setSecret(secret); err != nil {
			return fmt.Errorf("receiver %d: %w", i, err)
		}
	}
	return nil
}

// startStateServer starts the second Postgres of -state-server in dir.
func (r *run) startStateServer(ctx context.Context, dir string, settings map[string]string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("state server directory: %w", err)
	}
	r.progress("starting PostgreSQL for walhook's state in %s", dir)
	pg, stop, err := startPostgres(ctx, dir, settings)
	if err != nil {
		return fmt.Errorf("state server: %w", err)
	}
	r.cleanups = append(r.cleanups, func() {
		if err := stop(); err != nil {
			r.progress("stop the state server: %v", err)
		}
	})
	r.stateDSN = pg.DSN(benchDB)
	if r.statePID, err = postmasterPID(pg.DataDir()); err != nil {
		return fmt.Errorf("state server: %w", err)
	}
	return nil
}

// configureWalhook sets walhook up through its environment, as a deployment
// would.
func (r *run) configureWalhook(bin string) {
	cfg := r.cfg
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	s := map[string]string{
		"database.url":                    r.dsn,
		"delivery.allow_private_networks": "true", // receivers are on loopback
		"auth.tokens":                     "bench-" + hex.EncodeToString(token),
		"log.level":                       "warn",
		"shutdown_timeout":                "5s",
		"delivery.endpoint_inflight":      strconv.Itoa(cfg.EndpointInflight),
	}
	if r.stateDSN != "" {
		s["database.state_url"] = r.stateDSN
	}
	if cfg.DeliveryTimeout > 0 {
		s["delivery.timeout"] = cfg.DeliveryTimeout.String()
	}
	retry, attempts := cfg.RetrySchedule, cfg.MaxAttempts
	if cfg.FailureRatio > 0 || cfg.HangEndpoints > 0 {
		// walhook's default first retry is a minute away: too long for a run.
		if retry == "" {
			retry = "1s"
		}
		if attempts == 0 && cfg.FailureRatio > 0 {
			attempts = 10
		}
	}
	if retry != "" {
		s["delivery.retry_schedule"] = retry
	}
	if attempts > 0 {
		s["delivery.max_attempts"] = strconv.Itoa(attempts)
	}
	if cfg.WalhookProfile != "" {
		s["admin_pprof"] = "true"
	}
	maps.Copy(s, cfg.WalhookSettings)
	r.settings = s
	r.wh = &walhookProc{bin: bin, logPath: filepath.Join(r.dir, "walhook.log"), env: walhookEnv(s)}
}

// startWalhook starts `walhook serve` on free loopback ports.
func (r *run) startWalhook(ctx context.Context) error {
	s := r.settings
	for attempt := 1; ; attempt++ {
		listen, err := freeAddr()
		if err != nil {
			return err
		}
		admin, err := freeAddr()
		if err != nil {
			return err
		}
		s["listen"], s["admin_listen"] = listen, admin
		r.wh.env, r.wh.admin = walhookEnv(s), admin
		r.progress("starting walhook (log %s)", r.wh.logPath)
		err = r.wh.start(ctx, r.clk)
		if err == nil {
			return nil
		}
		// A port found free may be taken before walhook binds it.
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
	}
}

// delivered counts deliveries answered 2xx so far, once per event and endpoint.
func (r *run) delivered() int64 {
	var n int64
	for _, rc := range r.answering() {
		n += rc.okDistinct.Load()
	}
	return n
}

// perEndpoint says how many deliveries and requests each answering endpoint
// has had, for diagnosing a wait that did not end.
func (r *run) perEndpoint() string {
	var parts []string
	for i, rc := range r.answering() {
		parts = append(parts, fmt.Sprintf("endpoint %d: %d delivered, %d requests", i, rc.okDistinct.Load(), rc.requestCount()))
	}
	return strings.Join(parts, "; ")
}

// waitDeliveries waits until expected deliveries (run total) have arrived.
// It returns false at the drain deadline or after StallTimeout without
// progress, and an error if walhook exits or ctx ends.
func (r *run) waitDeliveries(ctx context.Context, expected int64, phase string) (bool, error) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	last, lastChange, lastLog := r.delivered(), time.Now(), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got := r.delivered()
		now := time.Now()
		switch {
		case got >= expected:
			return true, nil
		case !r.wh.running():
			return false, fmt.Errorf("%s: walhook exited (%v) with %d of %d deliveries received", phase, r.wh.waitErr, got, expected)
		case now.After(deadline):
			r.progress("%s: deadline (%s) passed with %d of %d deliveries", phase, r.cfg.DrainTimeout, got, expected)
			return false, nil
		}
		if got != last {
			last, lastChange = got, now
		} else if now.Sub(lastChange) > r.cfg.StallTimeout {
			r.progress("%s: no delivery for %s; giving up with %d of %d", phase, r.cfg.StallTimeout, got, expected)
			return false, nil
		}
		if now.Sub(lastLog) > 5*time.Second {
			r.progress("%s: %d of %d deliveries", phase, got, expected)
			lastLog = now
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
		}
	}
}

// usage is the resources used so far by walhook, Postgres, this process
// and the machine.
type usage struct {
	at                             int64
	walhookCPU                     float64
	pgCPU                          float64
	stateCPU                       float64 // the state server's, in pgCPU too
	selfCPU                        float64
	producerPG                     float64 // Postgres CPU of the producer's backends
	pgProcs                        map[int]pgProcess
	machBusy, machSteal, machTotal float64
	metrics                        metricSample
	peak, rss                      int64
}

func (r *run) usage(ctx context.Context, prod *producer, withWalhook bool) usage {
	u := usage{at: r.clk.now(), selfCPU: selfCPU(), producerPG: prod.serverCPU()}
	u.pgCPU, _ = treeCPU(r.pgPID)
	if r.statePID != 0 {
		u.stateCPU, _ = treeCPU(r.statePID)
		u.pgCPU += u.stateCPU
	}
	u.pgProcs = pgProcesses(r.pgPID, prod.pids)
	u.machBusy, u.machSteal, u.machTotal, _ = machineCPU()
	if withWalhook && r.wh.running() {
		if t, err := readProcTimes(r.wh.pid()); err == nil {
			u.walhookCPU = t.self + t.children
		}
		u.peak, u.rss, _ = memStatus(r.wh.pid())
		u.metrics, _ = scrapeMetrics(ctx, r.wh.admin)
	}
	return u
}

// measurement is the measured phase's raw data.
type measurement struct {
	prod *production
	// tail: the events committed once a catch-up's backlog was delivered;
	// walToDecode: the WAL the walsender had yet to read at that moment.
	tail        *production
	walToDecode int64
	windowStart int64
	before      usage
	after       usage
	peakScope   string
	complete    bool
	exitErr     error
}

func (r *run) measure(ctx context.Context, prod *producer, warm *production) (*measurement, error) {
	cfg := r.cfg
	m := &measurement{peakScope: "window"}
	limit := cfg.Events
	if cfg.Duration > 0 {
		limit = 0
	}
	what := fmt.Sprintf("%d events", limit)
	if limit == 0 {
		what = "for " + cfg.Duration.String()
	}
	var err error
	if cfg.Catchup {
		r.progress("catch-up: stopping walhook, producing %s", what)
		if err := r.wh.stop(r.stopGrace()); err != nil {
			return nil, fmt.Errorf("stop walhook for catch-up: %w", err)
		}
		if m.prod, err = prod.run(ctx, warm.next, limit, cfg.Duration); err != nil {
			return nil, fmt.Errorf("produce: %w", err)
		}
		m.before = r.usage(ctx, prod, false)
		r.progress("catch-up: starting walhook with %d events waiting", m.prod.events)
		if err := r.wh.start(ctx, r.clk); err != nil {
			return nil, fmt.Errorf("catch-up: %w", err)
		}
		// A fresh process: its CPU, peak RSS and counters start from zero.
		m.windowStart, m.before.metrics = r.wh.startAt, metricSample{}
		m.peakScope = "process"
	} else {
		m.before = r.usage(ctx, prod, true)
		if err := resetPeakRSS(r.wh.pid()); err != nil {
			m.peakScope = "process"
		}
		r.progress("measuring: producing %s", what)
		profiled := r.profileWalhook(ctx)
		if m.prod, err = prod.run(ctx, warm.next, limit, cfg.Duration); err != nil {
			return nil, fmt.Errorf("produce: %w", err)
		}
		m.windowStart = m.prod.start
		defer func() {
			if perr := <-profiled; perr != nil {
				r.progress("walhook profile: %v", perr)
			}
		}()
	}
	expected := (warm.events + m.prod.events) * int64(len(r.answering()))
	if m.complete, err = r.waitDeliveries(ctx, expected, "drain"); err != nil {
		return nil, err
	}
	m.after = r.usage(ctx, prod, true)
	if cfg.Catchup && m.complete {
		// What follows is a figure of its own: if it cannot be had, the
		// run's main figures still stand.
		if m.walToDecode, err = walToDecode(ctx, r.dsn); err != nil {
			r.progress("%v", err)
			m.walToDecode = -1
		}
		// A catch-up's profile covers the events after the backlog.
		profiled := r.profileWalhook(ctx)
		defer func() {
			if perr := <-profiled; perr != nil {
				r.progress("walhook profile: %v", perr)
			}
		}()
		if m.tail, err = r.afterBacklog(ctx, m.prod.next); err != nil {
			r.progress("%v", err)
			return m, nil
		}
		expected += m.tail.events * int64(len(r.answering()))
		if m.complete, err = r.waitDeliveries(ctx, expected, "after the backlog"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Once a backlog is delivered, new events must arrive within the latency
// target again: the catch-up run ends with this many single-row
// transactions at this rate, from one connection, measured on their own.
const (
	tailEvents = 2000
	tailRate   = 1000
)

// afterBacklog commits the catch-up run's last events, from seq first, at
// the latency scenario's rate.
func (r *run) afterBacklog(ctx context.Context, first int64) (*production, error) {
	r.progress("catch-up: backlog delivered; %d more events at %d/s", tailEvents, tailRate)
	prod, err := newProducer(ctx, producerOptions{
		DSN: r.dsn, Table: outboxTable, Conns: 1, RowsPerTxn: 1,
		Rate: tailRate, PayloadBytes: r.cfg.PayloadBytes, Clock: r.clk,
	})
	if err != nil {
		return nil, err
	}
	defer prod.close()
	tail, err := prod.run(ctx, first, tailEvents, 0)
	if err != nil {
		return nil, fmt.Errorf("produce after the backlog: %w", err)
	}
	return tail, nil
}

// tailReport measures the events committed after a catch-up's backlog,
// seqs first onwards, on their own.
func tailReport(tail *production, first int64, hits []map[int64]hit) *AfterBacklog {
	got := seenRange(first, tail, hits)
	return &AfterBacklog{Events: tail.events, Rate: tailRate, AchievedRate: tail.rate(),
		Latency: latency(got.lat), Missing: got.missing.Deliveries}
}

// rangeSeen is what the answering receivers saw of a range of events.
type rangeSeen struct {
	lat, latOK           []int64 // per delivery: COMMIT to first request, to the 2xx
	deliveries, requests int64
	lastOK               int64 // the last 2xx, on the run's clock
	missing              Missing
}

// seenRange collects, from each answering receiver's hits, the deliveries
// of the events prod committed from seq first on.
func seenRange(first int64, prod *production, hits []map[int64]hit) rangeSeen {
	var s rangeSeen
	commits := commitTimes(first, prod.next, prod)
	for i, byseq := range hits {
		em := EndpointMissing{Endpoint: i}
		for off, commit := range commits {
			if commit < 0 {
				continue
			}
			seq := first + int64(off)
			h, ok := byseq[seq]
			if ok {
				s.requests += int64(h.requests)
			}
			if !ok || h.okAt == 0 {
				em.Missing++
				if ok {
					em.FailedOnly++
				}
				if len(em.Sample) < 5 {
					em.Sample = append(em.Sample, seq)
				}
				continue
			}
			s.deliveries++
			// A request can be read before the producer's Exec has
			// returned; that is zero latency, not negative.
			s.lat = append(s.lat, max(0, h.firstAt-commit))
			s.latOK = append(s.latOK, max(0, h.okAt-commit))
			s.lastOK = max(s.lastOK, h.okAt)
		}
		if em.Missing > 0 {
			s.missing.Deliveries += em.Missing
			s.missing.PerEndpoint = append(s.missing.PerEndpoint, em)
		}
	}
	return s
}

// report turns the measurement into numbers.
func (r *run) report(m *measurement, warm *production, producerAlone float64, raw rawResult, pgs map[string]string) *Report {
	cfg := r.cfg
	active := len(r.answering())
	rep := &Report{
		Settings:           r.settingsEcho(pgs),
		Events:             m.prod.events,
		WarmupEvents:       warm.events,
		ExpectedDeliveries: m.prod.events * int64(active),
	}
	var hits []map[int64]hit
	for _, rc := range r.answering() {
		h, counts := rc.hits()
		hits = append(hits, h)
		rep.Receivers.add(counts)
	}
	got := seenRange(warm.next, m.prod, hits)
	lat, latOK := got.lat, got.latOK
	rep.Deliveries, rep.Requests = got.deliveries, got.requests
	end := max(m.windowStart, got.lastOK)
	missing := &got.missing
	for _, rc := range r.rcv[active:] {
		rep.HangRequests += rc.requestCount()
	}
	// The window ends with the main range's deliveries, whatever became of
	// the events after a backlog.
	mainComplete := m.complete && missing.Deliveries == 0
	if m.tail != nil {
		rep.AfterBacklog = tailReport(m.tail, m.prod.next, hits)
		rep.AfterBacklog.WALToDecodeBytes = m.walToDecode
		missing.Deliveries += rep.AfterBacklog.Missing
		missing.AfterBacklog = rep.AfterBacklog.Missing
	}
	rep.Complete = m.complete && missing.Deliveries == 0
	if missing.Deliveries > 0 {
		rep.Missing = missing
	}
	rep.Latency, rep.LatencyToOK = latency(lat), latency(latOK)

	if !mainComplete || rep.Deliveries == 0 {
		end = max(end, m.after.at) // incomplete: the window ran to the deadline
	}
	rep.WindowSeconds = float64(end-m.windowStart) / 1e9
	rep.DeliveriesPerSec = ratio(float64(rep.Deliveries), rep.WindowSeconds)
	rep.EventsPerSec = rep.DeliveriesPerSec / float64(active)
	rep.Producer = ProducerStats{Seconds: m.prod.seconds(), EventsPerSec: m.prod.rate(), TargetRate: cfg.Rate}

	b, a := m.before, m.after
	window := float64(a.at-b.at) / 1e9
	per1000 := func(cpu float64) float64 { return ratio(cpu, float64(rep.Deliveries)) * 1000 }
	wh := WalhookStats{
		CPUSeconds: a.walhookCPU - b.walhookCPU,
		PeakRSS:    a.peak,
		PeakScope:  m.peakScope,
		RSS:        a.rss,
		Log:        summarizeLog(r.wh.logPath, 10),
	}
	wh.CPUPer1000 = per1000(wh.CPUSeconds)
	wh.Cores = ratio(wh.CPUSeconds, window)
	if m.exitErr != nil {
		wh.ExitError = m.exitErr.Error()
	}
	if a.metrics != nil {
		wh.Metrics = a.metrics.delta(b.metrics)
		wh.AvgBatchRows = ratio(wh.Metrics["walhook_store_batch_rows_sum"], wh.Metrics["walhook_store_batch_rows_count"])
		wh.AvgFlushMs = 1000 * ratio(wh.Metrics["walhook_store_flush_duration_seconds_sum"], wh.Metrics["walhook_store_flush_duration_seconds_count"])
	}
	rep.Walhook = wh
	rep.Postgres.CPUSeconds = a.pgCPU - b.pgCPU
	rep.Postgres.CPUPer1000 = per1000(rep.Postgres.CPUSeconds)
	rep.Postgres.ProducerCPUSeconds = a.producerPG - b.producerPG
	rep.Postgres.WalhookCPUPer1000 = per1000(rep.Postgres.CPUSeconds - rep.Postgres.ProducerCPUSeconds)
	rep.Postgres.CPUByKind = pgCPUByKind(b.pgProcs, a.pgProcs)
	if r.statePID != 0 {
		rep.Postgres.CPUByKind[pgStateServer] = a.stateCPU - b.stateCPU
	}
	rep.Machine = MachineStats{
		CPUs:            runtime.NumCPU(),
		BusyPercent:     100 * ratio(a.machBusy-b.machBusy, a.machTotal-b.machTotal),
		StealPercent:    100 * ratio(a.machSteal-b.machSteal, a.machTotal-b.machTotal),
		BenchCPUSeconds: a.selfCPU - b.selfCPU,
	}
	// Machine time not spent by the three of us: other processes (or the
	// kernel) competing for the cores, i.e. noise in this run.
	rep.Machine.OtherCPUSeconds = max(0, (a.machBusy-b.machBusy)-wh.CPUSeconds-rep.Postgres.CPUSeconds-rep.Machine.BenchCPUSeconds)
	rep.Ceilings = Ceilings{RawHTTP: raw, ProducerAlonePerSec: producerAlone}
	rep.Ratios = Ratios{
		DeliveriesVsRawHTTP: ratio(rep.DeliveriesPerSec, raw.PerSec),
		EventsVsProducer:    ratio(rep.EventsPerSec, producerAlone),
		ProducerVsAlone:     ratio(rep.Producer.EventsPerSec, producerAlone),
	}
	return rep
}

// postgresRows fills the rows and WAL written per delivery.
func (r *run) postgresRows(rep *Report, tables map[string]tupleCounts, wal, deliveries int64) {
	pg := &rep.Postgres
	pg.StatsDeliveries, pg.Tables, pg.BySchema = deliveries, tables, map[string]tupleCounts{}
	var total tupleCounts
	for name, t := range tables {
		schema, _, _ := strings.Cut(name, ".")
		s := pg.BySchema[schema]
		s.Inserted += t.Inserted
		s.Updated += t.Updated
		s.Deleted += t.Deleted
		pg.BySchema[schema] = s
		total.Inserted += t.Inserted
		total.Updated += t.Updated
	}
	pg.InsertedPerDelivery = ratio(float64(total.Inserted), float64(deliveries))
	pg.UpdatedPerDelivery = ratio(float64(total.Updated), float64(deliveries))
	pg.WALBytesPerDelivery = ratio(float64(wal), float64(deliveries))
}

func (r *run) settingsEcho(pgs map[string]string) Settings {
	cfg := r.cfg
	s := Settings{
		Mode: "events", Events: cfg.Events, Rate: cfg.Rate, Conns: cfg.Conns, RowsPerTxn: cfg.RowsPerTxn,
		PayloadBytes: cfg.PayloadBytes, Endpoints: cfg.Endpoints, HangEndpoints: cfg.HangEndpoints,
		ReceiverLatency: cfg.ReceiverLatency.String(), FailureRatio: cfg.FailureRatio, Warmup: cfg.Warmup.String(),
		EndpointInflight: cfg.EndpointInflight, ReceiverServer: cfg.Server, StateServer: cfg.StateServer, Walhook: map[string]string{}, Postgres: pgs,
	}
	if cfg.Duration > 0 {
		s.Mode, s.Events, s.Duration = "duration", 0, cfg.Duration.String()
	}
	if cfg.Catchup {
		s.Mode = "catchup"
	}
	for k, v := range r.settings {
		switch k {
		case "database.url", "database.state_url", "auth.tokens", "listen", "admin_listen":
		default:
			s.Walhook[k] = v
		}
	}
	return s
}

// sampleBody is a webhook body like walhook's for a payload of the given
// size, for the raw HTTP ceiling.
func sampleBody(payloadBytes int) []byte {
	pad := max(0, payloadBytes-len(`{"seq": 1000000, "padding": ""}`))
	return fmt.Appendf(nil, `{"type":%q,"timestamp":%q,"data":{"seq": 1000000, "padding": "%s"}}`,
		eventType, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), strings.Repeat("x", pad))
}

// profileWalhook takes a CPU profile of walhook, and beside it (FILE.allocs)
// a profile of the allocations made in the same seconds, from its pprof
// endpoint in the background; the channel gets the outcome.
func (r *run) profileWalhook(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	if r.cfg.WalhookProfile == "" {
		done <- nil
		return done
	}
	secs := max(r.cfg.ProfileSeconds, 1)
	fetch := func(kind, path string) error {
		url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", r.wh.admin, kind, secs)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("fetch walhook %s profile: %w", kind, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("fetch walhook %s profile: %s", kind, resp.Status)
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	go func() {
		allocs := make(chan error, 1)
		go func() { allocs <- fetch("allocs", r.cfg.WalhookProfile+".allocs") }()
		err := errors.Join(fetch("profile", r.cfg.WalhookProfile), <-allocs)
		if err == nil {
			r.progress("walhook CPU and allocation profiles (%ds) written to %s and %s.allocs", secs, r.cfg.WalhookProfile, r.cfg.WalhookProfile)
		}
		done <- err
	}()
	return done
}
