package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const modulePath = "github.com/walhook/walhook"

// moduleRoot finds the walhook repository: dir when given, else the module
// of the working directory (go env GOMOD), else the nearest parent holding
// walhook's go.mod.
func moduleRoot(ctx context.Context, dir string) (string, error) {
	if dir != "" {
		if !isWalhookModule(dir) {
			return "", fmt.Errorf("%s is not the walhook repository (no go.mod of %s with cmd/walhook)", dir, modulePath)
		}
		return filepath.Abs(dir)
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull && isWalhookModule(filepath.Dir(gomod)) {
			return filepath.Dir(gomod), nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isWalhookModule(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no walhook repository (go.mod of %s) in %s or its parents; run from the repository or pass its path", modulePath, wd)
		}
	}
}

func isWalhookModule(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(first) != "module "+modulePath {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "cmd", "walhook"))
	return err == nil && st.IsDir()
}

// buildWalhook compiles cmd/walhook of the repository at root into out,
// without -race whatever this process was built with: the bench measures
// walhook as it is shipped.
func buildWalhook(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/walhook")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/walhook in %s: %w\n%s", root, err, bytes.TrimSpace(b))
	}
	return nil
}

// walhookProc is walhook running as a separate process, configured only by
// WALHOOK_* environment variables, its stderr appended to a log file.
type walhookProc struct {
	bin     string
	env     []string
	logPath string
	admin   string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	startAt int64 // run's clock: when the process was started
}

// walhookEnv is the environment of every walhook command of a run: the
// inherited one without WALHOOK_* variables (they would change what is
// measured), plus settings, each key as its environment variable.
func walhookEnv(settings map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WALHOOK_") {
			env = append(env, kv)
		}
	}
	for k, v := range settings {
		env = append(env, envName(k)+"="+v)
	}
	return env
}

// envName is how walhook names a key in its environment (see
// internal/config): WALHOOK_ + upper case, dots as underscores.
func envName(key string) string {
	return "WALHOOK_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// start runs `walhook serve` and returns once its /readyz answers 200. It
// fails early, with the log's tail, if the process exits meanwhile.
func (w *walhookProc) start(ctx context.Context, c clock) error {
	logf, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("walhook log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(w.bin, "serve")
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches only the bench,
	// which then stops walhook before Postgres. Pdeathsig: walhook does not
	// outlive a bench that is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w.startAt = c.now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start walhook: %w", err)
	}
	w.cmd, w.exited = cmd, make(chan struct{})
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		resp, err := client.Get("http://" + w.admin + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		select {
		case <-w.exited:
			return &logTailError{fmt.Errorf("start walhook: exited before ready (%v)%s", w.waitErr, w.tailNote())}
		case <-ctx.Done():
			w.stop(5 * time.Second)
			return fmt.Errorf("start walhook: %w", ctx.Err())
		case <-deadline.C:
			w.stop(5 * time.Second)
			return &logTailError{fmt.Errorf("start walhook: /readyz not 200 within 60s (last: %s)%s", last, w.tailNote())}
		case <-tick.C:
		}
	}
}

func (w *walhookProc) running() bool {
	if w.cmd == nil {
		return false
	}
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

func (w *walhookProc) pid() int { return w.cmd.Process.Pid }

// stop sends SIGTERM, which makes walhook finish in-flight requests and
// write their results, and kills it after grace. It reports a non-zero exit.
func (w *walhookProc) stop(grace time.Duration) error {
	if w.cmd == nil {
		return nil
	}
	select {
	case <-w.exited:
	default:
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-w.exited:
		case <-t.C:
			_ = w.cmd.Process.Kill()
			<-w.exited
			return fmt.Errorf("walhook did not stop within %s of SIGTERM; killed", grace)
		}
	}
	if w.waitErr != nil {
		return fmt.Errorf("walhook exited: %w", w.waitErr)
	}
	return nil
}

// tailNote is the end of walhook's log, for error messages.
func (w *walhookProc) tailNote() string {
	lines, _ := logTail(w.logPath, 30)
	if len(lines) == 0 {
		return " (walhook log " + w.logPath + " is empty)"
	}
	return "\n--- last lines of " + w.logPath + " ---\n" + strings.Join(lines, "\n")
}

// logTail returns the last n lines of a file.
func logTail(path string, n int) ([]string, int) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	var lines []string
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		total++
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, total
}

// logSummary counts walhook's log lines by level (text or JSON format).
type logSummary struct {
	Path     string   `json:"path"`
	Lines    int      `json:"lines"`
	Errors   int      `json:"errors"`
	Warnings int      `json:"warnings"`
	Tail     []string `json:"tail,omitempty"`
}

func summarizeLog(path string, tail int) logSummary {
	s := logSummary{Path: path}
	b, err := os.ReadFile(path)
	if err != nil {
		return s
	}
	for line := range strings.Lines(string(b)) {
		s.Lines++
		switch {
		case strings.Contains(line, "level=ERROR"), strings.Contains(line, `"level":"ERROR"`), strings.Contains(line, "panic:"):
			s.Errors++
		case strings.Contains(line, "level=WARN"), strings.Contains(line, `"level":"WARN"`):
			s.Warnings++
		}
	}
	s.Tail, _ = logTail(path, tail)
	return s
}

// createEndpoint runs `walhook endpoint create` with the run's environment,
// as an operator would, and returns the endpoint's id and secret.
func createEndpoint(ctx context.Context, bin string, env []string, url, description string) (id, secret string, err error) {
	cmd := exec.CommandContext(ctx, bin, "endpoint", "create", "--url", url, "--events", eventPattern, "--description", description)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("walhook endpoint create --url %s: %w: %s", url, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &ep); err != nil {
		return "", "", fmt.Errorf("walhook endpoint create: output %q: %w", bytes.TrimSpace(stdout.Bytes()), err)
	}
	if ep.ID == "" || ep.Secret == "" {
		return "", "", fmt.Errorf("walhook endpoint create: no id or secret in %q", bytes.TrimSpace(stdout.Bytes()))
	}
	return ep.ID, ep.Secret, nil
}

// freeAddr returns a loopback address that was free a moment ago; start
// retries with new ports when walhook finds one taken meanwhile.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// metricSample is walhook's /metrics as series → value, histograms reduced
// to their _sum and _count.
type metricSample map[string]float64

func scrapeMetrics(ctx context.Context, admin string) (metricSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape walhook metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape walhook metrics: status %d", resp.StatusCode)
	}
	out := metricSample{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "walhook_") {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		name, _, _ := strings.Cut(series, "{")
		if !ok || strings.HasSuffix(name, "_bucket") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[series] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape walhook metrics: %w", err)
	}
	return out, nil
}

// delta is what counters did between two samples; gauges keep their last value.
func (m metricSample) delta(before metricSample) metricSample {
	out := metricSample{}
	for k, v := range m {
		name, _, _ := strings.Cut(k, "{")
		if strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			v -= before[k]
		}
		out[k] = v
	}
	return out
}

// sum adds the series of one metric name whose labels contain match.
func (m metricSample) sum(name, match string) float64 {
	var t float64
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n == name && strings.Contains(labels, match) {
			t += v
		}
	}
	return t
}

// logTailError is an error whose text already ends with walhook's log tail.
type logTailError struct{ err error }

func (e *logTailError) Error() string { return e.err.Error() }
func (e *logTailError) Unwrap() error { return e.err }
