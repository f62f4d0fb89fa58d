package delivery_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/waitfor"
)

// switchServer answers with a status the test changes, and can hold
// requests until the test lets one go.
type switchServer struct {
	*httptest.Server
	status  atomic.Int32
	hold    atomic.Bool
	release chan struct{}
	once    sync.Once
	total   atomic.Int32
}

func newSwitchServer(t *testing.T, status int) *switchServer {
	t.Helper()
	s := &switchServer{release: make(chan struct{})}
	s.status.Store(int32(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.total.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // so r.Context ends when the client gives up
		if s.hold.Load() {
			select {
			case <-s.release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { s.once.Do(func() { close(s.release) }) })
	return s
}

func (s *switchServer) requests() int { return int(s.total.Load()) }

// submitAndWait submits a job and waits for its result.
func (b *bundle) submitAndWait(t *testing.T, j *delivery.Job) (delivery.Result, time.Time) {
	t.Helper()
	before := b.sink.resultsOf(j.DeliveryID)
	b.d.Submit(j)
	waitfor.True(t, "the result of "+j.DeliveryID, 10*time.Second, func() bool { return b.sink.resultsOf(j.DeliveryID) > before })
	r, at, _ := b.sink.result(j.DeliveryID)
	return r, at
}

func TestCircuitBreakerParksThenProbesWithGrowingCooldown(t *testing.T) {
	const cooldown, maxCooldown = 150 * time.Millisecond, 300 * time.Millisecond
	const slack = 30 * time.Millisecond // between the breaker's timer starting and the result reaching the sink
	srv := newSwitchServer(t, http.StatusInternalServerError)
	b := setup(t, func(o *delivery.Options) {
		o.EndpointInflight = 1
		o.Breaker = delivery.Breaker{Failures: 3, Cooldown: cooldown, MaxCooldown: maxCooldown}
	})
	ep := newEndpoint(t, "ep_cb", srv.URL)
	job := func(id string) *delivery.Job {
		j := newJob(ep, id)
		j.MaxAttempts = 100
		return j
	}
	circuit := func() string { return b.d.Circuits()["ep_cb"] }

	// Three failures open the circuit; the jobs queued behind them wait.
	for i := 1; i <= 5; i++ {
		b.d.Submit(job(fmt.Sprintf("msg_cb%d", i)))
	}
	waitfor.True(t, "3 failures and 2 parked", 10*time.Second, func() bool {
		return b.sink.resultCount() == 3 && len(b.sink.parked()) == 2
	})
	if want := [][2]string{{"ep_cb", "msg_cb4"}, {"ep_cb", "msg_cb5"}}; fmt.Sprint(b.sink.parked()) != fmt.Sprint(want) {
		t.Fatalf("parked %v, want %v", b.sink.parked(), want)
	}
	first, _, _ := b.sink.result("msg_cb1")
	_, opened, _ := b.sink.result("msg_cb3")
	if h := b.sink.healthOf("ep_cb"); len(h) != 1 || !h[0].FailingSince.Equal(first.Attempt.StartedAt) || h[0].Disable != "" {
		t.Fatalf("health %+v; want failing_since recorded once, at the first failure (%v)", h, first.Attempt.StartedAt)
	}
	if c, acc := circuit(), b.d.Accepting("ep_cb"); c != "open" || acc {
		t.Fatalf("circuit %q, accepting %v; want open and not accepting", c, acc)
	}
	b.d.Submit(job("msg_cb6"))
	if p := b.sink.parked(); len(p) != 3 || p[2][1] != "msg_cb6" || srv.requests() != 3 {
		t.Fatalf("with the circuit open: parked %v, %d requests; want msg_cb6 parked unsent", p, srv.requests())
	}

	// After the cooldown one parked delivery is asked for, as the probe.
	waitfor.True(t, "a probe to be asked for", 5*time.Second, func() bool { return len(b.res.of("ep_cb")) == 1 })
	r := b.res.of("ep_cb")[0]
	if gap := r.at.Sub(opened); r.n != 1 || gap < cooldown-slack {
		t.Fatalf("Resume(n=%d) %s after the circuit opened; want n=1 after %s", r.n, gap, cooldown)
	}
	// Half-open with no probe under way, it takes one delivery: the
	// next to arrive becomes the probe, even one parked after the Resume.
	if c := circuit(); c != "half-open" || !b.d.Accepting("ep_cb") {
		t.Fatalf("circuit %q; want half-open, accepting its probe", c)
	}
	srv.hold.Store(true)
	b.d.Submit(job("msg_cb4"))
	waitfor.True(t, "the probe under way", 10*time.Second, func() bool { return srv.requests() == 4 })
	b.d.Submit(job("msg_cb5")) // only one probe at a time
	if p := b.sink.parked(); len(p) != 4 || p[3][1] != "msg_cb5" {
		t.Fatalf("a second job during the probe was not parked: %v", p)
	}
	srv.hold.Store(false)
	srv.release <- struct{}{}
	waitfor.True(t, "the probe to fail", 10*time.Second, func() bool { return b.sink.resultsOf("msg_cb4") == 1 })
	_, probeFailed, _ := b.sink.result("msg_cb4")

	// A failed probe doubles the cooldown...
	waitfor.True(t, "a second probe to be asked for", 5*time.Second, func() bool { return len(b.res.of("ep_cb")) == 2 })
	if gap := b.res.of("ep_cb")[1].at.Sub(probeFailed); gap < 2*cooldown-slack {
		t.Fatalf("second probe asked for %s after the first failed; want the doubled cooldown %s", gap, 2*cooldown)
	}
	_, probeFailed = b.submitAndWait(t, job("msg_cb4"))
	// ...up to MaxCooldown.
	waitfor.True(t, "a third probe to be asked for", 5*time.Second, func() bool { return len(b.res.of("ep_cb")) == 3 })
	if gap := b.res.of("ep_cb")[2].at.Sub(probeFailed); gap < maxCooldown-slack || gap >= 2*maxCooldown-50*time.Millisecond {
		t.Fatalf("third probe asked for %s after the second failed; want MaxCooldown %s", gap, maxCooldown)
	}
	if h := b.sink.healthOf("ep_cb"); len(h) != 1 {
		t.Fatalf("failed probes recorded health again: %+v", h)
	}

	// A successful probe closes the circuit and releases every parked delivery.
	srv.status.Store(http.StatusOK)
	res, _ := b.submitAndWait(t, job("msg_cb4"))
	if res.Delivery.Status != store.StatusDelivered {
		t.Fatalf("probe result %s", res.Delivery.Status)
	}
	waitfor.True(t, "the parked deliveries released", 5*time.Second, func() bool { return len(b.res.of("ep_cb")) == 4 })
	if r := b.res.of("ep_cb")[3]; r.n != 0 {
		t.Fatalf("after a successful probe Resume(n=%d), want all (0)", r.n)
	}
	h := b.sink.healthOf("ep_cb")
	if len(h) != 2 || !h[1].FailingSince.IsZero() || h[1].Disable != "" {
		t.Fatalf("health %+v; want the failure run cleared", h)
	}
	if c, acc := circuit(), b.d.Accepting("ep_cb"); c != "" || !acc {
		t.Fatalf("circuit %q, accepting %v after success; want closed", c, acc)
	}
	parks := len(b.sink.parked())
	b.submitAndWait(t, job("msg_cb5"))
	b.submitAndWait(t, job("msg_cb6"))
	if len(b.sink.parked()) != parks || srv.requests() != 3+3+2 {
		t.Fatalf("after closing: parked %v, %d requests; want 8 requests and no more parking", b.sink.parked(), srv.requests())
	}
}

func TestFailingSinceIsRecordedAtTheThresholdAndCleared(t *testing.T) {
	recorded := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		failures int
		stored   time.Time // the endpoint's failing_since as loaded
		codes    []int
		want     []int // per health change: index of the attempt whose start it records; -1: cleared
	}{
		{"a run shorter than the threshold is not recorded", 3, time.Time{}, []int{500, 500, 200, 500}, nil},
		{"without a breaker the first failure is recorded", 0, time.Time{}, []int{500, 502, 200}, []int{0, -1}},
		{"the threshold records the run's start", 2, time.Time{}, []int{500, 500}, []int{0}},
		{"a new run after a success is recorded again", 0, time.Time{}, []int{500, 200, 503}, []int{0, -1, 2}},
		{"a stored run is cleared by the first success only", 0, recorded, []int{200, 200}, []int{-1}},
		{"a stored run is not recorded again", 0, recorded, []int{500, 500}, nil},
		{"after clearing a stored run a new one is recorded", 0, recorded, []int{200, 500}, []int{-1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSwitchServer(t, 200)
			b := setup(t, func(o *delivery.Options) {
				o.Breaker = delivery.Breaker{Failures: tt.failures, Cooldown: time.Hour, MaxCooldown: time.Hour}
			})
			ep := newEndpoint(t, "ep_fs", srv.URL, func(e *store.Endpoint) { e.FailingSince = tt.stored })
			var starts []time.Time
			for i, code := range tt.codes {
				srv.status.Store(int32(code))
				res, _ := b.submitAndWait(t, newJob(ep, fmt.Sprintf("msg_fs%d", i)))
				starts = append(starts, res.Attempt.StartedAt)
			}
			got := b.sink.healthOf("ep_fs")
			var want []store.EndpointHealth
			for _, i := range tt.want {
				h := store.EndpointHealth{EndpointID: "ep_fs"}
				if i >= 0 {
					h.FailingSince = starts[i]
				}
				want = append(want, h)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("health changes\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestFailingLongerThanDisableAfterDisables(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	srv := newSwitchServer(t, http.StatusBadGateway)
	b := setup(t, func(o *delivery.Options) {
		o.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
		o.DisableAfter = time.Hour
	})
	ep := newEndpoint(t, "ep_da", srv.URL)
	disables := func() []string {
		var out []string
		for _, h := range b.sink.healthOf("ep_da") {
			if h.Disable != "" {
				out = append(out, h.Disable)
			}
		}
		return out
	}

	b.submitAndWait(t, newJob(ep, "msg_da1"))
	clock.Add(int64(59 * time.Minute))
	res, _ := b.submitAndWait(t, newJob(ep, "msg_da2"))
	if d := disables(); len(d) != 0 || res.Delivery.Status != store.StatusRetrying {
		t.Fatalf("disabled after 59m of failures (%q) or not retried (%s)", d, res.Delivery.Status)
	}
	clock.Add(int64(time.Minute))
	res, _ = b.submitAndWait(t, newJob(ep, "msg_da3"))
	d := disables()
	if len(d) != 1 || !strings.Contains(d[0], "every attempt failed since 2026-01-01T00:00:00Z") || !strings.Contains(d[0], "3 in a row") {
		t.Fatalf("disable reasons %q; want one naming the start of the run and the count", d)
	}
	if res.Delivery.Status != store.StatusRetrying {
		t.Fatalf("the attempt that disabled the endpoint left its delivery %s; want retrying (held)", res.Delivery.Status)
	}
	if c, acc := b.d.Circuits()["ep_da"], b.d.Accepting("ep_da"); c != "disabled" || acc {
		t.Fatalf("circuit %q, accepting %v; want disabled", c, acc)
	}
	b.d.Submit(newJob(ep, "msg_da4"))
	if p := b.sink.parked(); len(p) != 1 || p[0][1] != "msg_da4" || srv.requests() != 3 {
		t.Fatalf("parked %v after %d requests; want msg_da4 held unsent", p, srv.requests())
	}
	clock.Add(int64(time.Hour))
	if d := disables(); len(d) != 1 {
		t.Fatalf("disabled again: %q", d)
	}
	changed := *ep.Endpoint
	changed.Active = true
	b.d.EndpointChanged(&changed, ep.URL)
	if r := b.res.of("ep_da"); len(r) != 1 || r[0].n != 0 {
		t.Fatalf("re-enabling resumed %v; want Resume(ep_da, 0)", r)
	}
	if c, acc := b.d.Circuits()["ep_da"], b.d.Accepting("ep_da"); c != "" || !acc {
		t.Fatalf("after re-enabling: circuit %q, accepting %v", c, acc)
	}
}

func TestEndpointChangedResetsTheBreaker(t *testing.T) {
	tests := []struct {
		name      string
		tripWith  int // 500 opens the circuit after 2 failures; 410 disables at once
		newURL    bool
		active    bool
		wantState string
		wantReset bool
	}{
		{"a new URL closes an open circuit", 500, true, true, "open", true},
		{"re-enabling after 410 closes the circuit", 410, false, true, "disabled", true},
		{"re-enabling with a new URL", 410, true, true, "disabled", true},
		{"the same URL keeps an open circuit", 500, false, true, "open", false},
		{"paused with a new URL stays held", 500, true, false, "open", false},
		{"still disabled stays held", 410, false, false, "disabled", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failing := newSwitchServer(t, tt.tripWith)
			good := newSwitchServer(t, http.StatusOK)
			b := setup(t, func(o *delivery.Options) {
				o.EndpointInflight = 1
				o.Breaker = delivery.Breaker{Failures: 2, Cooldown: time.Hour, MaxCooldown: time.Hour}
			})
			ep := newEndpoint(t, "ep_ch", failing.URL)
			b.submitAndWait(t, newJob(ep, "msg_ch1"))
			if tt.tripWith != http.StatusGone {
				b.submitAndWait(t, newJob(ep, "msg_ch2"))
			}
			if c := b.d.Circuits()["ep_ch"]; c != tt.wantState {
				t.Fatalf("circuit %q, want %q", c, tt.wantState)
			}

			changed := *ep.Endpoint
			changed.Active = tt.active
			if tt.newURL {
				changed.URL = good.URL
			}
			b.d.EndpointChanged(&changed, ep.URL)
			resumes := b.res.of("ep_ch")
			next := newJob(newEndpoint(t, "ep_ch", changed.URL), "msg_ch3")
			parks := len(b.sink.parked())
			if !tt.wantReset {
				if len(resumes) != 0 || b.d.Circuits()["ep_ch"] != tt.wantState || b.d.Accepting("ep_ch") {
					t.Fatalf("reset: resumed %v, circuit %q; want it kept %s", resumes, b.d.Circuits()["ep_ch"], tt.wantState)
				}
				b.d.Submit(next)
				if len(b.sink.parked()) != parks+1 {
					t.Fatal("a job was not parked while the endpoint stays held")
				}
				return
			}
			if len(resumes) != 1 || resumes[0].n != 0 {
				t.Fatalf("resumed %v; want Resume(ep_ch, 0)", resumes)
			}
			if c, acc := b.d.Circuits()["ep_ch"], b.d.Accepting("ep_ch"); c != "" || !acc {
				t.Fatalf("circuit %q, accepting %v; want closed", c, acc)
			}
			b.submitAndWait(t, next)
			if len(b.sink.parked()) != parks {
				t.Fatal("a job was parked after the reset")
			}
		})
	}
}
