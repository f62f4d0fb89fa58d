package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walhook/walhook/internal/cli"
	"github.com/walhook/walhook/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEndpointCreateShowsSecretOnceAndListNever(t *testing.T) {
	db := pgtest.New(t)
	cfgPath := filepath.Join(t.TempDir(), "walhook.yaml")
	if err := os.WriteFile(cfgPath, []byte("database:\n  url: "+db.DSN+"\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "migrate", "--config", cfgPath); code != 0 {
		t.Fatalf("migrate: %d %s", code, errs)
	}
	code, out, errs := run(t, "endpoint", "create", "--config", cfgPath, "--url", "https://example.com/hook", "--events", "order.*, payment.failed", "--tenant", "acme")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	var ep struct {
		ID       string   `json:"id"`
		Secret   string   `json:"secret"`
		TenantID string   `json:"tenant_id"`
		Events   []string `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &ep); err != nil {
		t.Fatalf("create output %q: %v", out, err)
	}
	if !strings.HasPrefix(ep.Secret, "whsec_") || ep.TenantID != "acme" || len(ep.Events) != 2 {
		t.Fatalf("create output = %s", out)
	}
	code, out, errs = run(t, "endpoint", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, ep.ID) || strings.Contains(out, ep.Secret) || strings.Contains(out, "secret") {
		t.Fatalf("list: %d %q %s", code, out, errs)
	}

	code, _, errs = run(t, "endpoint", "create", "--config", cfgPath, "--url", "ftp://example.com", "--events", "*")
	if code == 0 || !strings.Contains(errs, "--url") {
		t.Fatalf("bad url: code %d, %q", code, errs)
	}
	code, _, errs = run(t, "endpoint", "create", "--config", cfgPath, "--url", "https://example.com")
	if code == 0 || !strings.Contains(errs, "--events") {
		t.Fatalf("no events: code %d, %q", code, errs)
	}
}

func TestConfigCheckEveryShippedFile(t *testing.T) {
	files, _ := filepath.Glob("../../config/*.yaml")
	if len(files) == 0 {
		t.Fatal("no config files found")
	}
	for _, f := range files {
		if code, out, errs := run(t, "config", "check", "--config", f); code != 0 || !strings.Contains(out, "ok") {
			t.Errorf("%s: %d %s %s", f, code, out, errs)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("delivery:\n  timout: 1s\n"), 0o600)
	if code, _, errs := run(t, "config", "check", "--config", bad); code == 0 || !strings.Contains(errs, "delivery.timout") {
		t.Errorf("bad config accepted: %d %s", code, errs)
	}
}

func TestEndpointAndDeliveryActions(t *testing.T) {
	db := pgtest.New(t)
	cfgPath := filepath.Join(t.TempDir(), "walhook.yaml")
	if err := os.WriteFile(cfgPath, []byte("database:\n  url: "+db.DSN+"\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "endpoint", "create", "--config", cfgPath, "--url", "https://example.com/hook", "--events", "*",
		"--retry-schedule", "30s,10m", "--max-attempts", "3", "--no-retry-4xx")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	var ep struct {
		ID                string   `json:"id"`
		State             string   `json:"state"`
		RetrySchedule     []string `json:"retry_schedule"`
		MaxAttempts       int      `json:"max_attempts"`
		RetryClientErrors bool     `json:"retry_client_errors"`
		Requeued          *int     `json:"requeued"`
	}
	if err := json.Unmarshal([]byte(out), &ep); err != nil || ep.State != "active" || len(ep.RetrySchedule) != 2 || ep.MaxAttempts != 3 || ep.RetryClientErrors {
		t.Fatalf("create with a retry policy printed %s (%v)", out, err)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout (code 0) or stderr
	}{
		{"pause", []string{"endpoint", "pause", ep.ID}, 0, `"state":"paused"`},
		{"resume, flags after the id", []string{"endpoint", "resume", ep.ID}, 0, `"state":"active"`},
		{"enable is resume", []string{"endpoint", "enable", ep.ID}, 0, `"state":"active"`},
		{"recover since a duration", []string{"endpoint", "recover", ep.ID, "--since", "2h"}, 0, `"requeued":0`},
		{"recover since a time", []string{"endpoint", "recover", "--since", "2026-01-01T00:00:00Z", ep.ID}, 0, `"requeued":0`},
		{"recover needs a valid since", []string{"endpoint", "recover", ep.ID, "--since", "yesterday"}, 1, "--since"},
		{"recover of an unknown endpoint", []string{"endpoint", "recover", "ep_nope", "--since", "1h"}, 1, "not found"},
		{"pause needs an id", []string{"endpoint", "pause"}, 1, "an id is required"},
		{"retry of an unknown delivery", []string{"delivery", "retry", "msg_nope"}, 1, "not found"},
		{"delivery needs retry", []string{"delivery", "resend", "msg_nope"}, 1, "say retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, append(tt.args, "--config", cfgPath)...)
			got := out
			if tt.wantCode != 0 {
				got = errs
			}
			if code != tt.wantCode || !strings.Contains(got, tt.want) {
				t.Fatalf("walhook %s = %d, stdout %q, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, out, errs, tt.wantCode, tt.want)
			}
		})
	}
}
