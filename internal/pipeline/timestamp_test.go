package pipeline

import (
	"testing"
	"time"
)

func TestParseTimestampAgreesWithTimeParse(t *testing.T) {
	tests := []string{
		"2026-11-24 07:45:43.123456+00",
		"2026-11-24 07:45:43+00",
		"2026-11-24 07:45:43.1+05:30",
		"2026-11-24 23:59:59.999999-08",
		"1999-12-31 23:00:00-00:25:21", // LMT offsets have seconds
		"2026-11-24 07:45:43.123456789+00",
		"2026-11-24 07:45:43.123456", // timestamp without time zone: time.Parse's job
		"2024-02-29 12:00:00+00",
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			got, err := parseTimestamp([]byte(s))
			if err != nil {
				t.Fatal(err)
			}
			var want time.Time
			for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07:00:00", "2006-01-02 15:04:05.999999999"} {
				if w, err := time.Parse(layout, s); err == nil {
					want = w
					break
				}
			}
			if !got.Equal(want) {
				t.Fatalf("parseTimestamp(%q) = %v, time.Parse says %v", s, got, want)
			}
		})
	}
	for _, bad := range []string{"", "yesterday", "2026-13-01 00:00:00+00", "2026-11-24T07:45:43Z", "2026-11-24 07:45:43.+00", "2026-11-24 07:45:43+0", "2026-02-31 00:00:00+00"} {
		if _, ok := parseISO([]byte(bad)); ok {
			t.Errorf("parseISO(%q) accepted it", bad)
		}
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	s := []byte("2026-11-24 07:45:43.123456+00")
	for b.Loop() {
		if _, err := parseTimestamp(s); err != nil {
			b.Fatal(err)
		}
	}
}
