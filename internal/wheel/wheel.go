package wheel

import (
	"math"
	"math/bits"
	"time"
)

const (
	slotBits  = 6
	slotCount = 1 << slotBits // one uint64 occupancy word per level
	slotMask  = slotCount - 1

	// defaultLevels gives 2^30 ticks of horizon: about 3.4 years at 100 ms.
	defaultLevels = 5
	// maxLevels covers 60 bits of ticks; more would only add empty slots.
	maxLevels = 10

	// freeMark in node.prev tells a recycled node from a linked one, so a
	// forged or corrupted Handle can never unlink a node twice.
	freeMark = -1

	// maxNodes keeps every index, and len(nodes), representable in int32.
	maxNodes = math.MaxInt32
)

// Handle identifies one scheduled entry so that Cancel is O(1). It is a
// small value: copy it, store it next to the retry row, compare it. The
// zero Handle never refers to an entry. A Handle is only meaningful to the
// Wheel that returned it.
type Handle struct {
	idx int32
	gen uint32
}

// node is the per-entry bookkeeping, kept apart from the ids so that the
// big array is pointer-free: the garbage collector never scans it, and
// cascades (which never look at ids) touch 24 bytes per entry.
type node struct {
	at   int64  // due time as nanoseconds after Wheel.start
	next int32  // circular list links; free-list link when recycled
	prev int32  // freeMark when recycled
	gen  uint32 // bumped on every release so stale Handles miss
}

// Wheel is a hierarchical timing wheel holding ids with due times. The
// zero Wheel is not usable; create one with New.
//
// A Wheel is NOT safe for concurrent use. It is meant to be owned by one
// goroutine that serialises every call (typically a loop that sleeps until
// NextDue or until a new retry arrives on a channel, then calls Advance).
// Schedule, Cancel, Len and NextDue may be called from inside the due
// callback of Advance; Advance itself may not.
type Wheel[T any] struct {
	// ids and nodes are parallel slabs. Indexes below first are list
	// sentinels: levels*slotCount slot heads, then ready, firing, overflow.
	ids   []T
	nodes []node

	occ [maxLevels]uint64 // bit s of occ[l] set iff slot s of level l is non-empty

	start  time.Time
	tickNs int64
	cur    int64 // last tick boundary processed; only grows
	n      int   // live entries
	free   int32 // head of the free list, -1 when empty

	levels   int
	nslots   int32 // levels*slotCount
	ready    int32 // sentinel: already due, fire at the start of the next Advance
	firing   int32 // sentinel: entries being handed to due by the current Advance
	overflow int32 // sentinel: due beyond the top level's horizon
	first    int32 // first non-sentinel index

	advancing bool
}

// New returns an empty wheel whose tick boundaries are start, start+tick,
// start+2*tick, ... Due times are kept at nanosecond precision but fire at
// tick resolution (see Advance). New panics if tick <= 0: a wheel without
// a positive resolution is a programming error, not a runtime condition.
func New[T any](tick time.Duration, start time.Time) *Wheel[T] {
	return newWheel[T](tick, start, defaultLevels)
}

// newWheel lets tests shrink the horizon (levels=1 is 64 ticks) so that
// cascades and overflow rescans happen constantly under randomised tests.
func newWheel[T any](tick time.Duration, start time.Time, levels int) *Wheel[T] {
	if tick <= 0 {
		panic("wheel: tick must be positive")
	}
	if levels < 1 || levels > maxLevels {
		panic("wheel: levels out of range")
	}
	nslots := int32(levels * slotCount)
	first := nslots + 3
	w := &Wheel[T]{
		ids:      make([]T, first),
		nodes:    make([]node, first),
		start:    start,
		tickNs:   int64(tick),
		free:     -1,
		levels:   levels,
		nslots:   nslots,
		ready:    nslots,
		firing:   nslots + 1,
		overflow: nslots + 2,
		first:    first,
	}
	for i := int32(0); i < first; i++ {
		w.nodes[i].next = i
		w.nodes[i].prev = i
	}
	return w
}

// Len returns the number of scheduled entries (the one being handed to due
// is no longer counted).
func (w *Wheel[T]) Len() int { return w.n }

