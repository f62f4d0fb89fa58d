package wheel

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The walhook workload: retries spread over five days at 100 ms ticks.
const (
	benchSpread = 5 * 24 * time.Hour
	benchN      = 1_000_000
	benchBatch  = 1 << 16
)

// benchTimes returns n due times spread uniformly over spread after from,
// from a fixed seed so every benchmark and both structures see the same
// workload.
func benchTimes(n int, from time.Time, spread time.Duration) []time.Time {
	rng := rand.New(rand.NewPCG(42, 7))
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = from.Add(time.Duration(rng.Int64N(int64(spread))))
	}
	return ts
}

func shuffled[E any](s []E) []E {
	out := append([]E(nil), s...)
	rng := rand.New(rand.NewPCG(9, 9))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func perOp(b *testing.B, ops int, unit string) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops), unit)
}

// BenchmarkSchedule measures Schedule into a wheel already holding 1M
// entries; each batch is cancelled untimed so the wheel stays at 1M and
// recycled slots are exercised, as in steady-state operation.
func BenchmarkSchedule(b *testing.B) {
	ts := benchTimes(benchN, t0, benchSpread)
	w := New[int64](tk, t0)
	for i, at := range ts {
		w.Schedule(int64(i), at)
	}
	hs := make([]Handle, 0, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(hs) == benchBatch {
			b.StopTimer()
			for _, h := range hs {
				w.Cancel(h)
			}
			hs = hs[:0]
			b.StartTimer()
		}
		hs = append(hs, w.Schedule(int64(i), ts[i%benchN]))
	}
	b.StopTimer()
	perOp(b, b.N, "ns/schedule")
}

// BenchmarkCancel measures Cancel, in random order, of entries in a wheel
// holding 1M others.
func BenchmarkCancel(b *testing.B) {
	ts := benchTimes(benchN, t0, benchSpread)
	w := New[int64](tk, t0)
	for i, at := range ts {
		w.Schedule(int64(i), at)
	}
	hs := make([]Handle, 0, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		hs = hs[:0]
		n := min(benchBatch, b.N-done)
		for i := range n {
			hs = append(hs, w.Schedule(int64(i), ts[(done+i)%benchN]))
		}
		hs = shuffled(hs)
		b.StartTimer()
		for _, h := range hs {
			if !w.Cancel(h) {
				b.Fatal("Cancel failed")
			}
		}
		done += n
	}
	b.StopTimer()
	perOp(b, b.N, "ns/cancel")
}

// BenchmarkAdvance measures delivery throughput, cascades included: entries
// spread over a window ahead of the clock are all delivered, either by one
// Advance to the end of the window or by an owner that sleeps until
// NextDue and advances there (one call per wake-up).
func BenchmarkAdvance(b *testing.B) {
	for _, spread := range []time.Duration{time.Minute, time.Hour, benchSpread} {
		for _, mode := range []string{"jump", "owner"} {
			b.Run(fmt.Sprintf("spread=%v/%s", spread, mode), func(b *testing.B) {
				w := New[int64](tk, t0)
				now := t0
				rng := rand.New(rand.NewPCG(1, 2))
				fired, wakeups := 0, 0
				due := func(int64, time.Time) { fired++ }
				b.ReportAllocs()
				b.ResetTimer()
				for done := 0; done < b.N; {
					b.StopTimer()
					n := min(benchBatch, b.N-done)
					for i := range n {
						w.Schedule(int64(i), now.Add(time.Duration(rng.Int64N(int64(spread)))))
					}
					end := now.Add(spread)
					b.StartTimer()
					if mode == "jump" {
						w.Advance(end, due)
						wakeups++
					} else {
						for {
							next, ok := w.NextDue()
							if !ok {
								break
							}
							w.Advance(next, due)
							wakeups++
						}
					}
					now = end
					done += n
				}
				b.StopTimer()
				if fired != b.N || w.Len() != 0 {
					b.Fatalf("fired %d of %d, %d left", fired, b.N, w.Len())
				}
				perOp(b, b.N, "ns/fire")
				b.ReportMetric(float64(wakeups)/float64(b.N), "advances/fire")
			})
		}
	}
}

// heapAlloc returns the live heap after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// gcPause reports how long one full collection takes with the current
// live heap; the difference with and without a structure is what the GC
// pays for scanning (or skipping) it.
// The minimum of a few runs filters out noise from other processes.
func gcPause() time.Duration {
	runtime.GC()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		runtime.GC()
		best = min(best, time.Since(start))
	}
	return best
}

