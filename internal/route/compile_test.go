package route_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/signature"
	"github.com/walhook/walhook/internal/store"
)

func TestCompileSignsWithThePreviousSecretUntilItExpires(t *testing.T) {
	current, _ := signature.NewSecret()
	previous, _ := signature.NewSecret()
	tests := []struct {
		name        string
		previous    string
		expiresAt   time.Time
		wantCurrent bool
		wantPrev    bool
	}{
		{"no rotation", "", time.Time{}, true, false},
		{"in the overlap", previous, time.Now().Add(time.Hour), true, true},
		{"overlap without an end", previous, time.Time{}, true, true},
		{"overlap ended", previous, time.Now().Add(-time.Second), true, false},
	}
	body := []byte(`{"type":"x"}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := route.Compile(&store.Endpoint{ID: "ep_1", Secret: current, PreviousSecret: tt.previous, PreviousSecretExpiresAt: tt.expiresAt})
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			ep.Signer.Sign("msg_1", time.Now(), body).SetHeaders(h)
			verifies := func(secret string) bool {
				return signature.Verify(secret, h, body, time.Now(), 0) == nil
			}
			if verifies(current) != tt.wantCurrent || verifies(previous) != tt.wantPrev {
				t.Fatalf("verifies with current %v, previous %v; want %v, %v", verifies(current), verifies(previous), tt.wantCurrent, tt.wantPrev)
			}
		})
	}
}