// Schedule adds id, due at at, and returns its Handle. It is O(1)
// (amortised: the slab grows by append, and slots freed by fired or
// cancelled entries are reused first).
//
// An entry fires at the first tick boundary at or after at, so never
// early. If at is not after the wheel's current tick boundary (in the
// past, or exactly on the boundary Advance last reached), the entry is
// overdue and fires at the start of the next Advance call — including
// when Schedule is called from inside due, which is how a callback that
// reschedules "now" avoids livelocking Advance.
//
// Due times are measured from the start passed to New and clamped to the
// range of time.Duration (about ±292 years from start).
func (w *Wheel[T]) Schedule(id T, at time.Time) Handle {
	off := int64(at.Sub(w.start))
	i := w.alloc()
	w.ids[i] = id
	w.nodes[i].at = off
	w.n++
	// cur*tickNs cannot overflow: cur only comes from floor(off/tickNs).
	if off <= w.cur*w.tickNs {
		w.pushBack(w.ready, i)
	} else {
		w.place(i, w.tickOf(off))
	}
	return Handle{idx: i, gen: w.nodes[i].gen}
}

// Cancel removes the entry h refers to and reports whether it did. It
// returns false for the zero Handle and for stale Handles (entry already
// fired or cancelled), even when the entry's slot has been reused by a
// newer Schedule: the generation stored in the Handle no longer matches.
// Generations are 32 bits, so a Handle kept across 2^32 reuses of the same
// slot could alias; walhook drops Handles when their entry fires.
func (w *Wheel[T]) Cancel(h Handle) bool {
	i := h.idx
	if i < w.first || int(i) >= len(w.nodes) {
		return false
	}
	nd := &w.nodes[i]
	if nd.gen != h.gen || nd.prev == freeMark {
		return false
	}
	w.unlink(i)
	w.release(i)
	w.n--
	return true
}

// Advance moves the wheel's clock to now and calls due for every entry
// whose due time, rounded up to the tick grid, is <= now. So an entry is
// never delivered before its time, and is delivered by the first Advance
// whose now reaches the end of the tick containing its time (at most one
// tick late for an owner that wakes on every NextDue).
//
// Order: overdue entries (see Schedule) come first, in scheduling order;
// then entries in non-decreasing due tick; entries within one tick come
// in no particular order. The at passed to due is the at given to
// Schedule (same instant; location and monotonic reading come from start).
//
// due may call Schedule and Cancel. An entry scheduled from due that is
// due at a later tick still within now fires during this same call, in
// order; one that is already due fires at the start of the next call.
// Cancelling from due an entry of the tick being delivered prevents it
// from being delivered. Calling Advance from due panics.
//
// The clock never goes backwards: a now before the wheel's current time
// only delivers overdue entries. If due panics, the entry being delivered
// counts as delivered, the wheel stays consistent, and the undelivered
// rest of that tick is delivered first by the next Advance.
//
// Cost: O(levels) per tick that holds work, O(1) per delivered entry and
// per cascade step; empty stretches of time are skipped using the
// occupancy bitmaps, so a jump of days costs no more than a jump of a tick.
func (w *Wheel[T]) Advance(now time.Time, due func(id T, at time.Time)) {
	if due == nil {
		panic("wheel: nil due func")
	}
	if w.advancing {
		panic("wheel: Advance called from inside due")
	}
	w.advancing = true
	defer w.endAdvance()

	target := w.cur
	if off := int64(now.Sub(w.start)); off > 0 {
		target = max(target, off/w.tickNs)
	}

	if w.nodes[w.ready].next != w.ready {
		w.spliceBack(w.ready, w.firing)
		w.fire(due)
	}
	for {
		t, ok := w.nextEvent()
		if !ok || t > target {
			break
		}
		w.cur = t
		w.cascade(t)
		s := t & slotMask
		if w.occ[0]&(1<<s) != 0 {
			w.occ[0] &^= 1 << s
			w.spliceBack(int32(s), w.firing)
			w.fire(due)
		}
	}
	w.cur = target
}

