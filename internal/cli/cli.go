// Package cli implements walhook's command line: serve, migrate, endpoint
// and delivery management, and config check. It parses flags, loads the configuration and
// calls into app; it holds no logic of its own.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

const usage = `walhook: signed webhooks from a Postgres outbox, streamed by logical replication.

Usage:
  walhook serve    [--config FILE]       run (no database.url: embedded PostgreSQL in database.data_dir)
  walhook migrate  [--config FILE]       create/upgrade walhook's schema, the outbox table, publication and slot
  walhook endpoint create [--config FILE] --url URL --events 'order.*,payment.failed' [--tenant T] [--description D]
                          [--retry-schedule 1m,5m,30m] [--max-attempts N] [--no-retry-4xx]
  walhook endpoint list   [--config FILE] [--tenant T]
  walhook endpoint pause|resume ID       stop or restart deliveries (resume also re-enables a disabled endpoint)
  walhook endpoint enable ID             re-enable a disabled endpoint (same as resume)
  walhook endpoint recover ID --since 2h re-queue the endpoint's failed deliveries created since then
  walhook delivery retry ID              attempt one delivery again now (same webhook-id)
  walhook config check --config FILE     validate a configuration file
  walhook version

Configuration: defaults < --config FILE (or $WALHOOK_CONFIG) < WALHOOK_* environment; see config/walhook.yaml.
`

// Main runs one command and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stderr)
	case "endpoint":
		err = endpoint(ctx, args[1:], stdout, stderr)
	case "delivery":
		err = deliveryCmd(ctx, args[1:], stdout, stderr)
	case "config":
		err = configCmd(args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, "walhook", app.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "walhook: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "walhook:", err)
		return 1
	}
	return 0
}

func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv(config.ConfigEnv), "YAML configuration file")
	return fs, path
}

func load(path string) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	return cfg, Logger(cfg, os.Stderr), nil
}

// Logger builds the process logger from log.level and log.format.
func Logger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs, path := flags("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, log, err := load(*path)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, log)
}

// withStore runs fn against a prepared database (embedded or configured).
func withStore(ctx context.Context, path string, fn func(*config.Config, *store.Store) error) error {
	cfg, log, err := load(path)
	if err != nil {
		return err
	}
	dsn, stop, err := app.Database(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	st, err := app.Prepare(ctx, cfg, dsn, log)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(cfg, st)
}

func migrate(ctx context.Context, args []string, stderr io.Writer) error {
	fs, path := flags("migrate", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withStore(ctx, *path, func(cfg *config.Config, _ *store.Store) error {
		fmt.Fprintf(stderr, "walhook: schema %q migrated; outbox %s, publication %q and slot %q ready\n",
			cfg.Database.Schema, cfg.Outbox.Table, cfg.Replication.Publication, cfg.Replication.Slot)
		return nil
	})
}

func endpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("endpoint: say create or list")
	}
	fs, path := flags("endpoint "+args[0], stderr)
	tenant := fs.String("tenant", "", "tenant id (empty: events without a tenant)")
	enc := json.NewEncoder(stdout)
	switch args[0] {
	case "create":
		url := fs.String("url", "", "endpoint URL (http or https)")
		events := fs.String("events", "", "comma-separated event types or patterns, e.g. 'order.*,payment.failed'")
		desc := fs.String("description", "", "description")
		schedule := fs.String("retry-schedule", "", "comma-separated retry delays for this endpoint, e.g. '30s,5m,1h' (default: delivery.retry_schedule)")
		maxAttempts := fs.Int("max-attempts", 0, "attempts before a delivery fails (default: delivery.max_attempts)")
		no4xx := fs.Bool("no-retry-4xx", false, "fail at once on 4xx answers other than 408, 409, 425 and 429")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		retry4xx := !*no4xx
		in := manage.EndpointInput{URL: *url, Events: splitList(*events), TenantID: *tenant, Description: *desc,
			RetrySchedule: splitList(*schedule), MaxAttempts: *maxAttempts, RetryClientErrors: &retry4xx}
		return withStore(ctx, *path, func(cfg *config.Config, st *store.Store) error {
			ep, err := app.Service(cfg, st).CreateEndpoint(ctx, in)
			if fe, ok := manage.IsFieldError(err); ok {
				return fmt.Errorf("--%s: %s", flagOf(fe.Field), fe.Message)
			}
			if err != nil {
				return err
			}
			return enc.Encode(ep)
		})
	case "list":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return withStore(ctx, *path, func(cfg *config.Config, st *store.Store) error {
			p := store.EndpointPage{}
			if *tenant != "" {
				p.Tenant = tenant
			}
			eps, err := st.PageEndpoints(ctx, p)
			if err != nil {
				return err
			}
			for _, e := range eps {
				if err := enc.Encode(manage.EndpointView(e)); err != nil {
					return err
				}
			}
			return nil
		})
	case "pause", "resume", "enable":
		id, err := parseWithID(fs, args)
		if err != nil {
			return err
		}
		return withStore(ctx, *path, func(cfg *config.Config, st *store.Store) error {
			ep, err := app.Service(cfg, st).SetEndpointActive(ctx, id, nil, args[0] != "pause")
			if err != nil {
				return fmt.Errorf("endpoint %s: %w", id, err)
			}
			return enc.Encode(ep)
		})
	case "recover":
		since := fs.String("since", "", "re-queue failed deliveries created since this long ago (2h) or this RFC 3339 time")
		id, err := parseWithID(fs, args)
		if err != nil {
			return err
		}
		from, err := manage.ParseSince(*since, time.Now())
		if err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		return withStore(ctx, *path, func(cfg *config.Config, st *store.Store) error {
			n, err := app.Service(cfg, st).RecoverEndpoint(ctx, id, nil, from)
			if err != nil {
				return fmt.Errorf("endpoint %s: %w", id, err)
			}
			return enc.Encode(map[string]any{"endpoint_id": id, "since": from.UTC(), "requeued": n})
		})
	default:
		return fmt.Errorf("endpoint: unknown subcommand %q (create, list, pause, resume, enable or recover)", args[0])
	}
}

func deliveryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "retry" {
		return errors.New("delivery: say retry ID")
	}
	fs, path := flags("delivery retry", stderr)
	id, err := parseWithID(fs, args)
	if err != nil {
		return err
	}
	return withStore(ctx, *path, func(cfg *config.Config, st *store.Store) error {
		d, err := app.Service(cfg, st).RetryDelivery(ctx, id, nil)
		if err != nil {
			return fmt.Errorf("delivery %s: %w", id, err)
		}
		return json.NewEncoder(stdout).Encode(d)
	})
}

// parseWithID parses "SUBCOMMAND ID" with flags before or after the id.
func parseWithID(fs *flag.FlagSet, args []string) (string, error) {
	var ids []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		ids = append(ids, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("%s: an id is required", fs.Name())
	case 1:
		return ids[0], nil
	default:
		return "", fmt.Errorf("%s: one id expected, got %q", fs.Name(), ids)
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// flagOf names the command-line flag of an input field.
func flagOf(field string) string {
	switch {
	case strings.HasPrefix(field, "events"):
		return "events"
	case field == "tenant_id":
		return "tenant"
	default:
		return field
	}
}

func configCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New("config: say check --config FILE")
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("config check: --config FILE is required")
	}
	if _, err := config.Load(*path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}
