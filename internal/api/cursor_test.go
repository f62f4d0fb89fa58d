package api

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/store"
)

func TestCursorRoundTripsExactly(t *testing.T) {
	keys := []store.PageKey{
		{CreatedAt: time.Date(2026, 11, 24, 4, 18, 13, 123456000, time.UTC), ID: "msg_abc"},
		{CreatedAt: time.Unix(0, 0).UTC(), ID: "evt_00000000000000000000"},
		{CreatedAt: time.Date(1999, 1, 1, 0, 0, 0, 1000, time.UTC), ID: "id.with.dots"},
	}
	for _, k := range keys {
		got, err := decodeCursor(encodeCursor(k))
		if err != nil || !got.CreatedAt.Equal(k.CreatedAt) || got.ID != k.ID {
			t.Errorf("round trip of %+v: %+v, %v", k, got, err)
		}
	}
}

func TestForgedCursorsAreRefused(t *testing.T) {
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, c := range map[string]string{
		"not base64":     "%%%",
		"no separator":   raw("1234"),
		"no id":          raw("1234."),
		"time not a int": raw("soon.msg_a"),
		"id too long":    raw("1." + string(make([]byte, 101))),
		"padded base64":  base64.URLEncoding.EncodeToString([]byte("1.ab")), // "MS5hYg==",
	} {
		if _, err := decodeCursor(c); err == nil {
			t.Errorf("%s: %q accepted", name, c)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(store.PageKey{CreatedAt: time.Now(), ID: "msg_x"}))
	f.Add("")
	f.Fuzz(func(t *testing.T, c string) {
		k, err := decodeCursor(c)
		if err != nil {
			return
		}
		if again, err := decodeCursor(encodeCursor(k)); err != nil || again != k {
			t.Fatalf("%q decodes to %+v, which does not round-trip: %+v, %v", c, k, again, err)
		}
	})
}