// endAdvance runs even when due panics: entries of the interrupted tick go
// back to the front of the ready list, ahead of anything due rescheduled,
// so they are neither lost nor reordered.
func (w *Wheel[T]) endAdvance() {
	w.advancing = false
	if w.nodes[w.firing].next != w.firing {
		w.spliceFront(w.firing, w.ready)
	}
}

// NextDue returns the earliest tick boundary at which Advance might
// deliver something, or false when the wheel is empty. It is exact when the
// next entry sits in the lowest level and otherwise returns the boundary at
// which the entry's slot cascades (earlier than the entry is due, never
// later), so an owner sleeping until NextDue wakes at most once per level
// before delivering. Overdue entries make it return the wheel's current
// time, meaning "now". O(levels).
func (w *Wheel[T]) NextDue() (time.Time, bool) {
	if w.n == 0 {
		return time.Time{}, false
	}
	if w.nodes[w.ready].next != w.ready || w.nodes[w.firing].next != w.firing {
		return w.tickTime(w.cur), true
	}
	t, ok := w.nextEvent()
	if !ok {
		return time.Time{}, false // unreachable while n > 0
	}
	return w.tickTime(t), true
}

// tickOf is the first tick boundary at or after off (off > 0). Rounding up
// is what makes "never early" hold at tick resolution.
func (w *Wheel[T]) tickOf(off int64) int64 {
	return (off-1)/w.tickNs + 1
}

// tickTime saturates instead of overflowing: only entries clamped to the
// far end of time.Duration can have a boundary past it, and an earlier
// answer is allowed for NextDue.
func (w *Wheel[T]) tickTime(t int64) time.Time {
	if t > math.MaxInt64/w.tickNs {
		return w.start.Add(time.Duration(math.MaxInt64))
	}
	return w.start.Add(time.Duration(t * w.tickNs))
}

// place links node i (due tick d >= cur) into the level where d and cur
// first differ: slot digit_l(d) of level l then comes up exactly when the
// clock's digits above l catch up, at which point it is cascaded lower.
// Entries that differ above the top level wait on the overflow list.
func (w *Wheel[T]) place(i int32, d int64) {
	diff := uint64(d ^ w.cur)
	l := 0
	if diff >= slotCount {
		l = (bits.Len64(diff) - 1) / slotBits
	}
	if l >= w.levels {
		w.pushBack(w.overflow, i)
		return
	}
	s := (d >> (l * slotBits)) & slotMask
	w.occ[l] |= 1 << s
	w.pushBack(int32(l<<slotBits)|int32(s), i)
}

// nextEvent returns the first tick after cur at which some slot must be
// cascaded or fired. A level's occupied slots all lie after cur's digit in
// that level (slots are emptied as the clock enters them), and everything
// on level l comes before anything on level l+1, so the first level with
// an occupied later slot holds the answer.
func (w *Wheel[T]) nextEvent() (int64, bool) {
	cur := w.cur
	for l := 0; l < w.levels; l++ {
		shift := l * slotBits
		d := (cur >> shift) & slotMask
		// d+1 == 64 shifts everything out, which is the wanted empty mask.
		if m := w.occ[l] & (^uint64(0) << (d + 1)); m != 0 {
			up := shift + slotBits
			return cur>>up<<up | int64(bits.TrailingZeros64(m))<<shift, true
		}
	}
	if w.nodes[w.overflow].next != w.overflow {
		// Cannot overflow int64: some parked entry is due at or after it.
		up := w.levels * slotBits
		return (cur>>up + 1) << up, true
	}
	return 0, false
}

