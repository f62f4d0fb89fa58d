package store

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDeliveryIDs(t *testing.T) {
	shape := regexp.MustCompile(`^msg_[0-9a-f]{13}[a-z2-7]{13}$`)
	event := func(lsn uint64, i int) string { return fmt.Sprintf("evt_%016x%06x", lsn, i) }
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)

	t.Run("the same event and endpoint give the same id", func(t *testing.T) {
		if a, b := DeliveryID(t0, event(7, 1), "ep_a"), DeliveryID(t0, event(7, 1), "ep_a"); a != b {
			t.Fatalf("%s != %s", a, b)
		}
	})
	t.Run("ids have the documented shape and fit 32 bytes", func(t *testing.T) {
		for _, at := range []time.Time{t0, time.Unix(0, 0), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)} {
			if id := DeliveryID(at, event(0x16b3a28, 3), "ep_a"); !shape.MatchString(id) || len(id) > 32 {
				t.Errorf("%s: %s does not match %s", at, id, shape)
			}
		}
	})
	t.Run("ids sort in commit-time order, whatever the event and endpoint", func(t *testing.T) {
		var ids []string
		for k, at := range []time.Time{t0, t0.Add(time.Microsecond), t0.Add(time.Second), t0.Add(1000 * time.Hour)} {
			var of []string
			for i := range 3 {
				for _, ep := range []string{"ep_b", "ep_a", "ep_c"} {
					of = append(of, DeliveryID(at, event(uint64(100-k), i), ep))
				}
			}
			slices.Sort(of)
			ids = append(ids, of...)
		}
		if !slices.IsSorted(ids) {
			t.Fatalf("not in commit-time order: %v", ids)
		}
	})
	t.Run("each event and endpoint get their own id in one microsecond", func(t *testing.T) {
		seen := map[string]string{}
		for e := range 100 {
			for i := range 100 {
				key := fmt.Sprintf("%s ep_%d", event(1, e), i)
				id := DeliveryID(t0, event(1, e), fmt.Sprintf("ep_%d", i))
				if other, dup := seen[id]; dup {
					t.Fatalf("%s and %s share %s", key, other, id)
				}
				seen[id] = key
			}
		}
	})
	t.Run("the floor of a time is above every id before it and below every id from it on", func(t *testing.T) {
		floor := DeliveryIDFloor(t0)
		for _, c := range []struct {
			at    time.Time
			above bool
		}{
			{t0.Add(-time.Microsecond), false},
			{t0.Add(-time.Hour), false},
			{t0, true},
			{t0.Add(time.Microsecond), true},
			{t0.Add(1000 * time.Hour), true},
		} {
			for _, ep := range []string{"ep_a", "ep_b", "ep_zzzzzzzz"} {
				if id := DeliveryID(c.at, event(9, 0), ep); (id >= floor) != c.above {
					t.Errorf("%s at %s: id %s >= floor %s is %v", ep, c.at, id, floor, !c.above)
				}
			}
		}
	})
	t.Run("the commit LSN is not shown to receivers", func(t *testing.T) {
		if id := DeliveryID(t0, event(0xdeadbeef, 1), "ep_a"); strings.Contains(id, "deadbeef") {
			t.Fatalf("%s shows the LSN", id)
		}
	})
}

func TestEventIDsSortInCommitOrder(t *testing.T) {
	cases := []struct {
		lsn   uint64
		index int
		want  string
	}{
		{0, 0, "evt_0000000000000000000000"},
		{0x16b3a28, 3, "evt_00000000016b3a28000003"},
		{0x1_0000_0000, 0xabcdef, "evt_0000000100000000abcdef"},
		{^uint64(0), 0xffffff, "evt_ffffffffffffffffffffff"},
	}
	// Past 6 digits the index widens rather than wraps: ids stay unique.
	if got, want := EventID(7, 0x1000000), "evt_00000000000000071000000"; got != want {
		t.Errorf("EventID(7, 0x1000000) = %s, want %s", got, want)
	}
	for _, c := range cases {
		if got := EventID(c.lsn, c.index); got != c.want {
			t.Errorf("EventID(%#x, %d) = %s, want %s", c.lsn, c.index, got, c.want)
		}
	}
	for i := 1; i < len(cases); i++ {
		if a, b := EventID(cases[i-1].lsn, cases[i-1].index), EventID(cases[i].lsn, cases[i].index); a >= b {
			t.Errorf("%s does not sort before %s", a, b)
		}
	}
}
