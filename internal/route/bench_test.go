package route_test

import (
	"fmt"
	"testing"

	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
)

// BenchmarkMatch routes events over 1,000 endpoints of 100 tenants, each
// with three patterns: cached (a type seen before) and uncached (the cost
// of the first event of a type).
func BenchmarkMatch(b *testing.B) {
	r := route.NewRouter()
	var eps []*store.Endpoint
	for i := range 1000 {
		eps = append(eps, &store.Endpoint{ID: fmt.Sprintf("ep_%d", i), URL: "https://example.com/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			TenantID: fmt.Sprintf("t%d", i%100), Active: true, EventTypes: []string{"order.*", "*.failed", fmt.Sprintf("custom.%d", i)}})
	}
	if err := r.Replace(eps); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		t := r.Table()
		b.ReportAllocs()
		for b.Loop() {
			if len(t.Match("t7", "order.created")) != 10 {
				b.Fatal("wrong match")
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		// Once the table's cache is full (10,000 tenant and type pairs),
		// a new pair is computed each time: the first event of a type.
		t := r.Table()
		for i := range 10000 {
			t.Match("t7", fmt.Sprintf("fill%d.failed", i))
		}
		types := make([]string, 1000)
		for i := range types {
			types[i] = fmt.Sprintf("payment%d.failed", i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if len(t.Match("t7", types[i%len(types)])) != 10 {
				b.Fatal("wrong match")
			}
			i++
		}
	})
}
