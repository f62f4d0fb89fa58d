package wheel

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// refEntry is one entry of the reference model.
type refEntry struct {
	id  int
	off int64 // due time, ns after start
	// eff is the tick the entry belongs to in delivery order: its due time
	// rounded up to the tick grid, or, if that had already passed when it
	// was scheduled, the model clock at that moment (overdue entries are
	// delivered first, as due "now").
	eff int64
	seq int
	// deferred marks entries scheduled from due that were already due:
	// they wait for the next Advance call.
	deferred bool
}

// ref is the reference model: a slice kept sorted by (eff, seq), checked in
// lockstep with the wheel. Every delivery the wheel makes must be of a
// live, eligible entry whose eff equals the smallest eff of all eligible
// entries (any order within a tick), and when Advance returns no eligible
// entry with eff <= target may remain. That pins the delivered set and its
// order at tick granularity, including deliveries caused by Schedule and
// Cancel calls made from inside due.
type ref struct {
	tickNs int64
	cur    int64 // ticks
	seq    int
	es     []refEntry
}

func (r *ref) ceilTick(off int64) int64 {
	q := off / r.tickNs
	if off > 0 && off%r.tickNs != 0 {
		q++
	}
	return q
}

func (r *ref) less(a, b refEntry) int {
	if a.eff != b.eff {
		return cmpInt(a.eff, b.eff)
	}
	return cmpInt(int64(a.seq), int64(b.seq))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *ref) schedule(id int, off int64, inAdvance bool) {
	e := refEntry{id: id, off: off, eff: r.ceilTick(off), seq: r.seq}
	r.seq++
	if e.eff <= r.cur {
		e.eff, e.deferred = r.cur, inAdvance
	}
	i, _ := slices.BinarySearchFunc(r.es, e, r.less)
	r.es = slices.Insert(r.es, i, e)
}

func (r *ref) find(id int) int {
	for i, e := range r.es {
		if e.id == id {
			return i
		}
	}
	return -1
}

func (r *ref) cancel(id int) bool {
	i := r.find(id)
	if i < 0 {
		return false
	}
	r.es = slices.Delete(r.es, i, i+1)
	return true
}

// firstEligible is the smallest eff among entries deliverable now.
func (r *ref) firstEligible() (int64, bool) {
	for _, e := range r.es {
		if !e.deferred {
			return e.eff, true
		}
	}
	return 0, false
}

// harness runs a Wheel[int] and the model side by side. choose supplies
// the randomness (a PRNG in TestModel, fuzz bytes in FuzzWheel).
type harness struct {
	t       testing.TB
	w       *Wheel[int]
	r       *ref
	start   time.Time
	tick    time.Duration
	choose  func(n int) int
	handles []Handle
	nowNs   int64 // largest now passed to Advance, ns after start

	inAdvance bool
	target    int64
	advNowNs  int64
	fired     int
	draining  bool // due only checks, so that draining terminates
}

func newHarness(t testing.TB, levels int, tick time.Duration, choose func(int) int) *harness {
	return &harness{
		t: t, w: newWheel[int](tick, t0, levels), r: &ref{tickNs: int64(tick)},
		start: t0, tick: tick, choose: choose,
	}
}

// offset draws a due time around base (ns after start) from a mix meant to
// hit every code path: overdue, same tick, exact slot and level boundaries,
// and far beyond the top horizon.
func (h *harness) offset(base int64) int64 {
	tn := int64(h.tick)
	horizon := int64(1) << (slotBits * h.w.levels)
	jitter := int64(h.choose(3)-1) * int64(h.choose(int(min(tn, 1<<20))))
	switch h.choose(8) {
	case 0: // overdue
		return base - int64(h.choose(200))*tn - int64(h.choose(int(tn)))
	case 1: // within the current tick or the next one
		return base + int64(h.choose(int(2*tn)))
	case 2: // near: level 0
		return base + int64(h.choose(130))*tn + jitter
	case 3: // a level boundary of the absolute tick grid, +-1 tick
		l := h.choose(h.w.levels + 1)
		span := int64(1) << (slotBits * l)
		k := (h.r.cur/span + int64(1+h.choose(3))) * span
		return (k+int64(h.choose(3)-1))*tn + jitter
	case 4: // anywhere within the horizon
		return base + int64(h.choose(int(min(horizon, 1<<40))))*tn + jitter
	case 5: // beyond the horizon
		return base + (horizon+int64(h.choose(int(min(3*horizon, 1<<40)))))*tn + jitter
	case 6: // exactly on a tick boundary
		return (h.r.cur + int64(h.choose(70))) * tn
	default: // a few ticks
		return base + int64(h.choose(8))*tn + jitter
	}
}

