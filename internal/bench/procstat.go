package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is Linux's USER_HZ, the unit of the times in /proc/<pid>/stat.
// It is 100 on every mainstream architecture and the standard library has no
// sysconf to ask for it.
const clockTicks = 100

// procTimes are the CPU times of one process, in seconds.
type procTimes struct {
	self     float64 // utime + stime
	children float64 // cutime + cstime: children that exited and were waited for
	ppid     int
}

// readProcTimes parses /proc/<pid>/stat.
func readProcTimes(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseProcStat(b)
}

// parseProcStat reads the fields after the command name, which is in
// parentheses and may itself contain spaces and parentheses.
func parseProcStat(b []byte) (procTimes, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("malformed /proc stat line %q", b)
	}
	// fields[0] is field 3 of proc(5) (state): utime is field 14.
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 15 {
		return procTimes{}, fmt.Errorf("short /proc stat line %q", b)
	}
	num := func(k int) (float64, error) { return strconv.ParseFloat(fields[k], 64) }
	var v [5]float64
	for n, k := range []int{1, 11, 12, 13, 14} {
		f, err := num(k)
		if err != nil {
			return procTimes{}, fmt.Errorf("/proc stat field %d: %w", k+3, err)
		}
		v[n] = f
	}
	return procTimes{
		ppid:     int(v[0]),
		self:     (v[1] + v[2]) / clockTicks,
		children: (v[3] + v[4]) / clockTicks,
	}, nil
}

// treeCPU is the CPU seconds used so far by pid and its children, live or
// exited: how Postgres' postmaster and its backends are accounted.
func treeCPU(pid int) (float64, error) {
	root, err := readProcTimes(pid)
	if err != nil {
		return 0, err
	}
	total := root.self + root.children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list /proc: %w", err)
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		t, err := readProcTimes(child)
		if err != nil || t.ppid != pid {
			continue // gone meanwhile, or not ours
		}
		total += t.self + t.children
	}
	return total, nil
}

// memStatus reads VmHWM (peak resident set) and VmRSS of pid, in bytes.
func memStatus(pid int) (peak, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("status %s of pid %d: %w", name, pid, err)
		}
		if name == "VmHWM" {
			peak = kb << 10
		} else {
			rss = kb << 10
		}
	}
	return peak, rss, sc.Err()
}

// resetPeakRSS makes VmHWM start again from the current RSS, so the peak
// reported is the measured window's and not the warm-up's.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// machineCPU returns busy, stolen and total CPU seconds of the whole
// machine since boot, from the first line of /proc/stat. Stolen time is
// what the hypervisor gave to other guests while this one had work.
func machineCPU() (busy, steal, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	for k, f := range fields[1:] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/stat field %d: %w", k+1, err)
		}
		// guest and guest_nice (fields 9, 10) are already in user and nice.
		if k >= 8 {
			break
		}
		total += v
		switch k {
		case 3, 4: // idle, iowait
		case 7:
			steal += v // not work of this machine's processes
		default:
			busy += v
		}
	}
	return busy / clockTicks, steal / clockTicks, total / clockTicks, nil
}

// selfCPU is the CPU seconds used by this process (producer, receivers, raw
// HTTP client): on a small machine they compete with walhook for cores.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// postmasterPID reads the server's pid from its data directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// Kinds of Postgres processes, as the report splits their CPU.
const (
	pgWalsender  = "walsender"
	pgBackends   = "walhook's connections"
	pgProducer   = "producer's connections"
	pgBackground = "background (checkpointer, writers, autovacuum)"
	// pgStateServer is the whole second server of -state-server.
	pgStateServer = "state server"
)

// pgProcess is one live child of the postmaster.
type pgProcess struct {
	kind string
	cpu  float64
}

// pgProcesses lists the postmaster's live children by kind: the walsender
// and background processes by their process title, client backends as the
// producer's (their pids are known) or walhook's (every other client: during
// a window only walhook and the producer are connected).
func pgProcesses(postmaster int, producer []int) map[int]pgProcess {
	out := map[int]pgProcess{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		t, err := readProcTimes(pid)
		if err != nil || t.ppid != postmaster {
			continue
		}
		title, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out[pid] = pgProcess{kind: pgKind(string(title), slices.Contains(producer, pid)), cpu: t.self}
	}
	return out
}

// pgKind classifies a Postgres process by its title ("postgres: walsender
// …", "postgres: checkpointer", "postgres: user db [local] idle", …).
func pgKind(title string, producer bool) string {
	switch {
	case strings.Contains(title, "walsender"):
		return pgWalsender
	case producer:
		return pgProducer
	case strings.Contains(title, "checkpointer"), strings.Contains(title, "writer"),
		strings.Contains(title, "autovacuum"), strings.Contains(title, "logical replication launcher"),
		strings.Contains(title, "stats collector"), strings.Contains(title, "archiver"):
		return pgBackground
	default:
		return pgBackends
	}
}

// pgCPUByKind is the CPU each kind of process used between two listings.
// A process that exited in between is missing from the second: its share
// stays in the whole tree's figure, not in any kind's.
func pgCPUByKind(before, after map[int]pgProcess) map[string]float64 {
	out := map[string]float64{}
	for pid, p := range after {
		used := p.cpu // a process new since the first listing started from 0
		if b, ok := before[pid]; ok && b.kind == p.kind && b.cpu <= p.cpu {
			used -= b.cpu
		}
		out[p.kind] += used
	}
	return out
}
