package wheel

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

const tk = 100 * time.Millisecond

var t0 = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

func ticks(n int64) time.Duration { return time.Duration(n) * tk }

// roundUp is the first tick boundary at or after at, computed independently
// of the wheel: the instant at which an entry becomes deliverable.
func roundUp(start time.Time, tick time.Duration, at time.Time) time.Time {
	off := at.Sub(start)
	q := off / tick // truncates toward zero, which is ceil for negatives
	if off > 0 && off%tick != 0 {
		q++
	}
	return start.Add(q * tick)
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func noFire(t *testing.T) func(int, time.Time) {
	return func(id int, at time.Time) {
		t.Helper()
		t.Fatalf("unexpected delivery of %d (at %v)", id, at)
	}
}

// probe drives a Wheel[int] and checks every delivery against the rules
// computed from the schedule alone: delivered exactly once, with the
// scheduled at, only once now (or the wheel's clock) reached the rounded-up
// due time, always in that Advance, in non-decreasing due order, and Len
// and NextDue consistent after every step.
type probe struct {
	t         *testing.T
	w         *Wheel[int]
	at        map[int]time.Time
	bnd       map[int]time.Time
	fired     map[int]int
	cancelled map[int]bool
	maxNow    time.Time // the wheel's clock never goes back
	wheelTime time.Time // maxNow rounded down to the tick grid
	steps     int
}

func newProbe(t *testing.T, w *Wheel[int], start time.Time) *probe {
	return &probe{
		t: t, w: w,
		at: map[int]time.Time{}, bnd: map[int]time.Time{},
		fired: map[int]int{}, cancelled: map[int]bool{},
		maxNow: start, wheelTime: start,
	}
}

func (p *probe) schedule(id int, at time.Time) Handle {
	p.t.Helper()
	p.at[id] = at
	p.bnd[id] = roundUp(p.w.start, p.w.tickDur(), at)
	h := p.w.Schedule(id, at)
	p.checkLen()
	return h
}

func (p *probe) live() int {
	n := 0
	for id := range p.at {
		if p.fired[id] == 0 && !p.cancelled[id] {
			n++
		}
	}
	return n
}

func (p *probe) checkLen() {
	p.t.Helper()
	if got, want := p.w.Len(), p.live(); got != want {
		p.t.Fatalf("Len() = %d, want %d", got, want)
	}
}

func (p *probe) advance(now time.Time) {
	p.t.Helper()
	p.steps++
	prevWheel := p.wheelTime
	eff := laterOf(now, p.maxNow)
	var lastKey time.Time
	p.w.Advance(now, func(id int, at time.Time) {
		p.t.Helper()
		want, ok := p.at[id]
		if !ok {
			p.t.Fatalf("delivered unknown id %d", id)
		}
		if p.cancelled[id] {
			p.t.Fatalf("delivered cancelled id %d", id)
		}
		p.fired[id]++
		if p.fired[id] > 1 {
			p.t.Fatalf("id %d delivered %d times", id, p.fired[id])
		}
		if !at.Equal(want) {
			p.t.Fatalf("id %d delivered with at %v, scheduled %v", id, at, want)
		}
		if p.bnd[id].After(eff) {
			p.t.Fatalf("id %d delivered early: due %v (tick boundary %v), now %v", id, want, p.bnd[id], now)
		}
		// Overdue entries come first; they all count as due at the clock.
		key := laterOf(p.bnd[id], prevWheel)
		if key.Before(lastKey) {
			p.t.Fatalf("id %d (boundary %v) delivered after an entry with boundary %v", id, key, lastKey)
		}
		lastKey = key
	})
	p.maxNow = eff
	p.wheelTime = roundDown(p.w.start, p.w.tickDur(), eff)
	for id, b := range p.bnd {
		if p.cancelled[id] {
			continue
		}
		if want := !b.After(eff); (p.fired[id] == 1) != want {
			p.t.Fatalf("after Advance(%v): id %d (at %v, boundary %v) delivered=%v, want %v",
				now, id, p.at[id], b, p.fired[id] == 1, want)
		}
	}
	p.checkLen()
	p.checkNextDue()
}

func roundDown(start time.Time, tick time.Duration, t time.Time) time.Time {
	off := t.Sub(start)
	if off <= 0 {
		return start
	}
	return start.Add(off / tick * tick)
}

func (p *probe) checkNextDue() {
	p.t.Helper()
	next, ok := p.w.NextDue()
	var earliest time.Time
	found := false
	for id, b := range p.bnd {
		if p.fired[id] == 0 && !p.cancelled[id] && (!found || b.Before(earliest)) {
			earliest, found = b, true
		}
	}
	if ok != found {
		p.t.Fatalf("NextDue ok=%v with %d live entries", ok, p.live())
	}
	if found && next.After(laterOf(earliest, p.wheelTime)) {
		p.t.Fatalf("NextDue = %v, later than the earliest due boundary %v", next, earliest)
	}
	if found && earliest.After(p.wheelTime) && !next.After(p.wheelTime) {
		p.t.Fatalf("NextDue = %v is not after the clock %v although nothing is overdue", next, p.wheelTime)
	}
}

func (w *Wheel[T]) tickDur() time.Duration { return time.Duration(w.tickNs) }

type offsetCase struct {
	name string
	off  time.Duration
}

func offsetCases() []offsetCase {
	cs := []offsetCase{
		{"zero", 0},
		{"1ns", 1},
		{"past 1ns", -1},
		{"past 5s", -5 * time.Second},
		{"past 2 days", -48 * time.Hour},
		{"same tick 30ms", 30 * time.Millisecond},
		{"one tick", tk},
		{"one tick plus 1ns", tk + 1},
		{"3 days", 72 * time.Hour},
		{"30 days", 30 * 24 * time.Hour},
		{"beyond top horizon", ticks(1<<30+12345) + 17*time.Millisecond},
		{"10 years", 10 * 365 * 24 * time.Hour},
		{"three horizons plus 1 tick", ticks(3<<30 + 1)},
	}
	for l := 1; l <= defaultLevels; l++ {
		span := int64(1) << (slotBits * l)
		cs = append(cs,
			offsetCase{fmt.Sprintf("level %d boundary -1 tick", l), ticks(span - 1)},
			offsetCase{fmt.Sprintf("level %d boundary", l), ticks(span)},
			offsetCase{fmt.Sprintf("level %d boundary +1 tick", l), ticks(span + 1)},
			offsetCase{fmt.Sprintf("level %d boundary +1ns", l), ticks(span) + 1},
		)
	}
	return cs
}

// bases are the clock positions the wheel is at when entries are
// scheduled: placement depends on absolute tick bits, so the same offset
// crosses different slot and level boundaries from each base.
var bases = []offsetCase{
	{"aligned", 0},
	{"mid-tick", ticks(63) + 50*time.Millisecond},
	{"before level-2 wrap", ticks(4095) + 99*time.Millisecond},
	{"before top wrap", ticks(1<<30-70) + 1},
	{"after three top wraps", ticks(3<<30 + 5)},
}

// strategy advances p from base until every entry has been delivered.
type strategy struct {
	name string
	run  func(p *probe, base time.Time)
}

func lastBoundary(p *probe) time.Time {
	var last time.Time
	for _, b := range p.bnd {
		last = laterOf(last, b)
	}
	return last
}

var strategies = []strategy{
	{"one jump", func(p *probe, base time.Time) {
		end := lastBoundary(p)
		if before := end.Add(-1); before.After(base) {
			p.advance(before)
		}
		p.advance(end.Add(2 * tk))
	}},
	{"small steps", func(p *probe, base time.Time) {
		// Toward each due time in turn: halve the distance (odd
		// nanoseconds, so steps land mid-tick and cascades run at many
		// clock positions), then walk across it in 37 ms steps.
		var bs []time.Time
		for _, b := range p.bnd {
			bs = append(bs, b)
		}
		slices.SortFunc(bs, time.Time.Compare)
		now := base
		for _, b := range bs {
			for b.Sub(now) > ticks(100) {
				now = now.Add(b.Sub(now)/2 + 7)
				p.advance(now)
			}
			for !now.After(b.Add(tk)) {
				now = now.Add(37 * time.Millisecond)
				p.advance(now)
			}
		}
		p.advance(now.Add(tk))
	}},
	{"owner sleeps until NextDue", func(p *probe, base time.Time) {
		for range 10_000 {
			next, ok := p.w.NextDue()
			if !ok {
				return
			}
			p.advance(next)
		}
		p.t.Fatalf("still %d entries after 10000 NextDue wake-ups", p.w.Len())
	}},
}

func TestEntriesFireOnceNeverEarlyAtMostOneTickLate(t *testing.T) {
	for _, base := range bases {
		for _, c := range offsetCases() {
			for _, s := range strategies {
				t.Run(base.name+"/"+c.name+"/"+s.name, func(t *testing.T) {
					w := New[int](tk, t0)
					now := t0.Add(base.off)
					w.Advance(now, noFire(t))
					p := newProbe(t, w, t0)
					p.maxNow, p.wheelTime = now, roundDown(t0, tk, now)
					at := now.Add(c.off)
					p.schedule(1, at)
					s.run(p, now)
					if p.fired[1] != 1 {
						t.Fatalf("delivered %d times", p.fired[1])
					}
				})
			}
		}
	}
}

// TestOwnerLatency checks the "at most one tick late" bound directly: an
// owner that sleeps exactly until NextDue gets each entry delivered at the
// tick boundary that ends the entry's tick, never later.
func TestOwnerLatency(t *testing.T) {
	for _, base := range bases {
		for _, c := range offsetCases() {
			if c.off <= 0 {
				continue
			}
			t.Run(base.name+"/"+c.name, func(t *testing.T) {
				w := New[int](tk, t0)
				now := t0.Add(base.off)
				w.Advance(now, noFire(t))
				at := now.Add(c.off)
				w.Schedule(7, at)
				for wakeups := 0; w.Len() > 0; wakeups++ {
					if wakeups > 3*defaultLevels+10 {
						t.Fatalf("%d wake-ups without delivery", wakeups)
					}
					next, ok := w.NextDue()
					if !ok {
						t.Fatal("NextDue false with a live entry")
					}
					w.Advance(next, func(_ int, got time.Time) {
						if next.Before(at) || next.Sub(at) >= tk {
							t.Fatalf("delivered at now=%v for at=%v: want now in [at, at+tick)", next, at)
						}
					})
				}
			})
		}
	}
}

func TestAllOffsetsInOneWheel(t *testing.T) {
	for _, base := range bases {
		for _, s := range strategies {
			t.Run(base.name+"/"+s.name, func(t *testing.T) {
				w := New[int](tk, t0)
				now := t0.Add(base.off)
				w.Advance(now, noFire(t))
				p := newProbe(t, w, t0)
				p.maxNow, p.wheelTime = now, roundDown(t0, tk, now)
				id := 0
				for _, c := range offsetCases() {
					for _, extra := range []time.Duration{0, 1, tk / 2, tk, 3 * tk} {
						id++
						p.schedule(id, now.Add(c.off+extra))
					}
				}
				s.run(p, now)
				if p.live() != 0 {
					t.Fatalf("%d entries never delivered", p.live())
				}
			})
		}
	}
}

func TestNew(t *testing.T) {
	for _, tick := range []time.Duration{0, -1, -time.Second} {
		t.Run(tick.String(), func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "tick") {
					t.Fatalf("New(%v) did not panic about tick (recovered %v)", tick, r)
				}
			}()
			New[int](tick, t0)
		})
	}
	w := New[string](time.Nanosecond, t0)
	if w.Len() != 0 {
		t.Fatalf("new wheel Len = %d", w.Len())
	}
	if _, ok := w.NextDue(); ok {
		t.Fatal("NextDue on empty wheel returned ok")
	}
	w.Advance(t0.Add(time.Hour), func(string, time.Time) { t.Fatal("delivery from empty wheel") })
}