func (h *harness) schedule(off int64) {
	h.t.Helper()
	id := len(h.handles)
	h.handles = append(h.handles, h.w.Schedule(id, h.start.Add(time.Duration(off))))
	h.r.schedule(id, off, h.inAdvance)
	h.checkLen()
}

func (h *harness) cancel(id int) {
	h.t.Helper()
	if id < 0 || id >= len(h.handles) {
		return
	}
	got, want := h.w.Cancel(h.handles[id]), h.r.cancel(id)
	if got != want {
		h.t.Fatalf("Cancel(id %d) = %v, model says %v", id, got, want)
	}
	h.checkLen()
}

func (h *harness) checkLen() {
	h.t.Helper()
	if got, want := h.w.Len(), len(h.r.es); got != want {
		h.t.Fatalf("Len() = %d, model has %d", got, want)
	}
}

func (h *harness) checkNextDue() {
	h.t.Helper()
	next, ok := h.w.NextDue()
	if ok != (len(h.r.es) > 0) {
		h.t.Fatalf("NextDue ok = %v with %d entries", ok, len(h.r.es))
	}
	if !ok {
		return
	}
	earliest := h.r.es[0].eff
	for _, e := range h.r.es {
		earliest = min(earliest, e.eff)
	}
	limit := max(earliest, h.r.cur)
	if want := h.start.Add(time.Duration(limit * int64(h.tick))); next.After(want) {
		h.t.Fatalf("NextDue = %v, after the earliest due boundary %v", next, want)
	}
}

func (h *harness) advance(nowNs int64) {
	h.t.Helper()
	h.inAdvance = true
	h.advNowNs = nowNs
	h.target = h.r.cur
	if nowNs > 0 {
		h.target = max(h.target, nowNs/int64(h.tick))
	}
	h.w.Advance(h.start.Add(time.Duration(nowNs)), h.onDue)
	h.inAdvance = false
	if eff, ok := h.r.firstEligible(); ok && eff <= h.target {
		h.t.Fatalf("Advance to tick %d left deliverable entry with tick %d undelivered", h.target, eff)
	}
	h.r.cur = h.target
	for i := range h.r.es {
		h.r.es[i].deferred = false
	}
	h.nowNs = max(h.nowNs, nowNs)
	h.checkLen()
	h.checkNextDue()
}

func (h *harness) onDue(id int, at time.Time) {
	h.t.Helper()
	h.fired++
	i := h.r.find(id)
	if i < 0 {
		h.t.Fatalf("delivered id %d which is not scheduled (cancelled or delivered)", id)
	}
	e := h.r.es[i]
	if e.deferred {
		h.t.Fatalf("id %d scheduled as overdue from due was delivered in the same Advance", id)
	}
	if first, _ := h.r.firstEligible(); e.eff != first {
		h.t.Fatalf("id %d (tick %d) delivered before an entry of tick %d", id, e.eff, first)
	}
	if e.eff > h.target {
		h.t.Fatalf("id %d (tick %d) delivered by Advance to tick %d", id, e.eff, h.target)
	}
	if want := h.start.Add(time.Duration(e.off)); !at.Equal(want) {
		h.t.Fatalf("id %d delivered with at %v, scheduled %v", id, at, want)
	}
	if clock := max(h.advNowNs, h.r.cur*int64(h.tick)); e.off > clock {
		h.t.Fatalf("id %d due %dns delivered early at %dns", id, e.off, clock)
	}
	h.r.es = slices.Delete(h.r.es, i, i+1)
	h.r.cur = max(h.r.cur, e.eff)
	h.checkLen()

	if h.draining {
		return
	}
	switch h.choose(10) {
	case 0, 1, 2: // a retry: reschedule relative to its own due time
		h.schedule(h.offset(e.off))
	case 3: // reschedule relative to the wheel clock
		h.schedule(h.offset(h.r.cur * int64(h.tick)))
	case 4, 5: // cancel something, possibly an entry of this very tick
		if n := len(h.handles); n > 0 {
			h.cancel(h.choose(n))
		}
	case 6:
		h.checkNextDue()
	}
}

// maxClockNs bounds how far big jumps take the clock, so that due times a
// few horizons further still fit in a time.Duration.
const maxClockNs = 1 << 61

