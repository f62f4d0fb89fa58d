package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	outboxTable  = "public.webhook_outbox"
	scratchTable = "public.bench_producer_ceiling"
	eventType    = "bench.event"
	eventPattern = "bench.*"
)

type producerOptions struct {
	DSN          string
	Table        string
	Conns        int
	RowsPerTxn   int
	Rate         float64 // events/s over all connections; 0 = as fast as possible
	PayloadBytes int
	Clock        clock
}

// txn is one committed transaction: seqs first … first+n-1, and when its
// COMMIT returned on the run's clock.
type txn struct {
	first    int64
	n        int32
	commitAt int64
}

// production is what one producer run committed.
type production struct {
	start, end int64 // run's clock: started, last COMMIT returned
	events     int64
	next       int64 // first seq after this run
	txns       []txn // sorted by first
}

func (p *production) seconds() float64 { return float64(p.end-p.start) / 1e9 }

// rate is the events committed per second.
func (p *production) rate() float64 {
	if s := p.seconds(); s > 0 {
		return float64(p.events) / s
	}
	return 0
}

// producer inserts outbox rows like an application would: each transaction
// one statement of RowsPerTxn rows, whose payload carries the row's sequence
// number. The statement runs in its own implicit transaction, so Exec
// returning is the COMMIT returning (synchronous_commit=on: it is durable).
type producer struct {
	opts  producerOptions
	conns []*pgx.Conn
	pids  []int // server processes of conns, to tell their CPU from walhook's share
	sql   string
	pad   int
}

func newProducer(ctx context.Context, opts producerOptions) (*producer, error) {
	p := &producer{
		opts: opts,
		// The payload is built by the server: one round trip per transaction
		// whatever the number of rows, so the producer is not the bottleneck.
		sql: `INSERT INTO ` + opts.Table + ` (event_type, payload)
			SELECT $1::text, jsonb_build_object('seq', s, 'padding', repeat('x', $2::int))
			FROM generate_series($3::bigint, $4::bigint) AS s`,
		pad: max(0, opts.PayloadBytes-len(`{"seq": 1000000, "padding": ""}`)),
	}
	for range opts.Conns {
		c, err := pgx.Connect(ctx, opts.DSN)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("producer connect: %w", err)
		}
		p.conns = append(p.conns, c)
		p.pids = append(p.pids, int(c.PgConn().PID()))
	}
	return p, nil
}

// serverCPU is the CPU seconds Postgres spent serving the producer so far.
func (p *producer) serverCPU() float64 {
	var t float64
	for _, pid := range p.pids {
		if pt, err := readProcTimes(pid); err == nil {
			t += pt.self
		}
	}
	return t
}

func (p *producer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range p.conns {
		// A backend reports its row counts when idle, at most once a
		// second, or when it exits, after Close has returned: either can
		// come after the final statistics are read. Forced, the report is
		// made before this statement's answer (PostgreSQL 15 and later;
		// older servers refuse the function, and keep the race).
		_, _ = c.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		_ = c.Close(ctx)
	}
	p.conns = nil
}

// run commits events starting at seq first: limit events in all (when > 0)
// or for d (when > 0), at opts.Rate. It is open-loop: transaction k is due at
// start + k·RowsPerTxn/Rate whatever the previous ones took, as independent
// application requests would be.
func (p *producer) run(ctx context.Context, first, limit int64, d time.Duration) (*production, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows := int64(p.opts.RowsPerTxn)
	start := p.opts.Clock.now()
	stopAt := start + int64(d)
	var next atomic.Int64
	var (
		mu       sync.Mutex
		txns     []txn
		firstErr error
		wg       sync.WaitGroup
	)
	for _, conn := range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local, err := p.worker(ctx, conn, &next, first, limit, rows, start, stopAt, d > 0)
			mu.Lock()
			defer mu.Unlock()
			txns = append(txns, local...)
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(txns, func(i, j int) bool { return txns[i].first < txns[j].first })
	prod := &production{start: start, end: start, next: first, txns: txns}
	for _, t := range txns {
		prod.events += int64(t.n)
		prod.end = max(prod.end, t.commitAt)
		prod.next = max(prod.next, t.first+int64(t.n))
	}
	return prod, nil
}

func (p *producer) worker(ctx context.Context, conn *pgx.Conn, next *atomic.Int64, first, limit, rows, start, stopAt int64, timed bool) ([]txn, error) {
	var out []txn
	for {
		off := next.Add(1) - 1
		off *= rows
		if limit > 0 && off >= limit {
			return out, nil
		}
		n := rows
		if limit > 0 {
			n = min(rows, limit-off)
		}
		if p.opts.Rate > 0 {
			due := start + int64(float64(off)/p.opts.Rate*1e9)
			if timed && due >= stopAt {
				return out, nil
			}
			if err := sleepUntil(ctx, p.opts.Clock, due); err != nil {
				return out, err
			}
		} else if timed && p.opts.Clock.now() >= stopAt {
			return out, nil
		}
		if _, err := conn.Exec(ctx, p.sql, eventType, p.pad, first+off, first+off+n-1); err != nil {
			return out, fmt.Errorf("insert %d rows into %s: %w", n, p.opts.Table, err)
		}
		out = append(out, txn{first: first + off, n: int32(n), commitAt: p.opts.Clock.now()})
	}
}

func sleepUntil(ctx context.Context, c clock, at int64) error {
	d := time.Duration(at - c.now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitTimes indexes the commit time of every seq of the productions:
// commitTimes[seq-first]; -1 where no row was committed.
func commitTimes(first, next int64, prods ...*production) []int64 {
	out := make([]int64, max(0, next-first))
	for i := range out {
		out[i] = -1
	}
	for _, p := range prods {
		for _, t := range p.txns {
			for s := t.first; s < t.first+int64(t.n); s++ {
				if s >= first && s < next {
					out[s-first] = t.commitAt
				}
			}
		}
	}
	return out
}