// TestNodeSize pins the per-entry cost the doc and the memory budget rely on.
func TestNodeSize(t *testing.T) {
	if got := unsafe.Sizeof(node{}); got != 24 {
		t.Fatalf("node is %d bytes, want 24", got)
	}
}

func TestCancel(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, p *probe)
	}{
		{"cancelled entries never fire", func(t *testing.T, p *probe) {
			var hs []Handle
			for i, off := range []time.Duration{-time.Second, 0, 30 * time.Millisecond, tk, ticks(64), ticks(5000), 72 * time.Hour, ticks(1<<30 + 3)} {
				hs = append(hs, p.schedule(i, t0.Add(off)))
				p.schedule(100+i, t0.Add(off)) // a neighbour in the same slot survives
			}
			for i, h := range hs {
				if !p.w.Cancel(h) {
					t.Fatalf("Cancel(live %d) = false", i)
				}
				p.cancelled[i] = true
				p.checkLen()
			}
			p.advance(t0.Add(ticks(1<<31 + 10)))
			if p.live() != 0 {
				t.Fatalf("%d neighbours not delivered", p.live())
			}
		}},
		{"cancel twice", func(t *testing.T, p *probe) {
			h := p.schedule(1, t0.Add(time.Minute))
			if !p.w.Cancel(h) {
				t.Fatal("first Cancel = false")
			}
			p.cancelled[1] = true
			if p.w.Cancel(h) {
				t.Fatal("second Cancel = true")
			}
			p.checkLen()
		}},
		{"cancel fired entry", func(t *testing.T, p *probe) {
			h := p.schedule(1, t0.Add(tk))
			p.advance(t0.Add(tk))
			if p.fired[1] != 1 {
				t.Fatal("not delivered")
			}
			if p.w.Cancel(h) {
				t.Fatal("Cancel of delivered entry = true")
			}
			p.checkLen()
		}},
		{"zero and foreign handles", func(t *testing.T, p *probe) {
			p.schedule(1, t0.Add(tk))
			for _, h := range []Handle{{}, {idx: -1}, {idx: 1 << 30}, {idx: p.w.ready}, {idx: p.w.first + 5}} {
				if p.w.Cancel(h) {
					t.Fatalf("Cancel(%+v) = true", h)
				}
			}
			h := p.schedule(2, t0.Add(time.Hour))
			p.w.Cancel(h)
			p.cancelled[2] = true
			if p.w.Cancel(Handle{idx: h.idx, gen: h.gen + 1}) {
				t.Fatal("forged handle with the free node's generation cancelled it")
			}
			p.checkLen()
			p.advance(t0.Add(tk))
		}},
		{"stale handle after slot reuse by cancel", func(t *testing.T, p *probe) {
			old := p.schedule(1, t0.Add(time.Second))
			p.w.Cancel(old)
			p.cancelled[1] = true
			nw := p.schedule(2, t0.Add(time.Second))
			if nw.idx != old.idx {
				t.Fatalf("slot not reused (%d vs %d); test needs reuse", nw.idx, old.idx)
			}
			if p.w.Cancel(old) {
				t.Fatal("stale handle cancelled the new entry")
			}
			p.advance(t0.Add(time.Second))
			if p.fired[2] != 1 {
				t.Fatal("new entry in reused slot not delivered")
			}
		}},
		{"stale handle after slot reuse by delivery", func(t *testing.T, p *probe) {
			old := p.schedule(1, t0.Add(tk))
			p.advance(t0.Add(tk))
			nw := p.schedule(2, t0.Add(time.Hour))
			if nw.idx != old.idx {
				t.Fatalf("slot not reused (%d vs %d); test needs reuse", nw.idx, old.idx)
			}
			if p.w.Cancel(old) {
				t.Fatal("stale handle cancelled the new entry")
			}
			if !p.w.Cancel(nw) {
				t.Fatal("Cancel(new) = false")
			}
			p.cancelled[2] = true
			p.advance(t0.Add(2 * time.Hour))
		}},
		{"cancel overdue entry", func(t *testing.T, p *probe) {
			p.advance(t0.Add(time.Minute))
			h := p.schedule(1, t0)
			if !p.w.Cancel(h) {
				t.Fatal("Cancel(overdue) = false")
			}
			p.cancelled[1] = true
			p.advance(t0.Add(time.Minute))
		}},
		{"cancel after cascades", func(t *testing.T, p *probe) {
			h := p.schedule(1, t0.Add(ticks(64*64*64+5)))
			p.schedule(2, t0.Add(ticks(64*64*64+5)))
			p.advance(t0.Add(ticks(64*64*64 + 1))) // entry now on level 0
			if !p.w.Cancel(h) {
				t.Fatal("Cancel after cascade = false")
			}
			p.cancelled[1] = true
			p.advance(t0.Add(ticks(64*64*64 + 10)))
		}},
		{"cancel parked beyond the horizon", func(t *testing.T, p *probe) {
			h := p.schedule(1, t0.Add(ticks(5<<30)))
			p.schedule(2, t0.Add(ticks(5<<30)))
			p.advance(t0.Add(ticks(2<<30 + 1)))
			if !p.w.Cancel(h) {
				t.Fatal("Cancel(parked) = false")
			}
			p.cancelled[1] = true
			p.advance(t0.Add(ticks(6 << 30)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newProbe(t, New[int](tk, t0), t0))
		})
	}
}

