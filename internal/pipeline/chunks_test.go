package pipeline

import (
	"fmt"
	"testing"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
)

func TestJobChunks(t *testing.T) {
	eps := make([]*route.Endpoint, maxChunkedEndpoints+1)
	for i := range eps {
		eps[i] = &route.Endpoint{Endpoint: &store.Endpoint{ID: fmt.Sprintf("ep_%d", i)}}
	}

	t.Run("an endpoint's jobs share chunks, other endpoints' do not", func(t *testing.T) {
		var c jobChunks
		a1, b1 := c.next(eps[0], 100), c.next(eps[1], 100)
		a2 := c.next(eps[0], 99)
		if &c.chunks[0][1] != a2 {
			t.Error("two jobs of one endpoint are not neighbours in one chunk")
		}
		if &c.chunks[1][0] != b1 || &c.chunks[0][0] != a1 {
			t.Error("jobs of two endpoints share a chunk")
		}
	})
	t.Run("a chunk holds at most the rows left, and 32", func(t *testing.T) {
		var c jobChunks
		c.next(eps[0], 1)
		if got := cap(c.chunks[0]); got != 1 {
			t.Errorf("a one-row transaction's chunk holds %d jobs, want 1", got)
		}
		var d jobChunks
		seen := map[*delivery.Job]bool{}
		for i := range 100 {
			j := d.next(eps[0], 100-i)
			if seen[j] {
				t.Fatalf("job %d handed out twice", i)
			}
			seen[j] = true
			if cap(d.chunks[0]) > 32 {
				t.Fatalf("a chunk of %d jobs", cap(d.chunks[0]))
			}
		}
	})
	t.Run("past the endpoints it tracks, jobs are single", func(t *testing.T) {
		var c jobChunks
		for _, ep := range eps[:maxChunkedEndpoints] {
			c.next(ep, 10)
		}
		j := c.next(eps[maxChunkedEndpoints], 10)
		if j == nil || len(c.eps) != maxChunkedEndpoints {
			t.Fatalf("job %p, %d endpoints tracked", j, len(c.eps))
		}
	})
}
