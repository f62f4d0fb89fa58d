package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/walhook/walhook/internal/config"
)

const reference = "../../config/walhook.yaml"

func TestReferenceFileListsEveryKeyWithItsDefault(t *testing.T) {
	k := koanf.New(".")
	if err := k.Load(file.Provider(reference), yaml.Parser()); err != nil {
		t.Fatal(err)
	}
	got := k.Keys()
	sort.Strings(got)
	if want := config.Keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("config/walhook.yaml keys differ from the code's keys\n yaml: %v\n code: %v", got, want)
	}
	cfg, err := config.Load(reference)
	if err != nil {
		t.Fatal(err)
	}
	if want := config.Defaults(); !reflect.DeepEqual(*cfg, want) {
		t.Fatalf("config/walhook.yaml values differ from the defaults\n yaml: %+v\n code: %+v", *cfg, want)
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "walhook.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	path := writeFile(t, "delivery:\n  timeout: 3s\n  retry_schedule: [1s, 2s]\nlisten: 127.0.0.1:1234\n")
	t.Setenv("WALHOOK_LISTEN", "127.0.0.1:5678")
	t.Setenv("WALHOOK_AUTH_TOKENS", "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb")
	t.Setenv("WALHOOK_DELIVERY_ALLOW_PRIVATE_NETWORKS", "true")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Delivery.Timeout != 3*time.Second {
		t.Errorf("file did not override default: timeout %s", cfg.Delivery.Timeout)
	}
	if !reflect.DeepEqual(cfg.Delivery.RetrySchedule, []time.Duration{time.Second, 2 * time.Second}) {
		t.Errorf("retry_schedule = %v", cfg.Delivery.RetrySchedule)
	}
	if cfg.Listen != "127.0.0.1:5678" {
		t.Errorf("environment did not override file: listen %s", cfg.Listen)
	}
	if !reflect.DeepEqual(cfg.Auth.Tokens, []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"}) {
		t.Errorf("tokens = %q", cfg.Auth.Tokens)
	}
	if !cfg.Delivery.AllowPrivateNetworks {
		t.Error("allow_private_networks from environment ignored")
	}
	if cfg.Outbox.Table != "public.webhook_outbox" {
		t.Errorf("default lost: outbox.table %q", cfg.Outbox.Table)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		key  string
	}{
		{name: "unknown key", yaml: "delivery:\n  timout: 1s\n", key: "delivery.timout"},
		{name: "unknown section", yaml: "deliveries:\n  timeout: 1s\n", key: "deliveries.timeout"},
		{name: "bad duration", yaml: "delivery:\n  timeout: soon\n", key: "delivery.timeout"},
		{name: "bad bool", yaml: "delivery:\n  allow_private_networks: maybe\n", key: "delivery.allow_private_networks"},
		{name: "bad int", yaml: "delivery:\n  workers: many\n", key: "delivery.workers"},
		{name: "zero attempts", yaml: "delivery:\n  max_attempts: 0\n", key: "delivery.max_attempts"},
		{name: "negative retry delay", yaml: "delivery:\n  retry_schedule: [1m, -1s]\n", key: "delivery.retry_schedule[1]"},
		{name: "bad table", yaml: "outbox:\n  table: \"x; drop table y\"\n", key: "outbox.table"},
		{name: "bad column", yaml: "outbox:\n  columns:\n    payload: \"a b\"\n", key: "outbox.columns.payload"},
		{name: "bad slot", yaml: "replication:\n  slot: Bad-Slot\n", key: "replication.slot"},
		{name: "state database not a URL", env: map[string]string{"WALHOOK_DATABASE_STATE_URL": "host=x dbname=y"}, key: "database.state_url"},
		{name: "tiny spill", env: map[string]string{"WALHOOK_REPLICATION_SPILL_BYTES": "1000"}, key: "replication.spill_bytes"},
		{name: "tiny read-ahead", env: map[string]string{"WALHOOK_REPLICATION_READ_AHEAD_BYTES": "1000"}, key: "replication.read_ahead_bytes"},
		{name: "bad listen", yaml: "listen: nowhere\n", key: "listen"},
		{name: "short token", yaml: "auth:\n  tokens: [short]\n", key: "auth.tokens[0]"},
		{name: "bad log level", yaml: "log:\n  level: loud\n", key: "log.level"},
		{name: "bad database url", yaml: "database:\n  url: mysql://x\n", key: "database.url"},
		{name: "unknown env", env: map[string]string{"WALHOOK_DELIVERY_TIMOUT": "1s"}, key: "WALHOOK_DELIVERY_TIMOUT"},
		{name: "bad env value", env: map[string]string{"WALHOOK_DELIVERY_TIMEOUT": "x"}, key: "delivery.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, tt.yaml)
			}
			_, err := config.Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %q does not name %s", err, tt.key)
			}
		})
	}
}

func TestFieldErrorsAreTyped(t *testing.T) {
	_, err := config.Load(writeFile(t, "delivery:\n  workers: 0\n"))
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Key != "delivery.workers" {
		t.Fatalf("want *FieldError for delivery.workers, got %v", err)
	}
}

func TestEnvName(t *testing.T) {
	if got := config.EnvName("delivery.allow_private_networks"); got != "WALHOOK_DELIVERY_ALLOW_PRIVATE_NETWORKS" {
		t.Fatal(got)
	}
}

func TestTestVariablesAreNotConfiguration(t *testing.T) {
	t.Setenv("WALHOOK_TEST_REQUIRE_BROWSER", "1")
	if _, err := config.Load(""); err != nil {
		t.Fatalf("a WALHOOK_TEST_ variable broke loading: %v", err)
	}
	t.Setenv("WALHOOK_TSET_TYPO", "1")
	if _, err := config.Load(""); err == nil || !strings.Contains(err.Error(), "WALHOOK_TSET_TYPO") {
		t.Fatalf("an unknown WALHOOK_ variable was accepted: %v", err)
	}
}