func TestScheduleFromDue(t *testing.T) {
	backoff := []time.Duration{tk, 2 * time.Second, time.Minute, 30 * time.Minute, 6 * time.Hour, 3 * 24 * time.Hour}
	t.Run("retries reschedule themselves", func(t *testing.T) {
		for _, mode := range []string{"one jump", "tick steps", "NextDue"} {
			t.Run(mode, func(t *testing.T) {
				w := New[int](tk, t0)
				attempts := map[int]int{}
				due := map[int]time.Time{}
				const n = 50
				for id := range n {
					at := t0.Add(time.Duration(id) * 13 * time.Millisecond)
					due[id] = at
					w.Schedule(id, at)
				}
				var now time.Time
				precise := false // steps of at most one tick: lateness < tick
				deliver := func(id int, at time.Time) {
					if !at.Equal(due[id]) || now.Before(at) {
						t.Fatalf("id %d: delivered at=%v now=%v, expected at=%v", id, at, now, due[id])
					}
					if now.Sub(at) >= tk && precise {
						t.Fatalf("id %d delivered %v late", id, now.Sub(at))
					}
					if k := attempts[id]; k < len(backoff) {
						next := at.Add(backoff[k])
						due[id] = next
						w.Schedule(id, next)
					}
					attempts[id]++
				}
				end := t0.Add(4 * 24 * time.Hour)
				switch mode {
				case "one jump":
					now = end
					w.Advance(now, deliver)
				case "tick steps":
					precise = true
					for now = t0; !now.After(t0.Add(20 * time.Minute)); now = now.Add(tk) {
						w.Advance(now, deliver)
					}
					precise = false
					now = end
					w.Advance(now, deliver)
				case "NextDue":
					precise = true
					for {
						next, ok := w.NextDue()
						if !ok {
							break
						}
						now = next
						w.Advance(now, deliver)
					}
				}
				for id := range n {
					if attempts[id] != len(backoff)+1 {
						t.Fatalf("id %d: %d attempts, want %d", id, attempts[id], len(backoff)+1)
					}
				}
				if w.Len() != 0 {
					t.Fatalf("Len = %d after all retries", w.Len())
				}
			})
		}
	})

	t.Run("rescheduling an overdue time waits for the next Advance", func(t *testing.T) {
		w := New[int](tk, t0)
		w.Schedule(1, t0.Add(tk))
		calls := 0
		resched := func(id int, at time.Time) {
			calls++
			w.Schedule(id, at) // already due: must not loop inside this call
		}
		for i := 1; i <= 3; i++ {
			w.Advance(t0.Add(tk), resched)
			if calls != i || w.Len() != 1 {
				t.Fatalf("after Advance #%d: %d deliveries, Len %d; want %d, 1", i, calls, w.Len(), i)
			}
		}
	})

	t.Run("cancel a sibling of the same tick from due", func(t *testing.T) {
		w := New[int](tk, t0)
		hs := map[int]Handle{}
		for id := range 4 {
			hs[id] = w.Schedule(id, t0.Add(tk))
		}
		got := map[int]bool{}
		w.Advance(t0.Add(tk), func(id int, _ time.Time) {
			got[id] = true
			if w.Cancel(hs[id]) {
				t.Fatalf("Cancel of the entry being delivered returned true")
			}
			partner := id ^ 1
			if ok := w.Cancel(hs[partner]); ok == got[partner] {
				t.Fatalf("Cancel(partner %d) = %v but partner delivered = %v", partner, ok, got[partner])
			}
		})
		if len(got) != 2 || w.Len() != 0 {
			t.Fatalf("delivered %v, Len %d; want one of each pair, 0", got, w.Len())
		}
	})

	t.Run("Advance from due panics", func(t *testing.T) {
		w := New[int](tk, t0)
		w.Schedule(1, t0)
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("re-entrant Advance did not panic")
			}
			w.Schedule(2, t0.Add(tk)) // wheel still usable
			n := 0
			w.Advance(t0.Add(tk), func(int, time.Time) { n++ })
			if n != 1 {
				t.Fatalf("after recovery delivered %d, want 1", n)
			}
		}()
		w.Advance(t0, func(int, time.Time) { w.Advance(t0, func(int, time.Time) {}) })
	})

	t.Run("panicking due loses nothing else", func(t *testing.T) {
		w := New[int](tk, t0)
		for id := range 5 {
			w.Schedule(id, t0.Add(tk))
		}
		w.Schedule(10, t0.Add(2*tk))
		func() {
			defer func() { _ = recover() }()
			w.Advance(t0.Add(2*tk), func(int, time.Time) {
				w.Schedule(99, t0) // overdue, scheduled after the interrupted ones
				panic("boom")
			})
		}()
		if w.Len() != 6 {
			t.Fatalf("Len after panic = %d, want 6", w.Len())
		}
		var order []int
		w.Advance(t0.Add(2*tk), func(id int, _ time.Time) { order = append(order, id) })
		if len(order) != 6 || order[4] != 99 || order[5] != 10 {
			t.Fatalf("delivered %v; want the 4 remaining tick-1 entries, 99, then 10", order)
		}
	})
}

