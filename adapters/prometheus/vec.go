package rseqprom

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gorseq/rseq/percpu"
	"github.com/prometheus/client_golang/prometheus"
)

// vecCore holds the members of a vector, one per label set.
//
// Lookups of existing label sets read an immutable map through an atomic
// pointer (a plain load on amd64): no lock, no store, so goroutines on
// different CPUs looking up the same label set share no written cache
// line. New label sets are added under mu to the full map, whose
// additions reach the read map in a copy made once the slow lookups since
// the last copy outnumber half the label sets (amortized O(1) per
// lookup, as sync.Map's promotion of its dirty map). Chains of entries
// with the same hash are immutable: an insertion makes a new head.
type vecCore[M prometheus.Metric] struct {
	desc   *prometheus.Desc
	names  []string
	make   func(labelValues []string) M
	read   atomic.Pointer[map[uint64]*entry[M]]
	mu     sync.Mutex
	all    map[uint64]*entry[M] // under mu
	misses int                  // under mu: slow lookups since the last copy
}

type entry[M any] struct {
	lvs  []string
	m    M
	next *entry[M]
}

func newVecCore[M prometheus.Metric](d *prometheus.Desc, names []string, mk func([]string) M) *vecCore[M] {
	c := &vecCore[M]{desc: d, names: append([]string(nil), names...), make: mk, all: map[uint64]*entry[M]{}}
	c.read.Store(&map[uint64]*entry[M]{})
	return c
}