// step performs one random operation.
func (h *harness) step() {
	h.t.Helper()
	tn := int64(h.tick)
	switch op := h.choose(16); {
	case op < 6:
		h.schedule(h.offset(h.r.cur * tn))
	case op < 8:
		if n := len(h.handles); n > 0 {
			h.cancel(h.choose(n)) // live or stale
		}
	case op == 8:
		// Cancel a live entry, the common case in walhook (acked early).
		if len(h.r.es) > 0 {
			h.cancel(h.r.es[h.choose(len(h.r.es))].id)
		}
	case op == 9: // sub-tick step
		h.advance(h.nowNs + int64(h.choose(int(tn))))
	case op == 10: // a few ticks
		h.advance(h.nowNs + int64(h.choose(10))*tn + int64(h.choose(int(tn))))
	case op == 11: // a jump of log-uniform size, up to a few horizons
		if h.nowNs > maxClockNs {
			h.advance(h.nowNs) // stay far from the end of time.Duration
			return
		}
		horizon := int64(1) << (slotBits * h.w.levels)
		maxJump := min(3*horizon, 1<<40)
		mag := h.choose(bits.Len64(uint64(maxJump)) + 1)
		h.advance(h.nowNs + int64(h.choose(int(min(maxJump, int64(1)<<mag))))*tn)
	case op == 12: // an owner waking at NextDue
		if next, ok := h.w.NextDue(); ok {
			h.advance(int64(next.Sub(h.start)))
		}
	case op == 13: // a clock that went backwards
		h.advance(h.nowNs - int64(h.choose(int(5*tn))))
	case op == 14: // exactly onto the next boundaries
		h.advance((h.r.cur + int64(h.choose(3))) * tn)
	default:
		h.advance(h.nowNs)
	}
}

// drain delivers everything and checks nothing is left behind.
func (h *harness) drain() {
	h.t.Helper()
	h.draining = true
	for i := 0; len(h.r.es) > 0; i++ {
		if i > 100_000 {
			h.t.Fatalf("%d entries left after %d NextDue wake-ups", len(h.r.es), i)
		}
		next, ok := h.w.NextDue()
		if !ok {
			h.t.Fatalf("NextDue false with %d entries", len(h.r.es))
		}
		h.advance(max(int64(next.Sub(h.start)), h.nowNs))
	}
}

func TestModel(t *testing.T) {
	cases := []struct {
		levels int
		tick   time.Duration
	}{
		{1, tk}, // horizon 64 ticks: constant overflow rescans
		{2, tk},
		{3, time.Millisecond},
		{defaultLevels, tk},
		{defaultLevels, 1}, // nanosecond ticks: no sub-tick rounding
		{defaultLevels, 3 * time.Millisecond},
	}
	for _, c := range cases {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("levels=%d/tick=%v/seed=%d", c.levels, c.tick, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 0x5eed))
				h := newHarness(t, c.levels, c.tick, func(n int) int {
					if n <= 0 {
						return 0
					}
					return rng.IntN(n)
				})
				ops := 20_000
				if testing.Short() {
					ops = 3_000
				}
				for range ops {
					h.step()
				}
				h.drain()
				if h.fired == 0 {
					t.Fatal("nothing was delivered: the test exercised nothing")
				}
			})
		}
	}
}

// FuzzWheel drives the wheel and the model from fuzz bytes; byte 0 picks
// the number of levels and tick so that small horizons (many cascades and
// overflow rescans per byte) are explored too.
func FuzzWheel(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{1, 0, 0, 0, 5, 5, 5, 11, 200, 0, 12, 12, 12})
	f.Add([]byte("\x04schedule many, cancel some, jump far, sleep until NextDue"))
	f.Add([]byte{2, 3, 3, 3, 3, 3, 3, 11, 255, 255, 255, 9, 9, 9, 13, 13, 12, 12, 12, 12})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		pos := 1
		// choose reads big-endian bytes as needed; once the input runs out
		// it yields zeros, which makes every loop below terminate.
		choose := func(n int) int {
			if n <= 1 {
				return 0
			}
			v := 0
			for lim := n - 1; lim > 0; lim >>= 8 {
				b := 0
				if pos < len(data) {
					b = int(data[pos])
					pos++
				}
				v = v<<8 | b
			}
			return v % n
		}
		ticksFor := []time.Duration{tk, 1, time.Millisecond, 7 * time.Millisecond}
		levels := 1 + int(data[0])%defaultLevels
		h := newHarness(t, levels, ticksFor[int(data[0]>>4)%len(ticksFor)], choose)
		for ops := 0; pos < len(data) && ops < 2000; ops++ {
			h.step()
		}
		h.drain()
	})
}
