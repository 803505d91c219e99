// Command service is an HTTP service instrumented with per-CPU metrics: it
// counts requests and records a latency histogram per route, and keeps a
// gauge of requests in flight, with the Prometheus adapter of
// github.com/gorseq/rseq (rseqprom), and serves them at /metrics.
//
// By default it measures what the metrics cost: it runs the same server
// twice over, once with rseqprom's metrics and once with client_golang's own
// Counter, Gauge and Histogram vectors, and drives each with the same
// bounded load generator (a child process that makes a fixed number of
// requests over keep-alive connections to 127.0.0.1 and exits). It reports
// the server process's CPU time per request (getrusage, user + system) for
// both, in alternating rounds, and checks that /metrics counted every
// request.
//
//	go run . [-requests 20000] [-conns 4] [-rounds 3] [-metrics-per-request 1]
//	go run . -serve 127.0.0.1:8080     # just serve, with rseqprom's metrics
//
// With -metrics-per-request K every request updates its metrics K times
// (as a handler that records several operations would), which makes their
// share of the CPU time visible beside the HTTP stack's.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	rseqprom "github.com/gorseq/rseq/adapters/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes are the service's endpoints (and the load generator's targets).
var routes = []string{"/api/items", "/api/users", "/static/app.js"}

// metrics are the instruments the handlers update, either rseqprom's or
// client_golang's: the same interfaces, so the handler code is the same.
type metrics struct {
	requests interface {
		WithLabelValues(...string) prometheus.Counter
	}
	inFlight prometheus.Gauge
	latency  prometheus.ObserverVec
	registry *prometheus.Registry
}

var (
	requestsOpts = prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests served, by route and status code."}
	inFlightOpts = prometheus.GaugeOpts{Name: "http_requests_in_flight", Help: "Requests being served."}
	latencyOpts  = prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Time to serve a request, by route.", Buckets: prometheus.DefBuckets}
)

// newMetrics makes the instruments of a variant ("rseq" or "client") and
// registers them.
func newMetrics(variant string) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	switch variant {
	case "rseq":
		m.requests = rseqprom.NewCounterVec(requestsOpts, []string{"route", "code"})
		m.inFlight = rseqprom.NewGauge(inFlightOpts)
		m.latency = rseqprom.NewHistogramVec(latencyOpts, []string{"route"})
	case "client":
		m.requests = prometheus.NewCounterVec(requestsOpts, []string{"route", "code"})
		m.inFlight = prometheus.NewGauge(inFlightOpts)
		m.latency = prometheus.NewHistogramVec(latencyOpts, []string{"route"})
	default:
		panic("unknown variant " + variant)
	}
	m.registry.MustRegister(m.requests.(prometheus.Collector), m.inFlight, m.latency)
	return m
}

// handler builds the service's mux: the routes, each instrumented, and
// /metrics.
func handler(m *metrics, perRequest int) http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		body := []byte(fmt.Sprintf(`{"route":%q,"items":[1,2,3]}`+"\n", r))
		mux.Handle(r, instrument(m, r, perRequest, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}))
	}
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	return mux
}

// instrument counts the request, times it and tracks it in flight, k
// times over.
func instrument(m *metrics, route string, k int, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for range k {
			m.inFlight.Inc()
		}
		start := time.Now()
		h(w, r)
		d := time.Since(start).Seconds()
		for range k {
			m.requests.WithLabelValues(route, "200").Inc()
			m.latency.WithLabelValues(route).Observe(d)
			m.inFlight.Dec()
		}
	}
}

// server is a running instance of the service on 127.0.0.1.
type server struct {
	srv *http.Server
	url string
}

func start(h http.Handler, addr string) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, url: "http://" + ln.Addr().String()}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *server) stop() { s.srv.Shutdown(context.Background()) }

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// result is one round of one variant.
type result struct {
	variant  string
	requests int
	cpu      time.Duration // the server process's
	wall     time.Duration
}

func (r result) cpuPerRequest() float64 {
	return float64(r.cpu.Nanoseconds()) / 1e3 / float64(r.requests)
}

// loadFunc drives n requests at base over conns connections.
type loadFunc func(base string, n, conns int) error

// childLoad runs the load generator as a child process (this program with
// GORSEQ_SERVICE_LOADGEN set), so that its CPU time is not the server's.
func childLoad(base string, n, conns int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "GORSEQ_SERVICE_LOADGEN="+base+" "+strconv.Itoa(n)+" "+strconv.Itoa(conns))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("load generator: %v\n%s", err, out)
	}
	return nil
}

// loadgenFromEnv runs the load generator if this process is one, and
// reports whether it was.
func loadgenFromEnv() bool {
	spec := os.Getenv("GORSEQ_SERVICE_LOADGEN")
	if spec == "" {
		return false
	}
	f := strings.Fields(spec)
	if len(f) != 3 {
		f = []string{"", "x", "x"}
	}
	n, err1 := strconv.Atoi(f[1])
	conns, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "bad GORSEQ_SERVICE_LOADGEN %q\n", spec)
		os.Exit(2)
	}
	if err := load(f[0], n, conns); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return true
}

