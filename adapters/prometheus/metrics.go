package rseqprom

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorseq/rseq/percpu"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sum is a float64 total kept per CPU: integer adds go to an int64
// percpu.Counter (one restartable section), the others to a
// percpu.Float64Counter made on the first of them.
type sum struct {
	ints   *percpu.Counter
	floats atomic.Pointer[percpu.Float64Counter]
}

func newSum() sum { return sum{ints: percpu.NewCounter()} }

// add adds v: inlined up to the section for integers (those of magnitude
// below 2^63 convert exactly; NaN and the infinities fail the comparison).
func (s *sum) add(v float64) {
	if i := int64(v); float64(i) == v && v < 0x1p63 {
		s.ints.Add(i)
		return
	}
	s.addFloat(v)
}

// addFloat adds a v that is not an integer to the float part.
func (s *sum) addFloat(v float64) { s.floatPart().Add(v) }

// floatPart returns the float part, making it on first use.
func (s *sum) floatPart() *percpu.Float64Counter {
	if f := s.floats.Load(); f != nil {
		return f
	}
	s.floats.CompareAndSwap(nil, percpu.NewFloat64Counter())
	return s.floats.Load()
}

// value returns the total.
func (s *sum) value() float64 {
	v := float64(s.ints.Value())
	if f := s.floats.Load(); f != nil {
		v += f.Load()
	}
	return v
}

// desc builds the metric's description from client_golang's options.
func desc(o prometheus.Opts, labelNames []string) *prometheus.Desc {
	return prometheus.V2.NewDesc(
		prometheus.BuildFQName(o.Namespace, o.Subsystem, o.Name),
		o.Help,
		prometheus.UnconstrainedLabels(labelNames),
		o.ConstLabels,
		prometheus.WithUnit(o.Unit),
	)
}

// Counter is a prometheus.Counter whose value is kept per CPU (see the
// package documentation). Make it with NewCounter, or get it from a
// CounterVec; it implements prometheus.Counter, and so prometheus.Metric
// and prometheus.Collector.
type Counter struct {
	sum
	desc        *prometheus.Desc
	labelValues []string
	created     time.Time
}

var _ prometheus.Counter = (*Counter)(nil)

// NewCounter returns a Counter at zero, described by opts as
// prometheus.NewCounter's is. Register it with a prometheus.Registerer.
func NewCounter(opts prometheus.CounterOpts) *Counter {
	return newCounter(desc(prometheus.Opts(opts), nil), nil)
}

func newCounter(d *prometheus.Desc, labelValues []string) *Counter {
	return &Counter{sum: newSum(), desc: d, labelValues: labelValues, created: time.Now()}
}

// Inc adds 1: one restartable section.
func (c *Counter) Inc() { c.ints.Add(1) }

// Add adds v, which must not be negative (Add panics then, as
// client_golang's counter does). An integer v is one restartable section;
// any other a compare-and-store section on the float part.
func (c *Counter) Add(v float64) {
	if v < 0 {
		negativeAdd()
	}
	c.add(v)
}

// negativeAdd panics as client_golang's counter does for a negative Add
// (apart, so that Add stays inlinable).
func negativeAdd() { panic(errors.New("counter cannot decrease in value")) }

// Value returns the counter's value: the sum of its shards (not a
// snapshot: adds running meanwhile may or may not be included).
func (c *Counter) Value() float64 { return c.value() }

// Desc returns the counter's description (prometheus.Metric).
func (c *Counter) Desc() *prometheus.Desc { return c.desc }

// Write writes the counter's value, labels and creation time into out
// (prometheus.Metric).
func (c *Counter) Write(out *dto.Metric) error {
	m, err := prometheus.NewConstMetricWithCreatedTimestamp(c.desc, prometheus.CounterValue, c.value(), c.created, c.labelValues...)
	if err != nil {
		return err
	}
	return m.Write(out)
}

// Describe sends the counter's description (prometheus.Collector).
func (c *Counter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends the counter itself (prometheus.Collector).
func (c *Counter) Collect(ch chan<- prometheus.Metric) { ch <- c }

// Gauge is a prometheus.Gauge kept per CPU for Add, Sub, Inc and Dec (see
// the package documentation); Set and SetToCurrentTime are not per-CPU:
// they take a mutex and swap the per-CPU sums. Make it with NewGauge, or
// get it from a GaugeVec. It implements prometheus.Gauge.
//
// A gauge that is mostly Set (a queue length sampled from elsewhere, a
// temperature) gains nothing here: use client_golang's. This one is for
// gauges that are moved by many goroutines, such as requests in flight.
type Gauge struct {
	sum
	desc        *prometheus.Desc
	labelValues []string
	mu          sync.Mutex // serializes Set and the reads
}

var _ prometheus.Gauge = (*Gauge)(nil)

// NewGauge returns a Gauge at zero, described by opts as
// prometheus.NewGauge's is.
func NewGauge(opts prometheus.GaugeOpts) *Gauge {
	return newGauge(desc(prometheus.Opts(opts), nil), nil)
}

func newGauge(d *prometheus.Desc, labelValues []string) *Gauge {
	return &Gauge{sum: newSum(), desc: d, labelValues: labelValues}
}

// Inc adds 1: one restartable section.
func (g *Gauge) Inc() { g.ints.Add(1) }

// Dec subtracts 1: one restartable section.
func (g *Gauge) Dec() { g.ints.Add(-1) }

// Add adds v (which may be negative): one restartable section for an
// integer, a compare-and-store section on the float part otherwise.
func (g *Gauge) Add(v float64) { g.add(v) }

// Sub subtracts v.
func (g *Gauge) Sub(v float64) { g.add(-v) }

// Set sets the gauge to v. It is not per-CPU: it takes the gauge's mutex
// and swaps both sums (percpu's Swap: every Add made meanwhile counts
// either before the Set or after it).
func (g *Gauge) Set(v float64) {
	f := g.floatPart()
	g.mu.Lock()
	defer g.mu.Unlock()
	f.Swap(v)
	g.ints.Swap(0)
}

// SetToCurrentTime sets the gauge to the current Unix time in seconds (a
// Set).
func (g *Gauge) SetToCurrentTime() {
	g.Set(float64(time.Now().UnixNano()) / 1e9)
}

// Value returns the gauge's value: the sum of its shards.
func (g *Gauge) Value() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.value()
}