func makeStringIDs(n int) []string {
	ids := make([]string, n)
	buf := make([]byte, 0, 32)
	for i := range ids {
		buf = strconv.AppendInt(append(buf[:0], "dlv-"...), int64(1_000_000_000+i), 10)
		ids[i] = string(buf)
	}
	return ids
}

// holder is what the memory benchmarks fill: the wheel or the heap.
type holder interface{ keep() any }

type memResult struct {
	total    float64       // bytes per entry, all included
	beyondID float64       // bytes per entry minus the cost of the id alone
	gc       time.Duration // extra time of a full GC with the structure live
}

// measureMem builds a structure holding benchN entries and measures the
// heap growth. For string ids, the cost of the ids themselves is measured by
// holding the same freshly made strings in a []string and subtracted; for
// int64 ids the id is 8 bytes.
func measureMem(ts []time.Time, idKind string, build func(ts []time.Time, ints bool, strs []string) holder) memResult {
	var idCost float64
	if idKind == "string" {
		before := heapAlloc()
		ids := makeStringIDs(len(ts))
		idCost = float64(heapAlloc()-before) / float64(len(ts))
		runtime.KeepAlive(ids)
	} else {
		idCost = 8
	}
	gcBase := gcPause()
	before := heapAlloc()
	var h holder
	if idKind == "string" {
		h = build(ts, false, makeStringIDs(len(ts))) // only h keeps the strings
	} else {
		h = build(ts, true, nil)
	}
	after := heapAlloc()
	gc := gcPause() - gcBase
	runtime.KeepAlive(h.keep())
	total := float64(after-before) / float64(len(ts))
	return memResult{total: total, beyondID: total - idCost, gc: gc}
}

type wheelHolder struct{ w any }

func (h wheelHolder) keep() any { return h.w }

func buildWheel(ts []time.Time, ints bool, strs []string) holder {
	if ints {
		w := New[int64](tk, t0)
		for i, at := range ts {
			w.Schedule(int64(i), at)
		}
		return wheelHolder{w}
	}
	w := New[string](tk, t0)
	for i, at := range ts {
		w.Schedule(strs[i], at)
	}
	return wheelHolder{w}
}

func buildHeap(ts []time.Time, ints bool, strs []string) holder {
	if ints {
		q := newHeapQ[int64](t0)
		for i, at := range ts {
			q.Schedule(int64(i), at)
		}
		return wheelHolder{q}
	}
	q := newHeapQ[string](t0)
	for i, at := range ts {
		q.Schedule(strs[i], at)
	}
	return wheelHolder{q}
}

// BenchmarkMemory1M schedules 1,000,000 entries spread over 5 days and
// reports the live heap they cost. B/entry-beyond-id is the figure the
// budget (<= 64) applies to; B/entry includes the id as stored (the 8-byte
// int, or the string header plus its bytes).
func BenchmarkMemory1M(b *testing.B) {
	ts := benchTimes(benchN, t0, benchSpread)
	for _, idKind := range []string{"int64", "string"} {
		b.Run("ids="+idKind, func(b *testing.B) {
			b.ReportAllocs()
			var r memResult
			for i := 0; i < b.N; i++ {
				r = measureMem(ts, idKind, buildWheel)
			}
			b.ReportMetric(r.total, "B/entry")
			b.ReportMetric(r.beyondID, "B/entry-beyond-id")
			b.ReportMetric(float64(r.gc.Microseconds()), "µs-gc-extra")
		})
	}
}

// heapQ is the baseline: the container/heap priority queue of the package
// documentation, with an index field in each item to support Cancel.
type heapQ[T any] struct {
	start time.Time
	items pqItems[T]
}

type pqItem[T any] struct {
	id    T
	at    int64 // ns after start, as in the wheel
	index int   // position in the heap, -1 once removed
}

type pqItems[T any] []*pqItem[T]

func (q pqItems[T]) Len() int           { return len(q) }
func (q pqItems[T]) Less(i, j int) bool { return q[i].at < q[j].at }
func (q pqItems[T]) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *pqItems[T]) Push(x any) {
	it := x.(*pqItem[T])
	it.index = len(*q)
	*q = append(*q, it)
}
func (q *pqItems[T]) Pop() any {
	old := *q
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*q = old[:n-1]
	return it
}

func newHeapQ[T any](start time.Time) *heapQ[T] { return &heapQ[T]{start: start} }

func (q *heapQ[T]) Schedule(id T, at time.Time) *pqItem[T] {
	it := &pqItem[T]{id: id, at: int64(at.Sub(q.start))}
	heap.Push(&q.items, it)
	return it
}

func (q *heapQ[T]) Cancel(it *pqItem[T]) bool {
	if it.index < 0 {
		return false
	}
	heap.Remove(&q.items, it.index)
	return true
}

