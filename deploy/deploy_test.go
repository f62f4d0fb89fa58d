package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/walhook/walhook/internal/app"
	"github.com/walhook/walhook/internal/cli"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/pgtest"
	"github.com/walhook/walhook/internal/signature"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The test runs in deploy/; the repository root is one up.
const root = ".."

// deployFiles lists the files under deploy/ whose name ends in one of exts.
func deployFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(path)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// get walks a decoded YAML/JSON value along keys (string: map key, int:
// list index); nil when a step is missing.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func TestEveryDeployFileParses(t *testing.T) {
	yamls := deployFiles(t, ".yml", ".yaml")
	jsons := deployFiles(t, ".json")
	if len(yamls) < 10 || len(jsons) < 1 {
		t.Fatalf("found %d YAML and %d JSON files under deploy/: the walk is broken", len(yamls), len(jsons))
	}
	for _, f := range yamls {
		if len(yamlDocs(t, f)) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
	for _, f := range jsons {
		readJSON(t, f)
	}
}

func TestDashboardIsImportable(t *testing.T) {
	d := readJSON(t, "grafana/walhook-dashboard.json")
	if v, _ := d["schemaVersion"].(float64); v < 39 {
		t.Errorf("schemaVersion = %v, want >= 39", d["schemaVersion"])
	}
	if str(d["uid"]) == "" || str(d["title"]) == "" {
		t.Error("dashboard needs a uid and a title")
	}
	vars, _ := get(d, "templating", "list").([]any)
	var hasDS bool
	for _, v := range vars {
		if str(get(v, "name")) == "datasource" && str(get(v, "type")) == "datasource" && str(get(v, "query")) == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error(`no template variable "datasource" of type datasource (prometheus)`)
	}
	ids := map[float64]bool{}
	panels, _ := d["panels"].([]any)
	for _, p := range panels {
		title, typ := str(get(p, "title")), str(get(p, "type"))
		id, _ := get(p, "id").(float64)
		if ids[id] {
			t.Errorf("panel %q: duplicate id %v", title, id)
		}
		ids[id] = true
		if get(p, "gridPos", "w") == nil || get(p, "gridPos", "h") == nil {
			t.Errorf("panel %q has no gridPos", title)
		}
		if typ == "row" {
			continue
		}
		if uid := str(get(p, "datasource", "uid")); uid != "${datasource}" {
			t.Errorf("panel %q: datasource uid %q, want ${datasource}", title, uid)
		}
		targets, _ := get(p, "targets").([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, tg := range targets {
			if uid := str(get(tg, "datasource", "uid")); uid != "${datasource}" {
				t.Errorf("panel %q: target datasource uid %q, want ${datasource}", title, uid)
			}
		}
	}
}

func TestAlertRulesAreComplete(t *testing.T) {
	docs := yamlDocs(t, "prometheus/alerts.yml")
	groups, _ := get(docs[0], "groups").([]any)
	names := map[string]bool{}
	for _, g := range groups {
		rules, _ := get(g, "rules").([]any)
		for _, r := range rules {
			name := str(get(r, "alert"))
			if name == "" || names[name] {
				t.Errorf("rule %v: missing or duplicate alert name", r)
			}
			names[name] = true
			if str(get(r, "expr")) == "" || str(get(r, "labels", "severity")) == "" || str(get(r, "annotations", "summary")) == "" {
				t.Errorf("%s: needs expr, labels.severity and annotations.summary", name)
			}
			if f := str(get(r, "for")); f != "" {
				if _, err := model.ParseDuration(f); err != nil {
					t.Errorf("%s: for: %v", name, err)
				}
			}
		}
	}
	for _, want := range []string{"WalhookDown", "WalhookNotReady", "WalhookReplicationLagGrowing", "WalhookReplicationSlotInactive",
		"WalhookAttemptFailureRatioHigh", "WalhookRetryBacklogGrowing", "WalhookEndpointDisabled", "WalhookDeadLetters"} {
		if !names[want] {
			t.Errorf("alert %s is missing", want)
		}
	}
	prom := yamlDocs(t, "prometheus/prometheus.yml")[0]
	if rf := get(prom, "rule_files", 0); rf != "/etc/prometheus/alerts.yml" {
		t.Errorf("prometheus.yml rule_files = %v", rf)
	}
	if job := get(prom, "scrape_configs", 0, "job_name"); job != "walhook" {
		t.Errorf("prometheus.yml scrapes job %v, the alert rules expect walhook", job)
	}
}

// composeFile is the part of docker-compose.yml the tests look at.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
			Target     string `yaml:"target"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestComposeReferencesExistingFiles(t *testing.T) {
	c := readCompose(t)
	for _, want := range []string{"postgres", "app", "walhook", "receiver", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	if cmd := strings.Join(c.Services["postgres"].Command, " "); !strings.Contains(cmd, "wal_level=logical") {
		t.Errorf("postgres command %q does not set wal_level=logical", cmd)
	}
	for name, s := range c.Services {
		if s.Build != nil {
			dockerfile := filepath.Join("compose", s.Build.Context, s.Build.Dockerfile)
			b, err := os.ReadFile(dockerfile)
			if err != nil {
				t.Errorf("%s: build: %v", name, err)
				continue
			}
			if s.Build.Target != "" && !regexp.MustCompile(`(?mi)^FROM .* AS `+regexp.QuoteMeta(s.Build.Target)+`\s*$`).Match(b) {
				t.Errorf("%s: %s has no stage %s", name, dockerfile, s.Build.Target)
			}
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if !strings.HasPrefix(src, ".") {
				continue // named volume
			}
			if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
				t.Errorf("%s: volume %s: %v", name, v, err)
			}
		}
	}
}

// dockerfileEnv is what the image's ENV lines set (KEY=VALUE pairs).
func dockerfileEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	if env["WALHOOK_LISTEN"] == "" {
		t.Fatal("Dockerfile sets no WALHOOK_LISTEN: parsing its ENV lines failed")
	}
	return env
}

// configCheck runs `walhook config check --config path` with exactly env as
// walhook's WALHOOK_* environment.
func configCheck(t *testing.T, path string, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), []string{"config", "check", "--config", path}, &stdout, &stderr); code != 0 {
		t.Errorf("walhook config check --config %s (env %v): exit %d: %s", path, keys(env), code, strings.TrimSpace(stderr.String()))
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestWalhookConfigsPassConfigCheck(t *testing.T) {
	imageEnv := dockerfileEnv(t)
	checked := 0

	// The reference file, and every walhook*.yaml under deploy/, alone.
	files, _ := filepath.Glob(filepath.Join(root, "config", "*.yaml"))
	for _, f := range deployFiles(t, ".yml", ".yaml") {
		if strings.HasPrefix(filepath.Base(f), "walhook") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) { configCheck(t, f, nil) })
		checked++
	}

	// Compose: the mounted file with the service's and the image's environment.
	t.Run("compose", func(t *testing.T) {
		svc := readCompose(t).Services["walhook"]
		i := slices.Index(svc.Command, "--config")
		if i < 0 || i+1 >= len(svc.Command) {
			t.Fatalf("walhook service command %v has no --config", svc.Command)
		}
		var src string
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == svc.Command[i+1] {
				src = filepath.Join("compose", parts[0])
			}
		}
		if src == "" {
			t.Fatalf("no volume mounts %s", svc.Command[i+1])
		}
		env := maps(imageEnv, svc.Environment)
		configCheck(t, src, env)
	})
	checked++

	// Kubernetes: the ConfigMap's walhook.yaml with the sidecar's environment
	// (secret values taken from the example Secret) and the image's.
	t.Run("kubernetes", func(t *testing.T) {
		var cfgYAML string
		secrets := map[string]map[string]string{}
		var container map[string]any
		for _, f := range deployFiles(t, ".yaml") {
			if !strings.HasPrefix(f, "kubernetes"+string(filepath.Separator)) {
				continue
			}
			for _, doc := range yamlDocs(t, f) {
				switch str(doc["kind"]) {
				case "ConfigMap":
					cfgYAML = str(get(doc, "data", "walhook.yaml"))
				case "Secret":
					data := map[string]string{}
					for k, v := range get(doc, "stringData").(map[string]any) {
						data[k] = str(v)
					}
					secrets[str(get(doc, "metadata", "name"))] = data
				case "Deployment":
					cs, _ := get(doc, "spec", "template", "spec", "containers").([]any)
					for _, c := range cs {
						if str(get(c, "name")) == "walhook" {
							container = c.(map[string]any)
						}
					}
				}
			}
		}
		if cfgYAML == "" || container == nil {
			t.Fatal("no ConfigMap with walhook.yaml or no walhook container")
		}
		env := maps(imageEnv, nil)
		envList, _ := container["env"].([]any)
		for _, e := range envList {
			name, value := str(get(e, "name")), str(get(e, "value"))
			if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
				v, ok := secrets[str(get(ref, "name"))][str(get(ref, "key"))]
				if !ok {
					t.Errorf("env %s: secret %v not in the example Secret", name, ref)
				}
				value = v
			}
			env[name] = value
		}
		path := filepath.Join(t.TempDir(), "walhook.yaml")
		if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		configCheck(t, path, env)

		// The probes and the Service use ports the container declares.
		ports := map[string]bool{}
		for _, p := range container["ports"].([]any) {
			ports[str(get(p, "name"))] = true
		}
		for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
			if !ports[str(get(container, probe, "httpGet", "port"))] {
				t.Errorf("%s uses port %v, not a named port of the container", probe, get(container, probe, "httpGet", "port"))
			}
		}
		if get(container, "livenessProbe", "httpGet", "path") != "/healthz" || get(container, "readinessProbe", "httpGet", "path") != "/readyz" {
			t.Error("liveness must probe /healthz and readiness /readyz")
		}
	})
	checked++
	if checked < 4 {
		t.Fatalf("checked %d configurations", checked)
	}
}

func maps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// queries returns every PromQL expression of the dashboard and the alert
// rules, keyed by where it comes from.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if title := str(v["title"]); title != "" {
				where = "dashboard panel " + title
			}
			if e := str(v["expr"]); e != "" {
				out[fmt.Sprintf("%s (%s)", where, str(v["refId"]))] = e
			}
			if def := str(v["definition"]); strings.HasPrefix(def, "label_values(") {
				// label_values(metric, label): check the metric.
				inner := strings.TrimSuffix(strings.TrimPrefix(def, "label_values("), ")")
				out["dashboard variable "+str(v["name"])] = strings.TrimSpace(strings.Split(inner, ",")[0])
			}
			for k, c := range v {
				walk(where+"."+k, c)
			}
		case []any:
			for _, c := range v {
				walk(where, c)
			}
		}
	}
	walk("dashboard", readJSON(t, "grafana/walhook-dashboard.json"))
	for _, g := range get(yamlDocs(t, "prometheus/alerts.yml")[0], "groups").([]any) {
		for _, r := range get(g, "rules").([]any) {
			out["alert "+str(get(r, "alert"))] = str(get(r, "expr"))
		}
	}
	return out
}

// grafanaVar matches Grafana's variables in queries: $__rate_interval,
// ${__range}, $instance, ${instance:regex}.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

// metricNames parses expr and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	expr = grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		if strings.Contains(m, "__") {
			return "5m" // $__rate_interval, $__interval, $__range
		}
		return ".*" // a template variable inside a regex matcher
	})
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && name == "" {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

func TestMetricNamesParse(t *testing.T) {
	got, err := metricNames(`histogram_quantile(0.9, sum by (le) (rate(walhook_attempt_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval]))) / on() group_left() ({__name__="up", job="walhook"} > 0)`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "walhook_attempt_duration_seconds_bucket,up" {
		t.Fatalf("names = %v", got)
	}
	if _, err := metricNames(`sum(rate(x[5m]`); err == nil {
		t.Fatal("a broken expression parsed")
	}
}

// receiver counts verified webhook requests.
type receiver struct {
	mu       sync.Mutex
	secret   string
	verified map[string]bool
	bad      int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if signature.Verify(r.secret, req.Header, body, time.Now(), 0) != nil {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.verified[req.Header.Get("webhook-id")] = true
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.verified), r.bad
}

// scrape starts walhook on a fresh database, delivers a few events (and
// dead-letters one row), and returns the metric families of /metrics.
func scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	db := pgtest.New(t)
	cfg := config.Defaults()
	cfg.Database.URL = db.DSN
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.Tokens = []string{"deploy-test-token-0123456789"}
	cfg.Delivery.AllowPrivateNetworks = true // the receiver is an httptest server on loopback
	cfg.Replication.StatusInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := app.Start(ctx, &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	rcv := &receiver{verified: map[string]bool{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ep, err := app.Service(&cfg, s.Store).CreateEndpoint(ctx, manage.EndpointInput{URL: srv.URL + "/hook", Events: []string{"order.*"}})
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.secret = ep.Secret
	rcv.mu.Unlock()

	conn := pgtest.Connect(t, db.DSN)
	defer conn.Close(context.Background())
	const events = 20
	if _, err := conn.Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload) SELECT 'order.created', jsonb_build_object('n', g) FROM generate_series(1, $1::int) g`, events); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO webhook_outbox (event_type, payload) VALUES ('', '{}')`); err != nil { // dead letter
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		n, bad := rcv.count()
		if bad > 0 {
			t.Fatalf("%d webhook requests failed signature verification", bad)
		}
		if n == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered after a minute", n, events)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Let the recorder and the confirmed position catch up, then scrape.
	var families map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + s.AdminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		families, err = p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		delivered := value(families, "walhook_deliveries_total", "status", "delivered")
		if delivered == events && value(families, "walhook_replication_slot_active", "", "") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delivery: walhook_deliveries_total{status=delivered} = %v, slot active = %v",
				delivered, value(families, "walhook_replication_slot_active", "", ""))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return families
}

// value returns the value of the first series of a family whose label has
// the given value (any series when label is empty); -1 when there is none.
func value(families map[string]*dto.MetricFamily, name, label, want string) float64 {
	mf, ok := families[name]
	if !ok {
		return -1
	}
	for _, m := range mf.GetMetric() {
		match := label == ""
		for _, l := range m.GetLabel() {
			match = match || (l.GetName() == label && l.GetValue() == want)
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func TestDashboardAndAlertsQueryOnlyExportedMetrics(t *testing.T) {
	families := scrape(t)

	// The replication collector reads the slot at scrape time.
	if v := value(families, "walhook_replication_slot_scrape_error", "", ""); v != 0 {
		t.Errorf("walhook_replication_slot_scrape_error = %v, want 0", v)
	}
	for _, name := range []string{"walhook_replication_lag_bytes", "walhook_replication_lag_seconds", "walhook_replication_slot_retained_wal_bytes"} {
		if value(families, name, "slot", "walhook") < 0 {
			t.Errorf("%s{slot=walhook} not exported", name)
		}
	}

	exported := map[string]bool{}
	for name, mf := range families {
		exported[name] = true
		if t := mf.GetType(); t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY || t == dto.MetricType_GAUGE_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exported[name+suffix] = true
			}
		}
	}
	// Made by Prometheus for every target, not by walhook.
	synthetic := map[string]bool{"up": true}

	qs := queries(t)
	if len(qs) < 40 {
		t.Fatalf("found only %d queries in the dashboard and alert rules", len(qs))
	}
	missing := map[string][]string{}
	for where, expr := range qs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, expr, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if !exported[n] && !synthetic[n] {
				missing[n] = append(missing[n], where)
			}
		}
	}
	for n, where := range missing {
		sort.Strings(where)
		t.Errorf("%s is not exported by walhook; used by %s", n, strings.Join(where, "; "))
	}
}
