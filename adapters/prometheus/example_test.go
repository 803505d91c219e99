package rseqprom_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	rseqprom "github.com/gorseq/rseq/adapters/prometheus"
	"github.com/gorseq/rseq/percpu"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A request counter and a latency histogram per route, served with promhttp
// as client_golang's own would be.
func Example() {
	reg := prometheus.NewRegistry()
	// Was: prometheus.NewCounterVec(...) and prometheus.NewHistogramVec(...).
	requests := rseqprom.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "Requests served.",
	}, []string{"route"})
	latency := rseqprom.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Time to serve.",
		Buckets: []float64{0.01, 0.1, 1},
	}, []string{"route"})
	reg.MustRegister(requests, latency)

	for _, d := range []float64{0.0078125, 0.0625, 0.5, 0.0625} { // exact in binary
		requests.WithLabelValues("/api").Inc()
		latency.WithLabelValues("/api").Observe(d)
	}

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) // 127.0.0.1
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "#") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// http_request_duration_seconds_bucket{route="/api",le="0.01"} 1
	// http_request_duration_seconds_bucket{route="/api",le="0.1"} 3
	// http_request_duration_seconds_bucket{route="/api",le="1"} 4
	// http_request_duration_seconds_bucket{route="/api",le="+Inf"} 4
	// http_request_duration_seconds_sum{route="/api"} 0.6328125
	// http_request_duration_seconds_count{route="/api"} 4
	// http_requests_total{route="/api"} 4
}

func ExampleNewCounter() {
	// Was: var bytesSent = prometheus.NewCounter(...)
	bytesSent := rseqprom.NewCounter(prometheus.CounterOpts{Name: "bytes_sent_total", Help: "Bytes sent."})
	bytesSent.Add(1500) // integer: one restartable section
	bytesSent.Add(0.5)  // fractional: a compare-and-store section
	bytesSent.Inc()
	fmt.Println(testutil.ToFloat64(bytesSent))
	// Output: 1501.5
}

func ExampleNewGauge() {
	inFlight := rseqprom.NewGauge(prometheus.GaugeOpts{Name: "in_flight", Help: "Requests in flight."})
	inFlight.Inc() // per-CPU
	inFlight.Inc()
	inFlight.Dec()
	fmt.Println(testutil.ToFloat64(inFlight))
	inFlight.Set(7) // not per-CPU: takes a mutex and swaps the sums
	fmt.Println(testutil.ToFloat64(inFlight))
	// Output:
	// 1
	// 7
}

func ExampleNewHistogram() {
	h := rseqprom.NewHistogram(prometheus.HistogramOpts{
		Name: "payload_bytes", Help: "Payload sizes.", Buckets: prometheus.ExponentialBuckets(64, 4, 4),
	})
	for _, n := range []float64{10, 100, 5000, 100000} {
		h.Observe(n)
	}
	s, err := h.Snapshot()
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Bounds, s.Counts, s.Count, s.Sum)
	// Output: [64 256 1024 4096] [1 1 0 0 2] 4 105110
}

// The route without this package: client_golang's function counter reads
// a percpu.Counter at scrape time.
func Example_counterFunc() {
	requests := percpu.NewCounter()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "requests_total", Help: "Requests served.",
	}, func() float64 { return float64(requests.Value()) }))

	for i := 0; i < 42; i++ {
		requests.Add(1) // one restartable section, inlined
	}
	n, err := testutil.GatherAndCount(reg, "requests_total")
	fmt.Println(n, err)
	fams, _ := reg.Gather()
	fmt.Println(fams[0].GetMetric()[0].GetCounter().GetValue())
	// Output:
	// 1 <nil>
	// 42
}