func (q *heapQ[T]) Advance(now time.Time, due func(T, time.Time)) {
	lim := int64(now.Sub(q.start))
	for len(q.items) > 0 && q.items[0].at <= lim {
		it := heap.Pop(&q.items).(*pqItem[T])
		due(it.id, q.start.Add(time.Duration(it.at)))
	}
}

func (q *heapQ[T]) NextDue() (time.Time, bool) {
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.start.Add(time.Duration(q.items[0].at)), true
}

// benchQueue is the workload driver shared by the wheel and the heap.
type benchQueue interface {
	fill(ts []time.Time) // fresh structure; schedules ts[i] with id i
	shuffle()            // randomise the order cancelAll uses (untimed)
	cancelAll() int
	drain() int // owner loop: sleep until NextDue, Advance there
}

type wheelBench struct {
	w  *Wheel[int64]
	hs []Handle
}

func (x *wheelBench) fill(ts []time.Time) {
	x.w = New[int64](tk, t0)
	x.hs = make([]Handle, len(ts))
	for i, at := range ts {
		x.hs[i] = x.w.Schedule(int64(i), at)
	}
}

func (x *wheelBench) shuffle() { x.hs = shuffled(x.hs) }

func (x *wheelBench) cancelAll() int {
	n := 0
	for _, h := range x.hs {
		if x.w.Cancel(h) {
			n++
		}
	}
	return n
}

func (x *wheelBench) drain() int {
	fired := 0
	due := func(int64, time.Time) { fired++ }
	for {
		next, ok := x.w.NextDue()
		if !ok {
			return fired
		}
		x.w.Advance(next, due)
	}
}

type heapBench struct {
	q   *heapQ[int64]
	its []*pqItem[int64]
}

func (x *heapBench) fill(ts []time.Time) {
	x.q = newHeapQ[int64](t0)
	x.its = make([]*pqItem[int64], len(ts))
	for i, at := range ts {
		x.its[i] = x.q.Schedule(int64(i), at)
	}
}

func (x *heapBench) shuffle() { x.its = shuffled(x.its) }

func (x *heapBench) cancelAll() int {
	n := 0
	for _, it := range x.its {
		if x.q.Cancel(it) {
			n++
		}
	}
	return n
}

func (x *heapBench) drain() int {
	fired := 0
	due := func(int64, time.Time) { fired++ }
	for {
		next, ok := x.q.NextDue()
		if !ok {
			return fired
		}
		x.q.Advance(next, due)
	}
}

// BenchmarkHeapCompare runs the same 1M-entry workload (due times spread
// over five days) through the wheel and through the heap: schedule all of
// it into an empty structure, cancel all of it in random order, or drain it
// with an owner loop that sleeps until NextDue and advances there. Times
// are per entry. The memory rows give live bytes per entry for both at 1M
// entries, and the duration of a full GC while the structure is live.
func BenchmarkHeapCompare(b *testing.B) {
	ts := benchTimes(benchN, t0, benchSpread)
	impls := []struct {
		name  string
		q     func() benchQueue
		build func([]time.Time, bool, []string) holder
	}{
		{"wheel", func() benchQueue { return &wheelBench{} }, buildWheel},
		{"heap", func() benchQueue { return &heapBench{} }, buildHeap},
	}
	for _, im := range impls {
		b.Run("op=schedule/"+im.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				im.q().fill(ts)
			}
			perOp(b, b.N*benchN, "ns/schedule")
		})
	}
	for _, im := range impls {
		b.Run("op=cancel/"+im.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				q := im.q()
				q.fill(ts)
				q.shuffle()
				b.StartTimer()
				if n := q.cancelAll(); n != benchN {
					b.Fatalf("cancelled %d of %d", n, benchN)
				}
			}
			perOp(b, b.N*benchN, "ns/cancel")
		})
	}
	for _, im := range impls {
		b.Run("op=drain/"+im.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				q := im.q()
				q.fill(ts)
				b.StartTimer()
				if n := q.drain(); n != benchN {
					b.Fatalf("drained %d of %d", n, benchN)
				}
			}
			perOp(b, b.N*benchN, "ns/fire")
		})
	}
	for _, im := range impls {
		for _, idKind := range []string{"int64", "string"} {
			b.Run("op=memory/ids="+idKind+"/"+im.name, func(b *testing.B) {
				var r memResult
				for i := 0; i < b.N; i++ {
					r = measureMem(ts, idKind, im.build)
				}
				b.ReportMetric(r.total, "B/entry")
				b.ReportMetric(r.beyondID, "B/entry-beyond-id")
				b.ReportMetric(float64(r.gc.Microseconds()), "µs-gc-extra")
			})
		}
	}
}
