package rseqprom

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricSet is one of each kind, made by either this package or
// client_golang, with the same options.
type metricSet struct {
	counter  prometheus.Counter
	gauge    prometheus.Gauge
	hist     prometheus.Histogram
	counters interface {
		WithLabelValues(...string) prometheus.Counter
	}
	gauges interface {
		WithLabelValues(...string) prometheus.Gauge
	}
	hists    prometheus.ObserverVec
	registry *prometheus.Registry
}

var (
	counterOpts = prometheus.CounterOpts{Namespace: "test", Name: "requests_total", Help: "Requests.", ConstLabels: prometheus.Labels{"service": "s1"}}
	gaugeOpts   = prometheus.GaugeOpts{Namespace: "test", Name: "in_flight", Help: "In flight."}
	histOpts    = prometheus.HistogramOpts{Namespace: "test", Name: "latency_seconds", Help: "Latency.", Buckets: []float64{0.5, 1, 2, 5, 10}}
	vecLabels   = []string{"method", "route"}
)

func ours() *metricSet {
	r := prometheus.NewRegistry()
	s := &metricSet{
		counter:  NewCounter(counterOpts),
		gauge:    NewGauge(gaugeOpts),
		hist:     NewHistogram(histOpts),
		counters: NewCounterVec(prometheus.CounterOpts{Name: "vec_requests_total", Help: "By route."}, vecLabels),
		gauges:   NewGaugeVec(prometheus.GaugeOpts{Name: "vec_in_flight", Help: "By route."}, vecLabels),
		hists:    NewHistogramVec(prometheus.HistogramOpts{Name: "vec_latency_seconds", Help: "By route.", Buckets: histOpts.Buckets}, vecLabels),
		registry: r,
	}
	s.register()
	return s
}

func theirs() *metricSet {
	r := prometheus.NewRegistry()
	s := &metricSet{
		counter:  prometheus.NewCounter(counterOpts),
		gauge:    prometheus.NewGauge(gaugeOpts),
		hist:     prometheus.NewHistogram(histOpts),
		counters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vec_requests_total", Help: "By route."}, vecLabels),
		gauges:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vec_in_flight", Help: "By route."}, vecLabels),
		hists:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vec_latency_seconds", Help: "By route.", Buckets: histOpts.Buckets}, vecLabels),
		registry: r,
	}
	s.register()
	return s
}

func (s *metricSet) register() {
	s.registry.MustRegister(s.counter, s.gauge, s.hist,
		s.counters.(prometheus.Collector), s.gauges.(prometheus.Collector), s.hists)
}

var routes = []string{"/", "/api", "/static"}

// workload updates every metric of s from G goroutines, n times each, in a
// way whose result is known exactly (integer and binary-fraction values).
func workload(s *metricSet, G, n int) {
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				r := routes[(g+i)%len(routes)]
				s.counter.Inc()
				s.counter.Add(0.5)
				s.gauge.Inc()
				s.gauge.Add(2.25)
				s.gauge.Sub(1)
				s.gauge.Dec()
				s.hist.Observe(float64(i % 12))
				s.counters.WithLabelValues("GET", r).Inc()
				s.counters.WithLabelValues("POST", r).Add(2)
				s.gauges.WithLabelValues("GET", r).Add(0.25)
				s.hists.With(prometheus.Labels{"method": "GET", "route": r}).Observe(float64(i%7) / 2)
			}
		}()
	}
	wg.Wait()
}

// scrape serves the registry with promhttp on a loopback port, fetches
// /metrics and parses the text with the client's own parser.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, body)
	}
	return fams
}

