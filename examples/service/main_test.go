package main

import (
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if loadgenFromEnv() { // the test binary doubles as the load generator
		return
	}
	os.Exit(m.Run())
}

// TestCompare runs a short comparison with the load generator as a child
// process: both variants serve every request and count them all in
// /metrics, and the report has both figures.
func TestCompare(t *testing.T) {
	rs, err := compare(2, 600, 3, 2, childLoad)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4", len(rs))
	}
	var b strings.Builder
	report(&b, rs, 2)
	t.Log("\n" + b.String())
	for _, v := range []string{"rseq", "client"} {
		if c, n := medianCPU(rs, v); c <= 0 || n != 2 {
			t.Errorf("%s: median %v over %d rounds", v, c, n)
		}
	}
}

// TestLoadOnlyLoopback: the load generator refuses other hosts.
func TestLoadOnlyLoopback(t *testing.T) {
	if err := load("http://example.com:80", 1, 1); err == nil {
		t.Fatal("load generator accepted a non-loopback target")
	}
}

// TestExposition: the rseq variant's /metrics has the three families with
// the routes as labels.
func TestExposition(t *testing.T) {
	m := newMetrics("rseq")
	s, err := start(handler(m, 1), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	if err := load(s.url, 30, 2); err != nil {
		t.Fatal(err)
	}
	total, err := scrapeTotal(s.url)
	if err != nil || total != 30 {
		t.Fatalf("http_requests_total sums to %v (%v), want 30", total, err)
	}
	fams, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, f := range fams {
		names[f.GetName()] = len(f.GetMetric())
	}
	if names["http_requests_total"] != 3 || names["http_request_duration_seconds"] != 3 || names["http_requests_in_flight"] != 1 {
		t.Fatalf("families %v", names)
	}
}
