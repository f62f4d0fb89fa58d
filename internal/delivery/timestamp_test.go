package delivery

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTimestampAgreesWithAppendFormat(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000000Z07:00"
	rnd := rand.New(rand.NewPCG(1, 2))
	zone := time.FixedZone("odd", -(9*3600 + 30*60))
	times := []time.Time{time.Unix(0, 0), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, zone),
		time.Date(12026, 1, 2, 3, 4, 5, 6000, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	for range 10000 {
		times = append(times, time.Unix(rnd.Int64N(400_000_000_000)-62_000_000_000, rnd.Int64N(1e9)).In(zone))
	}
	for _, at := range times {
		if got, want := string(appendTimestamp(nil, at)), at.UTC().Format(layout); got != want {
			t.Fatalf("%v: %s, want %s", at, got, want)
		}
	}
}
