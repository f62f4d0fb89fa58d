// Command walhook-bench measures walhook end to end on this machine: a
// throwaway PostgreSQL, walhook built from this repository and run as its own
// process, in-process webhook receivers, a producer of outbox rows, and the
// machine's own ceilings measured in the same run. See internal/bench.
//
//	go run ./cmd/walhook-bench -events 20000 -rows-per-txn 100 -conns 4
//	go run ./cmd/walhook-bench -rate 1000 -duration 10s -rows-per-txn 1
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/walhook/walhook/internal/bench"
)

// settingsFlag collects repeated key=value flags.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return "" }

func (s settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s[k] = val
	return nil
}

func main() { os.Exit(run()) }

// run is main with an exit code, so that deferred work (the CPU profile)
// happens before the process exits.
func run() int {
	cfg := bench.DefaultConfig()
	cfg.WalhookSettings, cfg.PGSettings = map[string]string{}, map[string]string{}
	fs := flag.NewFlagSet("walhook-bench", flag.ExitOnError)
	fs.Int64Var(&cfg.Events, "events", cfg.Events, "events to commit in the measured phase (ignored with -duration)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "produce for this long instead of -events")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "target events/s over all connections (0 = as fast as possible)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "producer connections")
	fs.IntVar(&cfg.RowsPerTxn, "rows-per-txn", cfg.RowsPerTxn, "outbox rows per producer transaction")
	fs.IntVar(&cfg.PayloadBytes, "payload-bytes", cfg.PayloadBytes, "size of each event's JSON payload")
	fs.IntVar(&cfg.Endpoints, "endpoints", cfg.Endpoints, "endpoints subscribed to every event (fan-out)")
	fs.IntVar(&cfg.HangEndpoints, "hang-endpoints", 0, "of -endpoints, how many never answer (held until walhook's timeout)")
	fs.DurationVar(&cfg.ReceiverLatency, "receiver-latency", 0, "time each receiver takes to answer")
	fs.Float64Var(&cfg.FailureRatio, "failure-ratio", 0, "fraction of requests answered 500")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "produce this long first, unmeasured (0 = none)")
	fs.BoolVar(&cfg.EndpointsLive, "endpoints-live", false, "create the endpoints while walhook runs (default: before it starts)")
	fs.BoolVar(&cfg.Catchup, "catchup", false, "stop walhook while producing, then measure how fast it delivers the backlog")
	fs.IntVar(&cfg.EndpointInflight, "endpoint-inflight", cfg.EndpointInflight, "walhook's delivery.endpoint_inflight; the raw HTTP ceiling uses it × endpoints connections")
	fs.IntVar(&cfg.RawConcurrency, "raw-concurrency", 0, "concurrency of the raw HTTP ceiling (0 = endpoint-inflight × answering endpoints)")
	fs.DurationVar(&cfg.CeilingDuration, "ceiling-duration", cfg.CeilingDuration, "how long each ceiling (raw HTTP, producer alone) is measured")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "longest wait for deliveries after production")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", cfg.StallTimeout, "give up when no delivery arrives for this long")
	fs.DurationVar(&cfg.DeliveryTimeout, "delivery-timeout", 0, "walhook's delivery.timeout (0 = its default)")
	fs.StringVar(&cfg.RetrySchedule, "retry-schedule", "", "walhook's delivery.retry_schedule (default with failures or hanging endpoints: 1s)")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", 0, "walhook's delivery.max_attempts (default with failures: 10)")
	fs.Var(settingsFlag(cfg.WalhookSettings), "set", "walhook configuration key=value, repeatable (e.g. -set delivery.workers=512)")
	fs.Var(settingsFlag(cfg.PGSettings), "pg-set", "PostgreSQL setting name=value, repeatable (e.g. -pg-set fsync=off)")
	fs.BoolVar(&cfg.Verify, "verify", cfg.Verify, "verify every request's signature")
	fs.StringVar(&cfg.Server, "receiver-server", cfg.Server, `the receivers' HTTP server: "lean" (a minimal HTTP/1.1 server, cheap on a shared machine) or "net/http"`)
	fs.BoolVar(&cfg.StateServer, "state-server", false, "start a second PostgreSQL for walhook's records (database.state_url), keeping them out of the outbox server's WAL")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory (Postgres data, logs, walhook binary)")
	fs.StringVar(&cfg.Repo, "repo", "", "walhook repository to build (default: found from the working directory)")
	fs.StringVar(&cfg.WalhookBin, "walhook-bin", "", "run this walhook binary instead of building one")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the harness itself (producer, receivers) to this file")
	fs.StringVar(&cfg.WalhookProfile, "walhook-profile", "", "write a CPU profile of walhook, taken during the measured phase (catch-up: the events after the backlog), to this file (and its allocations to FILE.allocs)")
	fs.IntVar(&cfg.ProfileSeconds, "profile-seconds", 5, "length of the walhook profile")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "walhook-bench: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "walhook-bench: cpu profile:", err)
			return 2
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	// Ctrl-C and SIGTERM cancel the run, which stops walhook and Postgres
	// and removes the temporary directory before exiting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rep, err := bench.Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "walhook-bench:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.WriteText(os.Stdout)
	}
	if !rep.Complete {
		return 1
	}
	return 0
}
