// Package pgcluster runs a private PostgreSQL server from the system's own
// binaries: the embedded default of `walhook serve` and the throwaway
// databases of the tests.
//
// A cluster is a data directory plus one postgres child process listening on
// a loopback port with wal_level=logical. The data directory is reused when it
// already holds a cluster, so the embedded default keeps its data across
// restarts. When walhook runs as root, initdb and postgres run as the unix
// user "postgres", because PostgreSQL refuses to run as root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Superuser is the database role initdb creates; connections over loopback
// use trust authentication, the server listening on 127.0.0.1 only.
const Superuser = "walhook"

// Options configure a cluster.
type Options struct {
	// DataDir holds the cluster; created with initdb when empty or absent.
	DataDir string
	// Port to listen on; 0 picks a free loopback port.
	Port int
	// Settings are extra server settings (name → value), e.g. fsync=off for
	// tests. wal_level=logical and enough replication slots are always set.
	Settings map[string]string
	// Log receives the server's stderr; nil discards it.
	Log io.Writer
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	opts    Options
	bindir  string
	cmd     *exec.Cmd
	port    int
	sockDir string
	done    chan struct{}
}

// FindBinDir locates the directory holding initdb and postgres: from
// pg_config --bindir, /usr/lib/postgresql/*/bin (newest first), or PATH.
func FindBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) found via pg_config, /usr/lib/postgresql/*/bin or PATH: " +
		"install them (Debian/Ubuntu: apt-get install postgresql-15; macOS: brew install postgresql@15) or set database.url to an existing PostgreSQL with wal_level=logical")
}

func versionOf(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}

// Start initialises the data directory if needed and starts the server,
// returning once it accepts connections. The server stops when Stop is called;
// ctx bounds only the start-up.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bindir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: data directory not set")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opts.DataDir, err)
	}
	opts.DataDir = dataDir
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bindir: bindir, done: make(chan struct{})}
	if err := c.initdb(ctx, cred); err != nil {
		return nil, err
	}
	if err := c.start(ctx, cred); err != nil {
		return nil, err
	}
	return c, nil
}

// runAs returns the credential to run PostgreSQL under: nil as a normal user,
// the "postgres" user when running as root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as user \"postgres\", which does not exist (install postgresql or run walhook as a normal user): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) initdb(ctx context.Context, cred *syscall.Credential) error {
	if _, err := os.Stat(filepath.Join(c.opts.DataDir, "PG_VERSION")); err == nil {
		return chownTree(c.opts.DataDir, cred)
	}
	// The parent must be traversable by the postgres user when walhook runs
	// as root; the data directory itself stays private.
	if err := os.MkdirAll(filepath.Dir(c.opts.DataDir), 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.MkdirAll(c.opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := chownTree(c.opts.DataDir, cred); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bindir, "initdb"),
		"-D", c.opts.DataDir, "-U", Superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.opts.DataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// chownTree hands the data directory (and the parents walhook created for
// it) to the postgres user when running as root.
func chownTree(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", p, err)
		}
		return nil
	})
}

func (c *Cluster) start(ctx context.Context, cred *syscall.Credential) error {
	// A stale postmaster.pid from a killed server would block start-up; the
	// server checks it itself and removes it when the pid is gone.
	var err error
	c.sockDir, err = os.MkdirTemp("", "walhook-pgsock-")
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if err := chownTree(c.sockDir, cred); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		port := c.opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return err
			}
		}
		err = c.startOnPort(ctx, cred, port)
		if err == nil || c.opts.Port != 0 || attempt >= 3 || !errors.Is(err, errPortTaken) {
			return err
		}
	}
}

var errPortTaken = errors.New("port in use")

func (c *Cluster) startOnPort(ctx context.Context, cred *syscall.Credential, port int) error {
	settings := map[string]string{
		"wal_level":               "logical",
		"max_replication_slots":   "64",
		"max_wal_senders":         "64",
		"max_connections":         "200",
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.sockDir,
		"port":                    strconv.Itoa(port),
	}
	for k, v := range c.opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", c.opts.DataDir}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	stderr := &tail{max: 4096}
	cmd := exec.Command(filepath.Join(c.bindir, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stdout = c.opts.Log
	cmd.Stderr = io.MultiWriter(c.opts.Log, stderr)
	cmd.Dir = os.TempDir()
	// A backend that outlives the postmaster would hold the output pipes,
	// and Wait would wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			conn.Close()
			if ready(ctx, port) {
				c.cmd, c.port, c.done = cmd, port, done
				return nil
			}
		}
		select {
		case <-done:
			msg := stderr.String()
			if strings.Contains(msg, "Address already in use") {
				return fmt.Errorf("%w: %d", errPortTaken, port)
			}
			return fmt.Errorf("postgres exited during start-up (%v): %s", waitErr, strings.TrimSpace(msg))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-done
			return fmt.Errorf("start postgres: %w", ctx.Err())
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-done
			return fmt.Errorf("postgres did not accept connections within 60s: %s", strings.TrimSpace(stderr.String()))
		case <-tick.C:
		}
	}
}

// ready asks pg_isready-like question through the wire: a TCP accept alone
// can precede "the database system is starting up".
func ready(ctx context.Context, port int) bool {
	return pingPostgres(ctx, port) == nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Port is the loopback TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// DSN returns a connection string for database db as the superuser.
func (c *Cluster) DSN(db string) string {
	return DSNForPort(c.port, db)
}

// BinDir is the directory of the PostgreSQL binaries in use.
func (c *Cluster) BinDir() string { return c.bindir }

// DataDir is the absolute data directory.
func (c *Cluster) DataDir() string { return c.opts.DataDir }

// Stop shuts the server down with the given mode: "fast" (SIGINT: disconnect
// clients, checkpoint) or "immediate" (SIGQUIT: crash-like). It waits for the
// process to exit; calling it again is harmless.
func (c *Cluster) Stop(mode string) error {
	if c.cmd == nil {
		return nil
	}
	sig := syscall.SIGINT
	if mode == "immediate" {
		sig = syscall.SIGQUIT
	}
	select {
	case <-c.done:
	default:
		if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal postgres: %w", err)
		}
		select {
		case <-c.done:
		case <-time.After(90 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL) // its process group: backends too
			<-c.done
			return errors.New("postgres did not stop within 90s; killed")
		}
	}
	os.RemoveAll(c.sockDir)
	return nil
}

// Restart stops the server with mode and starts it again on the same port.
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	if err := c.Stop(mode); err != nil {
		return err
	}
	cred, err := runAs()
	if err != nil {
		return err
	}
	c.opts.Port = c.port
	c.done = make(chan struct{})
	return c.start(ctx, cred)
}

// Done is closed when the server process exits.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// tail keeps the last max bytes written, for start-up error messages.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Running reports the port of a server already running on dataDir, read
// from its postmaster.pid, so a second walhook command can reach the
// embedded database of a running `walhook serve`.
func Running(dataDir string) (port int, ok bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil
}

// DSNForPort is the superuser DSN of a server on a loopback port.
func DSNForPort(port int, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, port, db)
}
