package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/walhook/walhook/internal/metrics"
)

func TestPerEndpointLabelsAreOptInAndCapped(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.EndpointOutcome("ep_1", "delivered") // off: nothing exported
	if n := testutil.CollectAndCount(reg, "walhook_endpoint_deliveries_total"); n != 0 {
		t.Fatalf("per-endpoint series without opting in: %d", n)
	}
	m.PerEndpoint(reg, 2)
	for _, id := range []string{"ep_1", "ep_2", "ep_3", "ep_4", "ep_1"} {
		m.EndpointOutcome(id, "delivered")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "walhook_endpoint_deliveries_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "endpoint_id" {
					got[l.GetValue()] = s.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"ep_1": 2, "ep_2": 1, "_other": 2}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v (2 endpoints, then _other)", got, want)
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("%s: %v, want %v", id, got[id], n)
		}
	}
}

func TestIncCountsOnTheVectorsChildren(t *testing.T) {
	m := metrics.Discard()
	tests := []struct {
		name  string
		vec   *prometheus.CounterVec
		label string
	}{
		{"a label resolved in New", m.Attempts, metrics.Class2xx},
		{"another vector's label", m.Deliveries, "failed"},
		{"a label not resolved ahead", m.Events, "something_new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.Inc(tt.vec, tt.label)
			m.Inc(tt.vec, tt.label)
			if got := testutil.ToFloat64(tt.vec.WithLabelValues(tt.label)); got != 2 {
				t.Fatalf("counter %s = %v, want 2", tt.label, got)
			}
		})
	}
}
