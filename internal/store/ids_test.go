package store

import (
	"fmt"
	"regexp"
	"slices"
	"testing"
)

func TestDeliveryIDs(t *testing.T) {
	shape := regexp.MustCompile(`^msg_[0-9a-f]{22}[a-z2-7]{13}$`)
	event := func(lsn uint64, i int) string { return fmt.Sprintf("evt_%016x%06x", lsn, i) }
	endpoints := []string{"ep_b", "ep_a", "ep_c"}

	t.Run("the same event and endpoint give the same id", func(t *testing.T) {
		if a, b := DeliveryID(event(7, 1), "ep_a"), DeliveryID(event(7, 1), "ep_a"); a != b {
			t.Fatalf("%s != %s", a, b)
		}
	})
	t.Run("ids have the documented shape", func(t *testing.T) {
		if id := DeliveryID(event(0x16b3a28, 3), "ep_a"); !shape.MatchString(id) {
			t.Fatalf("%s does not match %s", id, shape)
		}
	})
	t.Run("ids sort in the order of their events, whatever the endpoint", func(t *testing.T) {
		var ids []string
		for _, lsn := range []uint64{0x10, 0x11, 0x1_0000_0000} {
			for i := range 3 {
				var of []string
				for _, ep := range endpoints {
					of = append(of, DeliveryID(event(lsn, i), ep))
				}
				slices.Sort(of)
				ids = append(ids, of...)
			}
		}
		if !slices.IsSorted(ids) {
			t.Fatalf("not in event order: %v", ids)
		}
	})
	t.Run("each endpoint of an event gets its own id", func(t *testing.T) {
		seen := map[string]string{}
		for i := range 10000 {
			ep := fmt.Sprintf("ep_%d", i)
			id := DeliveryID(event(1, 0), ep)
			if other, dup := seen[id]; dup {
				t.Fatalf("%s and %s share %s", ep, other, id)
			}
			seen[id] = ep
		}
	})
	t.Run("an event's id is the prefix of its deliveries' ids", func(t *testing.T) {
		ev := NewID("evt_") // a test send's event
		if id := DeliveryID(ev, "ep_a"); id[:4+26] != "msg_"+ev[4:] {
			t.Fatalf("%s does not start with the body of %s", id, ev)
		}
	})
}
