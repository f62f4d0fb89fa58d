// Package wheel is walhook's in-memory index of scheduled retries: a
// hierarchical timing wheel mapping ids to due times.
//
// Retry state lives in Postgres; after a failed delivery walhook writes the
// next attempt time there and schedules the delivery's id here, so the
// wheel only answers "which ids are due now?" without polling the table.
// It holds no payloads, only (id, due time), and must stay cheap with
// millions of entries and horizons of days at ~100 ms resolution. A binary
// heap would do too, but costs O(log n) per schedule and cancel, a pointer
// per entry for the garbage collector to chase and poor cache behaviour on
// pop; the wheel is O(1) and pointer-free (see the heap comparison in
// BenchmarkHeapCompare).
//
// # Time model
//
// Time is passed in, never read from the clock, so the owner decides what
// "now" is and tests are deterministic. Ticks are the intervals
// [start+k*tick, start+(k+1)*tick). An entry's due time is kept at
// nanosecond precision and rounded UP to a tick boundary for firing: it is
// never delivered before its time and is delivered by the first Advance that
// reaches the end of the tick containing it. Rounding up rather than down is
// deliberate: a consumer may re-check the row's next-attempt time in
// Postgres, and an early wake-up would find nothing due and lose the retry.
//
// # Layout
//
// Five levels of 64 slots; level l's slots are 64^l ticks wide. With
// 100 ms ticks:
//
//	level  slot width   level span (64 slots)
//	0      100 ms       6.4 s
//	1      6.4 s        6 min 49.6 s
//	2      6.8 min      7 h 16 min
//	3      7.3 h        19.4 days
//	4      19.4 days    1242.8 days (2^30 ticks, ~3.4 years)
//	-      overflow     anything further
//
// Tick numbers are int64 counted from start, and placement is by bits, not
// by distance: an entry due at tick d goes to the level l holding the
// highest bit in which d differs from the current tick, slot
// (d >> 6l) & 63. When the clock enters that slot (all of the clock's
// digits above the slot now equal d's), the slot is emptied and each entry
// re-placed, which puts it strictly lower. Entries differing above the top
// level are parked on an overflow list that is rescanned whenever the clock
// crosses a multiple of 2^30 ticks (every ~3.4 years at 100 ms; more often
// with finer ticks), which moves the ones now within range into the levels.
// 64 slots per level makes each level's occupancy one uint64, so the next
// slot with work is found with one TrailingZeros64 per level, and Advance
// and NextDue skip arbitrarily long empty stretches in O(levels).
//
// Overdue entries (scheduled at or before the current tick boundary) go to
// a ready list delivered first by the next Advance, in scheduling order.
//
// # Invariants
//
//   - Never early: an entry is delivered only by an Advance whose now is at
//     or after the entry's due time rounded up to the tick grid (or, for
//     overdue entries, after the wheel's own clock already passed it).
//   - Never lost: every entry is on exactly one list (a slot, ready,
//     firing, overflow) until it is delivered or cancelled; every occupied
//     slot lies strictly after the clock's digit on its level, so the
//     cascade or delivery that empties it happens before the clock can move
//     past any of its entries' due ticks.
//   - Never late: Advance visits, in increasing order, every tick up to now
//     at which a slot cascades or fires, so an entry is delivered by the
//     Advance that reaches its rounded-up due time, in non-decreasing due
//     tick order (any order within a tick; overdue entries first).
//   - Bit s of a level's occupancy word is set iff slot s is non-empty;
//     Len is exactly the number of entries on lists.
//
// # Complexity
//
// Schedule O(1) amortised (slab append), Cancel O(1), NextDue O(levels).
// Advance: O(levels) per tick that has work, O(1) per delivered entry, and
// each entry moves at most levels-1 times in cascades; plus the overflow
// rescans described above.
//
// # Memory
//
// Entries live in two parallel slabs indexed by int32: the ids ([]T) and
// 24-byte pointer-free nodes (due time int64, next/prev int32 links of an
// intrusive circular doubly linked list per slot, 32-bit generation, 4
// bytes of padding). The garbage collector never scans the node slab, and
// with pointer-free ids it scans nothing at all. Beyond the id an entry
// costs 24 bytes, about 27 with append slack (BenchmarkMemory1M
// measures it at 1M entries; the budget is 64). A container/heap queue
// costs about the same bytes but one heap object and one pointer per entry. Lists use sentinel nodes at
// the front of the slab (320 slot heads plus ready, firing, overflow), so
// unlinking needs no knowledge of which list a node is on. Freed nodes are
// recycled through a free list and their ids zeroed so that the wheel does
// not retain the caller's memory; the slabs keep their high-water size.
//
// A Handle is {slab index, generation}. Every release bumps the node's
// generation, so a Handle to an entry that fired or was cancelled no longer
// matches even after the node is reused by a newer entry.
//
// # Concurrency
//
// A Wheel is not safe for concurrent use. Its owner goroutine serialises
// every call; there are no locks because the owner already serialises
// against its clock and its inbound channel, and a lock per operation
// would cost more than the operation. The due callback of Advance may call
// Schedule (retries reschedule themselves), Cancel, Len and NextDue, but not
// Advance.
package wheel