// flat renders the families as sorted "name{labels} value" lines (and the
// histograms' buckets, count and sum), for comparing two scrapes.
func flat(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for name, f := range fams {
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			id := fmt.Sprintf("%s %s{%s}", f.GetType(), name, strings.Join(ls, ","))
			switch {
			case m.Counter != nil:
				out = append(out, fmt.Sprintf("%s %g", id, m.Counter.GetValue()))
			case m.Gauge != nil:
				out = append(out, fmt.Sprintf("%s %g", id, m.Gauge.GetValue()))
			case m.Histogram != nil:
				h := m.Histogram
				out = append(out, fmt.Sprintf("%s count %d sum %g", id, h.GetSampleCount(), h.GetSampleSum()))
				for _, b := range h.Bucket {
					out = append(out, fmt.Sprintf("%s le %g: %d", id, b.GetUpperBound(), b.GetCumulativeCount()))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestScrapeMatchesClientGolang: the same updates made concurrently to
// this package's metrics and to client_golang's give the same exposition
// over HTTP, and the values are the ones added.
func TestScrapeMatchesClientGolang(t *testing.T) {
	const G, n = 4, 3000
	a, b := ours(), theirs()
	workload(a, G, n)
	workload(b, G, n)
	fa, fb := scrape(t, a.registry), scrape(t, b.registry)
	la, lb := flat(fa), flat(fb)
	if strings.Join(la, "\n") != strings.Join(lb, "\n") {
		t.Fatalf("expositions differ:\nrseqprom:\n%s\nclient_golang:\n%s", strings.Join(la, "\n"), strings.Join(lb, "\n"))
	}
	t.Logf("%d identical series lines", len(la))

	// And against what was added.
	total := float64(G * n)
	if v := fa["test_requests_total"].Metric[0].Counter.GetValue(); v != 1.5*total {
		t.Errorf("counter %v, want %v", v, 1.5*total)
	}
	if v := fa["test_in_flight"].Metric[0].Gauge.GetValue(); v != 1.25*total {
		t.Errorf("gauge %v, want %v", v, 1.25*total)
	}
	h := fa["test_latency_seconds"].Metric[0].Histogram
	var wantSum float64
	for i := 0; i < n; i++ {
		wantSum += float64(i % 12)
	}
	if h.GetSampleCount() != uint64(total) || h.GetSampleSum() != wantSum*G {
		t.Errorf("histogram count %d sum %v, want %v and %v", h.GetSampleCount(), h.GetSampleSum(), total, wantSum*G)
	}
	var sumVec float64
	for _, m := range fa["vec_requests_total"].Metric {
		sumVec += m.Counter.GetValue()
	}
	if sumVec != 3*total || len(fa["vec_requests_total"].Metric) != 2*len(routes) {
		t.Errorf("vector counters sum to %v over %d series, want %v over %d", sumVec, len(fa["vec_requests_total"].Metric), 3*total, 2*len(routes))
	}
}

// TestConsistentUnderScrapes: scrapes taken while histograms are observed
// are internally consistent (count = +Inf bucket, sum matching the
// buckets) and never go back.
func TestConsistentUnderScrapes(t *testing.T) {
	s := ours()
	h := s.hist
	// Values 0.5, 1, 2, 5, 10, 20: one per bucket, so the sum follows from
	// the bucket counts.
	vals := []float64{0.5, 1, 2, 5, 10, 20}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h.Observe(vals[(i+g)%len(vals)])
			}
		}()
	}
	var prev uint64
	for k := 0; k < 20; k++ {
		m := scrape(t, s.registry)["test_latency_seconds"].Metric[0].Histogram
		var per []uint64
		var last uint64
		for _, b := range m.Bucket {
			per = append(per, b.GetCumulativeCount()-last)
			last = b.GetCumulativeCount()
		}
		// The text format lists the +Inf bucket too.
		if len(per) != len(vals) || last != m.GetSampleCount() {
			t.Fatalf("scrape %d: buckets %v, count %d", k, per, m.GetSampleCount())
		}
		var sum float64
		for i, c := range per {
			sum += float64(c) * vals[i]
		}
		if sum != m.GetSampleSum() {
			t.Fatalf("scrape %d inconsistent: count %d, buckets %v, sum %v (buckets stand for %v)", k, m.GetSampleCount(), per, m.GetSampleSum(), sum)
		}
		if m.GetSampleCount() < prev {
			t.Fatalf("count went back from %d to %d", prev, m.GetSampleCount())
		}
		prev = m.GetSampleCount()
	}
	close(stop)
	wg.Wait()
	if prev == 0 {
		t.Fatal("nothing observed")
	}
}

func TestCounterAdd(t *testing.T) {
	c := NewCounter(prometheus.CounterOpts{Name: "c", Help: "h"})
	c.Add(3)
	c.Add(0.25)
	c.Add(1e19) // beyond int64: the float part
	c.Inc()
	if got, want := c.Value(), 4.25+1e19; got != want {
		t.Fatalf("Value %v, want %v", got, want)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Add(-1) did not panic")
			}
		}()
		c.Add(-1)
	}()
	d := NewCounter(prometheus.CounterOpts{Name: "d", Help: "h"})
	d.Add(math.Inf(1))
	if !math.IsInf(d.Value(), 1) {
		t.Errorf("Add(+Inf): %v", d.Value())
	}
}