// Desc returns the gauge's description (prometheus.Metric).
func (g *Gauge) Desc() *prometheus.Desc { return g.desc }

// Write writes the gauge's value and labels into out (prometheus.Metric).
func (g *Gauge) Write(out *dto.Metric) error {
	m, err := prometheus.NewConstMetric(g.desc, prometheus.GaugeValue, g.Value(), g.labelValues...)
	if err != nil {
		return err
	}
	return m.Write(out)
}

// Describe sends the gauge's description (prometheus.Collector).
func (g *Gauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect sends the gauge itself (prometheus.Collector).
func (g *Gauge) Collect(ch chan<- prometheus.Metric) { ch <- g }

// Histogram is a prometheus.Histogram on a percpu.Histogram: Observe is
// one restartable section and plain stores on the calling CPU's shard, and
// a scrape takes a consistent snapshot (see percpu.Histogram). Make it
// with NewHistogram, or get it from a HistogramVec. It implements
// prometheus.Histogram (and so prometheus.Observer).
type Histogram struct {
	h           *percpu.Histogram
	desc        *prometheus.Desc
	labelValues []string
	created     time.Time
}

var _ prometheus.Histogram = (*Histogram)(nil)

// NewHistogram returns a Histogram described by opts as
// prometheus.NewHistogram's is: opts.Buckets are the upper bounds
// (prometheus.DefBuckets when nil). It panics, as client_golang does, for
// bounds that are not strictly increasing, and for options that ask for
// native histograms, which it does not support.
func NewHistogram(opts prometheus.HistogramOpts) *Histogram {
	bounds := histogramBounds(opts)
	return newHistogram(histogramDesc(opts, nil), bounds, nil)
}

func histogramBounds(opts prometheus.HistogramOpts) []float64 {
	if opts.NativeHistogramBucketFactor != 0 || opts.NativeHistogramZeroThreshold != 0 || opts.NativeHistogramMaxBucketNumber != 0 {
		panic(errors.New("rseqprom: native histograms are not supported"))
	}
	if opts.Buckets == nil {
		return prometheus.DefBuckets
	}
	return opts.Buckets
}

func histogramDesc(opts prometheus.HistogramOpts, labelNames []string) *prometheus.Desc {
	return desc(prometheus.Opts{
		Namespace: opts.Namespace, Subsystem: opts.Subsystem, Name: opts.Name,
		Help: opts.Help, ConstLabels: opts.ConstLabels, Unit: opts.Unit,
	}, labelNames)
}

func newHistogram(d *prometheus.Desc, bounds []float64, labelValues []string) *Histogram {
	h, err := percpu.NewHistogram(bounds)
	if err != nil {
		panic(err)
	}
	return &Histogram{h: h, desc: d, labelValues: labelValues, created: time.Now()}
}

// Observe adds v to the histogram (prometheus.Observer).
func (h *Histogram) Observe(v float64) { h.h.Observe(v) }

// Snapshot returns the histogram's consistent snapshot (see
// percpu.Histogram.Snapshot).
func (h *Histogram) Snapshot() (percpu.HistogramSnapshot, error) { return h.h.Snapshot() }

// Desc returns the histogram's description (prometheus.Metric).
func (h *Histogram) Desc() *prometheus.Desc { return h.desc }

// Write writes a snapshot of the histogram into out (prometheus.Metric):
// cumulative bucket counts, count and sum, all from the same
// observations. It returns the snapshot's error, if a CPU could not be
// fenced; the registry then reports the metric as failed.
func (h *Histogram) Write(out *dto.Metric) error {
	s, err := h.h.Snapshot()
	if err != nil {
		return err
	}
	buckets := make(map[float64]uint64, len(s.Bounds))
	var t uint64
	for i, b := range s.Bounds {
		t += s.Counts[i]
		buckets[b] = t
	}
	m, err := prometheus.NewConstHistogramWithCreatedTimestamp(h.desc, s.Count, s.Sum, buckets, h.created, h.labelValues...)
	if err != nil {
		return err
	}
	return m.Write(out)
}

// Describe sends the histogram's description (prometheus.Collector).
func (h *Histogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect sends the histogram itself (prometheus.Collector).
func (h *Histogram) Collect(ch chan<- prometheus.Metric) { ch <- h }