// hashValues is FNV-1a over the label values, each followed by 0xff (a
// byte no UTF-8 string holds).
func hashValues(lvs []string) uint64 {
	h := uint64(14695981039346656037)
	for _, v := range lvs {
		for i := 0; i < len(v); i++ {
			h ^= uint64(v[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	return h
}

func equalValues(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// get returns the member for the full label values lvs, making it on
// first use. lvs is not kept.
func (c *vecCore[M]) get(lvs []string) (M, error) {
	h := hashValues(lvs)
	for e := (*c.read.Load())[h]; e != nil; e = e.next {
		if equalValues(e.lvs, lvs) {
			return e.m, nil
		}
	}
	return c.getSlow(h, lvs)
}

func (c *vecCore[M]) getSlow(h uint64, lvs []string) (M, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.misses++
	defer c.maybePublish()
	for e := c.all[h]; e != nil; e = e.next {
		if equalValues(e.lvs, lvs) {
			return e.m, nil
		}
	}
	for i, v := range lvs {
		if !utf8.ValidString(v) {
			var zero M
			return zero, fmt.Errorf("label %s: value %q is not valid UTF-8", c.names[i], v)
		}
	}
	own := append([]string(nil), lvs...)
	e := &entry[M]{lvs: own, m: c.make(own), next: c.all[h]}
	c.all[h] = e
	return e.m, nil
}

// maybePublish copies the full map to the read map when enough lookups
// missed it. Called under mu.
func (c *vecCore[M]) maybePublish() {
	if c.misses > len(c.all)/2 {
		c.publish()
	}
}

func (c *vecCore[M]) publish() {
	m := make(map[uint64]*entry[M], len(c.all))
	for h, e := range c.all {
		m[h] = e
	}
	c.read.Store(&m)
	c.misses = 0
}

// delete removes the member of lvs, if any, and reports whether it did.
func (c *vecCore[M]) delete(lvs []string) bool {
	h := hashValues(lvs)
	c.mu.Lock()
	defer c.mu.Unlock()
	var before []*entry[M]
	for e := c.all[h]; e != nil; e = e.next {
		if !equalValues(e.lvs, lvs) {
			before = append(before, e)
			continue
		}
		// Copy the entries before it (chains are immutable), keep the
		// ones after.
		head := e.next
		for i := len(before) - 1; i >= 0; i-- {
			n := *before[i]
			n.next = head
			head = &n
		}
		if head == nil {
			delete(c.all, h)
		} else {
			c.all[h] = head
		}
		c.publish()
		return true
	}
	return false
}

func (c *vecCore[M]) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = map[uint64]*entry[M]{}
	c.publish()
}

func (c *vecCore[M]) collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	var ms []M
	for _, e := range c.all {
		for ; e != nil; e = e.next {
			ms = append(ms, e.m)
		}
	}
	c.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}

// curried is a label whose value a curried vector fixes.
type curried struct {
	index int // in the vector's label names
	value string
}

// vecView is a vector, possibly curried: the members are the core's.
type vecView[M prometheus.Metric] struct {
	core  *vecCore[M]
	curry []curried // sorted by index
}

// maxStackLabels is how many label values a lookup assembles without
// allocating.
const maxStackLabels = 16

func (v vecView[M]) withLabelValues(lvs []string) (M, error) {
	var zero M
	want := len(v.core.names) - len(v.curry)
	if len(lvs) != want {
		return zero, fmt.Errorf("inconsistent label cardinality: expected %d label values but got %d in %q", want, len(lvs), append([]string(nil), lvs...))
	}
	if len(v.curry) == 0 {
		return v.core.get(lvs)
	}
	var buf [maxStackLabels]string
	return v.core.get(v.assemble(buf[:0], lvs))
}

// assemble returns the full label values: lvs with the curried ones put
// in their places.
func (v vecView[M]) assemble(full, lvs []string) []string {
	ci, li := 0, 0
	for i := range v.core.names {
		if ci < len(v.curry) && v.curry[ci].index == i {
			full = append(full, v.curry[ci].value)
			ci++
			continue
		}
		full = append(full, lvs[li])
		li++
	}
	return full
}

func (v vecView[M]) valuesOf(buf []string, labels prometheus.Labels) ([]string, error) {
	if want := len(v.core.names) - len(v.curry); len(labels) != want {
		return nil, fmt.Errorf("inconsistent label cardinality: expected %d label values but got %d in %v", want, len(labels), labels)
	}
	ci := 0
	for i, name := range v.core.names {
		if ci < len(v.curry) && v.curry[ci].index == i {
			buf = append(buf, v.curry[ci].value)
			ci++
			continue
		}
		val, ok := labels[name]
		if !ok {
			return nil, fmt.Errorf("label name %q missing in label map", name)
		}
		buf = append(buf, val)
	}
	return buf, nil
}

func (v vecView[M]) with(labels prometheus.Labels) (M, error) {
	var buf [maxStackLabels]string
	full, err := v.valuesOf(buf[:0], labels)
	if err != nil {
		var zero M
		return zero, err
	}
	return v.core.get(full)
}

func (v vecView[M]) deleteLabelValues(lvs []string) bool {
	if len(lvs) != len(v.core.names)-len(v.curry) {
		return false
	}
	var buf [maxStackLabels]string
	return v.core.delete(v.assemble(buf[:0], lvs))
}

func (v vecView[M]) deleteLabels(labels prometheus.Labels) bool {
	var buf [maxStackLabels]string
	full, err := v.valuesOf(buf[:0], labels)
	if err != nil {
		return false
	}
	return v.core.delete(full)
}

func (v vecView[M]) curryWith(labels prometheus.Labels) (vecView[M], error) {
	var out []curried
	used := 0
	ci := 0
	for i, name := range v.core.names {
		if ci < len(v.curry) && v.curry[ci].index == i {
			if _, ok := labels[name]; ok {
				return v, fmt.Errorf("label name %q is already curried", name)
			}
			out = append(out, v.curry[ci])
			ci++
			continue
		}
		if val, ok := labels[name]; ok {
			if !utf8.ValidString(val) {
				return v, fmt.Errorf("label %s: value %q is not valid UTF-8", name, val)
			}
			out = append(out, curried{index: i, value: val})
			used++
		}
	}
	if used != len(labels) {
		return v, fmt.Errorf("%d unknown label(s) found during currying", len(labels)-used)
	}
	return vecView[M]{core: v.core, curry: out}, nil
}

// CounterVec is a labelled vector of Counters, with the methods of
// client_golang's CounterVec. A label set's Counter (128 * rseq.Slots()
// bytes of shards) is made on its first use. Make it with NewCounterVec.
type CounterVec struct{ v vecView[*Counter] }

// NewCounterVec returns a CounterVec of Counters described by opts and
// partitioned by labelNames, as prometheus.NewCounterVec does.
func NewCounterVec(opts prometheus.CounterOpts, labelNames []string) *CounterVec {
	d := desc(prometheus.Opts(opts), labelNames)
	return &CounterVec{v: vecView[*Counter]{core: newVecCore(d, labelNames, func(lvs []string) *Counter { return newCounter(d, lvs) })}}
}

// GetMetricWithLabelValues returns the Counter of the given label values
// (in the order of the label names), making it on first use. It fails for
// a wrong number of values or one that is not valid UTF-8.
func (v *CounterVec) GetMetricWithLabelValues(lvs ...string) (prometheus.Counter, error) {
	c, err := v.v.withLabelValues(lvs)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// GetMetricWith returns the Counter of the given labels, making it on
// first use.
func (v *CounterVec) GetMetricWith(labels prometheus.Labels) (prometheus.Counter, error) {
	c, err := v.v.with(labels)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// WithLabelValues is GetMetricWithLabelValues, panicking on an error.
func (v *CounterVec) WithLabelValues(lvs ...string) prometheus.Counter {
	c, err := v.v.withLabelValues(lvs)
	if err != nil {
		panic(err)
	}
	return c
}

// With is GetMetricWith, panicking on an error.
func (v *CounterVec) With(labels prometheus.Labels) prometheus.Counter {
	c, err := v.v.with(labels)
	if err != nil {
		panic(err)
	}
	return c
}

// CurryWith returns a vector with the given labels' values fixed; it
// shares its Counters with v.
func (v *CounterVec) CurryWith(labels prometheus.Labels) (*CounterVec, error) {
	w, err := v.v.curryWith(labels)
	if err != nil {
		return nil, err
	}
	return &CounterVec{v: w}, nil
}

// MustCurryWith is CurryWith, panicking on an error.
func (v *CounterVec) MustCurryWith(labels prometheus.Labels) *CounterVec {
	w, err := v.CurryWith(labels)
	if err != nil {
		panic(err)
	}
	return w
}

// DeleteLabelValues removes the Counter of the given label values and
// reports whether there was one.
func (v *CounterVec) DeleteLabelValues(lvs ...string) bool { return v.v.deleteLabelValues(lvs) }

// Delete removes the Counter of the given labels and reports whether there
// was one.
func (v *CounterVec) Delete(labels prometheus.Labels) bool { return v.v.deleteLabels(labels) }

// Reset removes every Counter.
func (v *CounterVec) Reset() { v.v.core.reset() }

// Describe sends the vector's description (prometheus.Collector).
func (v *CounterVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.v.core.desc }

// Collect sends every Counter of the vector (prometheus.Collector).
func (v *CounterVec) Collect(ch chan<- prometheus.Metric) { v.v.core.collect(ch) }

// GaugeVec is a labelled vector of Gauges, with the methods of
// client_golang's GaugeVec. A label set's Gauge is made on its first use.
// Make it with NewGaugeVec.
type GaugeVec struct{ v vecView[*Gauge] }

// NewGaugeVec returns a GaugeVec of Gauges described by opts and
// partitioned by labelNames, as prometheus.NewGaugeVec does.
func NewGaugeVec(opts prometheus.GaugeOpts, labelNames []string) *GaugeVec {
	d := desc(prometheus.Opts(opts), labelNames)
	return &GaugeVec{v: vecView[*Gauge]{core: newVecCore(d, labelNames, func(lvs []string) *Gauge { return newGauge(d, lvs) })}}
}

// GetMetricWithLabelValues returns the Gauge of the given label values,
// making it on first use.
func (v *GaugeVec) GetMetricWithLabelValues(lvs ...string) (prometheus.Gauge, error) {
	g, err := v.v.withLabelValues(lvs)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// GetMetricWith returns the Gauge of the given labels, making it on first
// use.
func (v *GaugeVec) GetMetricWith(labels prometheus.Labels) (prometheus.Gauge, error) {
	g, err := v.v.with(labels)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// WithLabelValues is GetMetricWithLabelValues, panicking on an error.
func (v *GaugeVec) WithLabelValues(lvs ...string) prometheus.Gauge {
	g, err := v.v.withLabelValues(lvs)
	if err != nil {
		panic(err)
	}
	return g
}

// With is GetMetricWith, panicking on an error.
func (v *GaugeVec) With(labels prometheus.Labels) prometheus.Gauge {
	g, err := v.v.with(labels)
	if err != nil {
		panic(err)
	}
	return g
}

// CurryWith returns a vector with the given labels' values fixed; it
// shares its Gauges with v.
func (v *GaugeVec) CurryWith(labels prometheus.Labels) (*GaugeVec, error) {
	w, err := v.v.curryWith(labels)
	if err != nil {
		return nil, err
	}
	return &GaugeVec{v: w}, nil
}

// MustCurryWith is CurryWith, panicking on an error.
func (v *GaugeVec) MustCurryWith(labels prometheus.Labels) *GaugeVec {
	w, err := v.CurryWith(labels)
	if err != nil {
		panic(err)
	}
	return w
}

// DeleteLabelValues removes the Gauge of the given label values and
// reports whether there was one.
func (v *GaugeVec) DeleteLabelValues(lvs ...string) bool { return v.v.deleteLabelValues(lvs) }

// Delete removes the Gauge of the given labels and reports whether there
// was one.
func (v *GaugeVec) Delete(labels prometheus.Labels) bool { return v.v.deleteLabels(labels) }

// Reset removes every Gauge.
func (v *GaugeVec) Reset() { v.v.core.reset() }

// Describe sends the vector's description (prometheus.Collector).
func (v *GaugeVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.v.core.desc }

// Collect sends every Gauge of the vector (prometheus.Collector).
func (v *GaugeVec) Collect(ch chan<- prometheus.Metric) { v.v.core.collect(ch) }

// HistogramVec is a labelled vector of Histograms, with the methods of
// client_golang's HistogramVec; it implements prometheus.ObserverVec, so
// promhttp's instrumentation handlers take it. A label set's Histogram
// (128 * rseq.Slots() bytes for up to 12 bucket bounds) is made on its
// first use. Make it with NewHistogramVec.
type HistogramVec struct{ v vecView[*Histogram] }

var _ prometheus.ObserverVec = (*HistogramVec)(nil)

// NewHistogramVec returns a HistogramVec of Histograms described by opts
// and partitioned by labelNames, as prometheus.NewHistogramVec does; it
// panics as NewHistogram does.
func NewHistogramVec(opts prometheus.HistogramOpts, labelNames []string) *HistogramVec {
	bounds := histogramBounds(opts)
	if _, err := percpu.NewHistogram(bounds); err != nil { // checks the bounds
		panic(err)
	}
	d := histogramDesc(opts, labelNames)
	return &HistogramVec{v: vecView[*Histogram]{core: newVecCore(d, labelNames, func(lvs []string) *Histogram { return newHistogram(d, bounds, lvs) })}}
}

// GetMetricWithLabelValues returns the Histogram of the given label
// values, making it on first use.
func (v *HistogramVec) GetMetricWithLabelValues(lvs ...string) (prometheus.Observer, error) {
	h, err := v.v.withLabelValues(lvs)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// GetMetricWith returns the Histogram of the given labels, making it on
// first use.
func (v *HistogramVec) GetMetricWith(labels prometheus.Labels) (prometheus.Observer, error) {
	h, err := v.v.with(labels)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// WithLabelValues is GetMetricWithLabelValues, panicking on an error.
func (v *HistogramVec) WithLabelValues(lvs ...string) prometheus.Observer {
	h, err := v.v.withLabelValues(lvs)
	if err != nil {
		panic(err)
	}
	return h
}

// With is GetMetricWith, panicking on an error.
func (v *HistogramVec) With(labels prometheus.Labels) prometheus.Observer {
	h, err := v.v.with(labels)
	if err != nil {
		panic(err)
	}
	return h
}

// CurryWith returns a vector with the given labels' values fixed; it
// shares its Histograms with v.
func (v *HistogramVec) CurryWith(labels prometheus.Labels) (prometheus.ObserverVec, error) {
	w, err := v.v.curryWith(labels)
	if err != nil {
		return nil, err
	}
	return &HistogramVec{v: w}, nil
}

// MustCurryWith is CurryWith, panicking on an error.
func (v *HistogramVec) MustCurryWith(labels prometheus.Labels) prometheus.ObserverVec {
	w, err := v.CurryWith(labels)
	if err != nil {
		panic(err)
	}
	return w
}

// DeleteLabelValues removes the Histogram of the given label values and
// reports whether there was one.
func (v *HistogramVec) DeleteLabelValues(lvs ...string) bool { return v.v.deleteLabelValues(lvs) }

// Delete removes the Histogram of the given labels and reports whether
// there was one.
func (v *HistogramVec) Delete(labels prometheus.Labels) bool { return v.v.deleteLabels(labels) }

// Reset removes every Histogram.
func (v *HistogramVec) Reset() { v.v.core.reset() }

// Describe sends the vector's description (prometheus.Collector).
func (v *HistogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.v.core.desc }

// Collect sends every Histogram of the vector (prometheus.Collector).
func (v *HistogramVec) Collect(ch chan<- prometheus.Metric) { v.v.core.collect(ch) }