// cascade runs at tick t (> 0) before t's level-0 slot fires: every level
// for which t is a slot boundary hands the slot the clock just entered down
// to lower levels. place puts each entry straight onto its final lower
// level (an entry due exactly at t lands in t's level-0 slot and fires
// now), and the slots the clock enters on the lower levels are necessarily
// empty, so the order in which levels are visited does not matter. At the
// top-level boundary the overflow list is rescanned first; that is the only
// non-O(1) step, once per 2^(6*levels) ticks and proportional to the
// parked entries.
func (w *Wheel[T]) cascade(t int64) {
	top := bits.TrailingZeros64(uint64(t)) / slotBits
	if top >= w.levels {
		top = w.levels - 1
		w.rescanOverflow(t)
	}
	for l := top; l >= 1; l-- {
		s := (t >> (l * slotBits)) & slotMask
		if w.occ[l]&(1<<s) == 0 {
			continue
		}
		w.occ[l] &^= 1 << s
		h := int32(l<<slotBits) | int32(s)
		i := w.nodes[h].next
		w.nodes[h].next, w.nodes[h].prev = h, h
		for i != h {
			next := w.nodes[i].next
			w.place(i, w.tickOf(w.nodes[i].at)) // lands strictly below l
			i = next
		}
	}
}

func (w *Wheel[T]) rescanOverflow(t int64) {
	up := w.levels * slotBits
	o := w.overflow
	i := w.nodes[o].next
	for i != o {
		next := w.nodes[i].next
		if d := w.tickOf(w.nodes[i].at); (d^t)>>up == 0 {
			w.unlink(i)
			w.place(i, d)
		}
		i = next
	}
}

// fire hands out the firing list one entry at a time, re-reading the list
// head each round because due may cancel entries still on it or (via
// Schedule) grow the slabs; no node pointer is held across the call.
func (w *Wheel[T]) fire(due func(id T, at time.Time)) {
	f := w.firing
	for {
		i := w.nodes[f].next
		if i == f {
			return
		}
		w.unlink(i)
		id, off := w.ids[i], w.nodes[i].at
		w.release(i)
		w.n--
		due(id, w.start.Add(time.Duration(off)))
	}
}

func (w *Wheel[T]) alloc() int32 {
	if i := w.free; i >= 0 {
		w.free = w.nodes[i].next
		return i
	}
	if len(w.nodes) >= maxNodes {
		panic("wheel: too many entries")
	}
	var zero T
	w.ids = append(w.ids, zero)
	w.nodes = append(w.nodes, node{})
	return int32(len(w.nodes) - 1)
}

// release zeroes the id so the wheel does not keep the caller's memory
// (e.g. id strings) alive, and bumps gen so outstanding Handles go stale.
func (w *Wheel[T]) release(i int32) {
	var zero T
	w.ids[i] = zero
	w.nodes[i] = node{next: w.free, prev: freeMark, gen: w.nodes[i].gen + 1}
	w.free = i
}

func (w *Wheel[T]) pushBack(head, i int32) {
	tail := w.nodes[head].prev
	w.nodes[i].prev = tail
	w.nodes[i].next = head
	w.nodes[tail].next = i
	w.nodes[head].prev = i
}

// unlink needs no knowledge of which list i is on, thanks to the sentinel
// heads; the slot's occupancy bit is cleared when i was its last entry
// (then prev and next are both the slot's sentinel).
func (w *Wheel[T]) unlink(i int32) {
	p, n := w.nodes[i].prev, w.nodes[i].next
	w.nodes[p].next = n
	w.nodes[n].prev = p
	if p == n && p < w.nslots {
		w.occ[p>>slotBits] &^= 1 << (p & slotMask)
	}
}

// spliceBack moves all of list src to the end of list dst in O(1).
func (w *Wheel[T]) spliceBack(src, dst int32) {
	first, last := w.nodes[src].next, w.nodes[src].prev
	if first == src {
		return
	}
	tail := w.nodes[dst].prev
	w.nodes[tail].next = first
	w.nodes[first].prev = tail
	w.nodes[last].next = dst
	w.nodes[dst].prev = last
	w.nodes[src].next, w.nodes[src].prev = src, src
}

// spliceFront moves all of list src to the front of list dst in O(1).
func (w *Wheel[T]) spliceFront(src, dst int32) {
	first, last := w.nodes[src].next, w.nodes[src].prev
	if first == src {
		return
	}
	head := w.nodes[dst].next
	w.nodes[dst].next = first
	w.nodes[first].prev = dst
	w.nodes[last].next = head
	w.nodes[head].prev = last
	w.nodes[src].next, w.nodes[src].prev = src, src
}