// load makes n GET requests in all, round-robin over the routes, from
// conns goroutines with keep-alive connections, to a base URL on
// 127.0.0.1 only, and stops.
func load(base string, n, conns int) error {
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		return fmt.Errorf("load generator: %q is not on 127.0.0.1", base)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next sync.Mutex
	sent := 0
	errc := make(chan error, conns)
	for range conns {
		go func() {
			for {
				next.Lock()
				i := sent
				sent++
				next.Unlock()
				if i >= n {
					errc <- nil
					return
				}
				resp, err := client.Get(base + routes[i%len(routes)])
				if err != nil {
					errc <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errc <- fmt.Errorf("GET %s: %s", routes[i%len(routes)], resp.Status)
					return
				}
			}
		}()
	}
	var errs []error
	for range conns {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// round serves one variant under the load and checks its /metrics.
func round(variant string, n, conns, perRequest int, drive loadFunc) (result, error) {
	m := newMetrics(variant)
	s, err := start(handler(m, perRequest), "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	defer s.stop()
	t0, c0 := time.Now(), cpuTime()
	if err := drive(s.url, n, conns); err != nil {
		return result{}, err
	}
	r := result{variant: variant, requests: n, cpu: cpuTime() - c0, wall: time.Since(t0)}
	got, err := scrapeTotal(s.url)
	if err != nil {
		return r, err
	}
	if want := float64(n * perRequest); got != want {
		return r, fmt.Errorf("%s: /metrics counts %v requests, want %v", variant, got, want)
	}
	return r, nil
}

// scrapeTotal fetches /metrics and adds up http_requests_total.
func scrapeTotal(base string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var t float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "http_requests_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("/metrics line %q: %v", line, err)
		}
		t += v
	}
	return t, sc.Err()
}

// compare runs rounds of both variants, alternating which goes first, and
// returns every result.
func compare(rounds, n, conns, perRequest int, drive loadFunc) ([]result, error) {
	// A warm-up round of each: connections, code paths, the heap.
	for _, v := range []string{"rseq", "client"} {
		if _, err := round(v, min(n, 2000), conns, perRequest, drive); err != nil {
			return nil, err
		}
	}
	var out []result
	for i := range rounds {
		order := []string{"rseq", "client"}
		if i%2 == 1 {
			order = []string{"client", "rseq"}
		}
		for _, v := range order {
			r, err := round(v, n, conns, perRequest, drive)
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// medianCPU returns the median CPU µs per request of a variant's results.
func medianCPU(rs []result, variant string) (float64, int) {
	var v []float64
	for _, r := range rs {
		if r.variant == variant {
			v = append(v, r.cpuPerRequest())
		}
	}
	slices.Sort(v)
	switch {
	case len(v) == 0:
		return 0, 0
	case len(v)%2 == 1:
		return v[len(v)/2], len(v)
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, len(v)
}

func report(w io.Writer, rs []result, perRequest int) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-7s %6d requests  wall %7.1f ms  %8.0f req/s  server CPU %7.2f µs/request\n",
			r.variant, r.requests, float64(r.wall.Microseconds())/1e3, float64(r.requests)/r.wall.Seconds(), r.cpuPerRequest())
	}
	a, n := medianCPU(rs, "rseq")
	b, _ := medianCPU(rs, "client")
	fmt.Fprintf(w, "median over %d rounds, %d metric updates per request (a counter, a histogram, the in-flight gauge twice each time):\n", n, perRequest)
	fmt.Fprintf(w, "  rseqprom       %7.2f µs CPU/request\n", a)
	fmt.Fprintf(w, "  client_golang  %7.2f µs CPU/request\n", b)
	fmt.Fprintf(w, "  difference     %+7.2f µs/request (%+.1f%%)\n", b-a, (b-a)/b*100)
}

func main() {
	if loadgenFromEnv() {
		return
	}
	n := flag.Int("requests", 20000, "requests per round and variant")
	conns := flag.Int("conns", 4, "concurrent connections of the load generator")
	rounds := flag.Int("rounds", 3, "rounds of each variant (alternating)")
	perRequest := flag.Int("metrics-per-request", 1, "times each request updates its metrics")
	serve := flag.String("serve", "", "serve with rseqprom's metrics on this 127.0.0.1 address until interrupted, instead of measuring")
	flag.Parse()
	if *serve != "" {
		host, _, err := net.SplitHostPort(*serve)
		if err != nil || host != "127.0.0.1" {
			fmt.Fprintln(os.Stderr, "service: -serve takes a 127.0.0.1:PORT address")
			os.Exit(2)
		}
		s, err := start(handler(newMetrics("rseq"), 1), *serve)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("serving %v and %s/metrics\n", routes, s.url)
		select {}
	}
	if *n < 1 || *conns < 1 || *rounds < 1 || *perRequest < 1 {
		fmt.Fprintln(os.Stderr, "service: -requests, -conns, -rounds and -metrics-per-request must be at least 1")
		os.Exit(2)
	}
	rs, err := compare(*rounds, *n, *conns, *perRequest, childLoad)
	if err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
	report(os.Stdout, rs, *perRequest)
}