func TestGaugeSetAndAdds(t *testing.T) {
	g := NewGauge(prometheus.GaugeOpts{Name: "g", Help: "h"})
	g.Add(5)
	g.Add(-0.5)
	g.Set(10)
	g.Dec()
	g.Sub(0.25)
	if g.Value() != 8.75 {
		t.Fatalf("Value %v, want 8.75", g.Value())
	}
	// Adds racing with Sets: after the last Set, the value is that Set's
	// plus the adds ordered after it, a whole number of them.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20000; j++ {
				g.Inc()
			}
		}()
	}
	for j := 0; j < 100; j++ {
		g.Set(0.5)
	}
	wg.Wait()
	v := g.Value()
	if v < 0.5 || v > 0.5+80000 || v != math.Trunc(v)+0.5 {
		t.Fatalf("after racing Sets: %v", v)
	}
	before := time.Now().Unix()
	g.SetToCurrentTime()
	if v := g.Value(); v < float64(before) || v > float64(before+5) {
		t.Errorf("SetToCurrentTime: %v", v)
	}
}

func TestVectors(t *testing.T) {
	v := NewCounterVec(prometheus.CounterOpts{Name: "v", Help: "h"}, []string{"a", "b"})
	if _, err := v.GetMetricWithLabelValues("x"); err == nil {
		t.Error("one value for two labels accepted")
	}
	if _, err := v.GetMetricWith(prometheus.Labels{"a": "1", "c": "2"}); err == nil {
		t.Error("unknown label accepted")
	}
	if _, err := v.GetMetricWithLabelValues("x", "\xff"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	v.WithLabelValues("1", "2").Add(3)
	if c := v.With(prometheus.Labels{"b": "2", "a": "1"}); c.(*Counter).Value() != 3 {
		t.Errorf("With finds %v, want the counter at 3", c.(*Counter).Value())
	}
	cv := v.MustCurryWith(prometheus.Labels{"a": "1"})
	cv.WithLabelValues("2").Inc()
	cv.With(prometheus.Labels{"b": "3"}).Inc()
	if got := v.WithLabelValues("1", "2").(*Counter).Value(); got != 4 {
		t.Errorf("curried vector reached %v, want the same counter (4)", got)
	}
	if _, err := cv.CurryWith(prometheus.Labels{"a": "9"}); err == nil {
		t.Error("currying a curried label accepted")
	}
	if _, err := v.CurryWith(prometheus.Labels{"zz": "9"}); err == nil {
		t.Error("currying an unknown label accepted")
	}
	if n := testCount(v); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
	if !cv.DeleteLabelValues("3") || cv.DeleteLabelValues("3") {
		t.Error("DeleteLabelValues through the curried vector")
	}
	if !v.Delete(prometheus.Labels{"a": "1", "b": "2"}) {
		t.Error("Delete")
	}
	if n := testCount(v); n != 0 {
		t.Errorf("%d series after deleting both, want 0", n)
	}
	if got := v.WithLabelValues("1", "2").(*Counter).Value(); got != 0 {
		t.Errorf("a deleted label set came back at %v", got)
	}
	v.Reset()
	if n := testCount(v); n != 0 {
		t.Errorf("%d series after Reset", n)
	}

	hv := NewHistogramVec(prometheus.HistogramOpts{Name: "hv", Help: "h"}, []string{"route"})
	hv.WithLabelValues("/").Observe(0.1)
	o, err := hv.CurryWith(prometheus.Labels{"route": "/x"})
	if err != nil {
		t.Fatal(err)
	}
	o.WithLabelValues().Observe(1)
	s, _ := hv.WithLabelValues("/x").(*Histogram).Snapshot()
	if s.Count != 1 || len(s.Bounds) != len(prometheus.DefBuckets) {
		t.Errorf("curried histogram: %+v", s)
	}
	gv := NewGaugeVec(prometheus.GaugeOpts{Name: "gv", Help: "h"}, []string{"k"})
	gv.WithLabelValues("a").Set(2)
	gv.With(prometheus.Labels{"k": "a"}).Add(1)
	if got := gv.WithLabelValues("a").(*Gauge).Value(); got != 3 {
		t.Errorf("gauge vector: %v", got)
	}
}

func testCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// TestVectorManyLabelSets: label sets made concurrently by many goroutines
// (forcing hash chains and copies of the read map) all count exactly.
func TestVectorManyLabelSets(t *testing.T) {
	v := NewCounterVec(prometheus.CounterOpts{Name: "many", Help: "h"}, []string{"id"})
	const G, sets, rounds = 4, 500, 20
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for i := 0; i < sets; i++ {
					v.WithLabelValues(fmt.Sprint((i*7 + g) % sets)).Inc()
				}
			}
		}()
	}
	wg.Wait()
	if n := testCount(v); n != sets {
		t.Fatalf("%d series, want %d", n, sets)
	}
	for i := 0; i < sets; i++ {
		if got := v.WithLabelValues(fmt.Sprint(i)).(*Counter).Value(); got != G*rounds {
			t.Fatalf("id %d: %v, want %d", i, got, G*rounds)
		}
	}
	// A forced collision: two label sets in one hash chain.
	core := v.v.core
	core.mu.Lock()
	e := core.all[hashValues([]string{"0"})]
	fake := &entry[*Counter]{lvs: []string{"collides"}, m: newCounter(core.desc, []string{"collides"}), next: e}
	core.all[hashValues([]string{"0"})] = fake
	core.publish()
	core.mu.Unlock()
	if got := v.WithLabelValues("0").(*Counter).Value(); got != G*rounds {
		t.Fatalf("behind a colliding entry: %v", got)
	}
	if !v.DeleteLabelValues("0") {
		t.Fatal("delete behind a colliding entry")
	}
	core.mu.Lock()
	if head := core.all[hashValues([]string{"0"})]; head == nil || head.lvs[0] != "collides" || head.next != nil {
		t.Fatalf("chain after delete: %+v", head)
	}
	core.mu.Unlock()
}