// TestIDsReleased checks that the wheel does not keep a delivered or
// cancelled id reachable (ids can be large strings).
func TestIDsReleased(t *testing.T) {
	w := New[string](tk, t0)
	h := w.Schedule("cancelled", t0.Add(time.Hour))
	w.Schedule("delivered", t0.Add(tk))
	w.Cancel(h)
	w.Advance(t0.Add(tk), func(string, time.Time) {})
	for i, id := range w.ids {
		if id != "" {
			t.Fatalf("ids[%d] = %q still held", i, id)
		}
	}
}

// TestNextDue pins how early NextDue answers: exact for entries on level 0,
// the slot's cascade boundary otherwise, so an owner sleeping on it wakes
// once per level on the way down and never needlessly for cancelled
// entries.
func TestNextDue(t *testing.T) {
	cases := []struct {
		name    string
		advance time.Duration   // clock position before scheduling
		sched   []time.Duration // offsets from t0
		cancel  []int           // indexes into sched
		wakeups []int64         // expected NextDue sequence, in ticks
	}{
		{"empty", 0, nil, nil, nil},
		{"exact on level 0", 0, []time.Duration{250 * time.Millisecond}, nil, []int64{3}},
		{"on a boundary", 0, []time.Duration{ticks(9)}, nil, []int64{9}},
		{"cancelled earliest no longer wakes", 0, []time.Duration{ticks(10), ticks(20)}, []int{0}, []int64{20}},
		{"cancelled only entry", 0, []time.Duration{ticks(10)}, []int{0}, nil},
		{"cancelled in higher level", 0, []time.Duration{ticks(5000), ticks(20)}, []int{0}, []int64{20}},
		// 36000 = 8<<12 | 50<<6 | 32: level 2 slot 8, then level 1 slot
		// 50, then level 0.
		{"one hour cascades down", 0, []time.Duration{ticks(36000)}, nil, []int64{32768, 35968, 36000}},
		{"overdue means now", ticks(100) + 5, []time.Duration{ticks(50)}, nil, []int64{100}},
		{"beyond the horizon wakes at the top wrap", 0, []time.Duration{ticks(1<<30 + 1)}, nil, []int64{1 << 30, 1<<30 + 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := New[int](tk, t0)
			w.Advance(t0.Add(c.advance), noFire(t))
			var hs []Handle
			for i, off := range c.sched {
				hs = append(hs, w.Schedule(i, t0.Add(off)))
			}
			for _, i := range c.cancel {
				w.Cancel(hs[i])
			}
			var got []int64
			for len(got) < 10 {
				next, ok := w.NextDue()
				if !ok {
					break
				}
				got = append(got, int64(next.Sub(t0)/tk))
				w.Advance(next, func(int, time.Time) {})
			}
			if !slices.Equal(got, c.wakeups) {
				t.Fatalf("NextDue wake-ups %v, want %v", got, c.wakeups)
			}
			if w.Len() != 0 {
				t.Fatalf("Len = %d after draining", w.Len())
			}
		})
	}
}