// TestNoAllocations: the hot paths allocate nothing once the label set
// exists.
func TestNoAllocations(t *testing.T) {
	c := NewCounter(prometheus.CounterOpts{Name: "c", Help: "h"})
	h := NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h"})
	v := NewCounterVec(prometheus.CounterOpts{Name: "v", Help: "h"}, []string{"method", "route"})
	hv := NewHistogramVec(prometheus.HistogramOpts{Name: "hv", Help: "h"}, []string{"route"})
	labels := prometheus.Labels{"method": "GET", "route": "/"}
	v.With(labels).Inc()
	hv.WithLabelValues("/").Observe(1)
	cv := v.MustCurryWith(prometheus.Labels{"method": "GET"})
	for name, f := range map[string]func(){
		"Counter.Add":                  func() { c.Add(1) },
		"Counter.Add(float)":           func() { c.Add(0.5) },
		"Histogram.Observe":            func() { h.Observe(0.3) },
		"CounterVec.With":              func() { v.With(labels).Inc() },
		"CounterVec.WithLabelValues":   func() { v.WithLabelValues("GET", "/").Inc() },
		"curried WithLabelValues":      func() { cv.WithLabelValues("/").Inc() },
		"HistogramVec.WithLabelValues": func() { hv.WithLabelValues("/").Observe(2) },
	} {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s allocates %v times", name, a)
		}
	}
}

func TestNativeHistogramsRefused(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "native") {
			t.Errorf("recovered %v, want a panic about native histograms", r)
		}
	}()
	NewHistogram(prometheus.HistogramOpts{Name: "n", Help: "h", NativeHistogramBucketFactor: 1.1})
}
