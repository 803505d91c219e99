// Package rseqotel exports the per-CPU metrics of
// github.com/gorseq/rseq/percpu as OpenTelemetry metric data, through the
// OpenTelemetry Go SDK (go.opentelemetry.io/otel/sdk/metric).
//
// A Producer is an sdk/metric Producer: give it to any reader with
// metric.WithProducer, and every collection (a ManualReader's Collect, each
// period of a PeriodicReader and so every exporter behind one: OTLP,
// stdout, Prometheus) includes the registered percpu structures:
//
//	p := rseqotel.NewProducer(instrumentation.Scope{Name: "myservice"})
//	requests := percpu.NewCounter()
//	p.Counter(rseqotel.Instrument{Name: "http.server.requests"}, requests)
//	reader := metric.NewPeriodicReader(exporter, metric.WithProducer(p))
//	provider := metric.NewMeterProvider(metric.WithReader(reader))
//
// The hot paths are the percpu ones (Counter.Add: one restartable section,
// no atomic instruction; Histogram.Observe: one section and plain stores),
// with none of the SDK's instrument machinery; the data are made only when
// a reader collects. Counters become cumulative sums (monotonic, or not for
// UpDownCounter), Float64Counters float sums, and Histograms explicit-bucket
// histograms with the same bucket semantics as OpenTelemetry's (a value v
// counts in the first bucket whose bound b has v <= b), cumulative, without
// min and max. Each histogram point comes from one percpu snapshot: its
// count is the sum of its buckets and its sum comes from the same
// measurements.
//
// Several structures may be registered under one name with different
// attribute sets (one per route, say): they become the data points of one
// metric.
package rseqotel

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/gorseq/rseq/percpu"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Instrument describes one registered structure: the metric's name,
// description and unit (UCUM, as OpenTelemetry's: "1", "s", "By"), and the
// attributes of its data point.
type Instrument struct {
	Name        string
	Description string
	Unit        string
	Attributes  attribute.Set
}

// Producer produces the metric data of the percpu structures registered
// with it. Make it with NewProducer; it is safe for concurrent use, and
// structures may be registered while readers collect.
type Producer struct {
	scope   instrumentation.Scope
	mu      sync.Mutex
	metrics []*metric // in the order of their first registration
	byName  map[string]*metric
}

var _ sdkmetric.Producer = (*Producer)(nil)

type kind uint8

const (
	kindSum kind = iota
	kindUpDownSum
	kindFloatSum
	kindHistogram
)

func (k kind) String() string {
	return [...]string{"Counter", "UpDownCounter", "Float64Counter", "Histogram"}[k]
}

type metric struct {
	name, description, unit string
	kind                    kind
	points                  []point
}

type point struct {
	attrs attribute.Set
	start time.Time
	c     *percpu.Counter
	f     *percpu.Float64Counter
	h     *percpu.Histogram
}

// NewProducer returns a Producer whose metrics belong to the given
// instrumentation scope.
func NewProducer(scope instrumentation.Scope) *Producer {
	return &Producer{scope: scope, byName: map[string]*metric{}}
}

// instrumentName is OpenTelemetry's instrument name syntax.
var instrumentName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_./-]{0,254}$`)

func (p *Producer) register(in Instrument, k kind, pt point) error {
	if !instrumentName.MatchString(in.Name) {
		return fmt.Errorf("rseqotel: %q is not a valid instrument name", in.Name)
	}
	pt.attrs, pt.start = in.Attributes, time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.byName[in.Name]
	if m == nil {
		m = &metric{name: in.Name, description: in.Description, unit: in.Unit, kind: k}
		p.byName[in.Name] = m
		p.metrics = append(p.metrics, m)
	} else {
		if m.kind != k || m.unit != in.Unit || m.description != in.Description {
			return fmt.Errorf("rseqotel: %s %q registered again as a %s with unit %q and description %q (first: %s, %q, %q)",
				m.kind, in.Name, k, in.Unit, in.Description, m.kind, m.unit, m.description)
		}
		for _, q := range m.points {
			if q.attrs.Equals(&pt.attrs) {
				return fmt.Errorf("rseqotel: %q already has a data point with attributes %v", in.Name, pt.attrs.ToSlice())
			}
		}
	}
	m.points = append(m.points, pt)
	return nil
}

// Counter registers c as a monotonic cumulative int64 sum (an
// OpenTelemetry Counter). It fails for an invalid name, for a name already
// registered as another kind or with another unit or description, and for
// attributes that the name already has a data point for.
func (p *Producer) Counter(in Instrument, c *percpu.Counter) error {
	if c == nil {
		return errors.New("rseqotel: Counter: nil *percpu.Counter")
	}
	return p.register(in, kindSum, point{c: c})
}

// UpDownCounter registers c as a non-monotonic cumulative int64 sum (an
// OpenTelemetry UpDownCounter), with Counter's errors.
func (p *Producer) UpDownCounter(in Instrument, c *percpu.Counter) error {
	if c == nil {
		return errors.New("rseqotel: UpDownCounter: nil *percpu.Counter")
	}
	return p.register(in, kindUpDownSum, point{c: c})
}

// Float64Counter registers f as a monotonic cumulative float64 sum, with
// Counter's errors.
func (p *Producer) Float64Counter(in Instrument, f *percpu.Float64Counter) error {
	if f == nil {
		return errors.New("rseqotel: Float64Counter: nil *percpu.Float64Counter")
	}
	return p.register(in, kindFloatSum, point{f: f})
}

// Histogram registers h as a cumulative explicit-bucket histogram, with
// Counter's errors. Data points of one name may have different bounds.
func (p *Producer) Histogram(in Instrument, h *percpu.Histogram) error {
	if h == nil {
		return errors.New("rseqotel: Histogram: nil *percpu.Histogram")
	}
	return p.register(in, kindHistogram, point{h: h})
}

// Produce returns the current values of every registered structure, as one
// ScopeMetrics (sdk/metric's Producer interface; readers call it).
//
// Reading a Counter sums its shards; a Histogram takes a percpu snapshot,
// one membarrier fence per CPU that observed (microseconds each). If a
// snapshot fails (the fence refused after the histogram was made), that
// data point is left out, the others are returned, and the error says
// which; the histogram keeps its data, and a later collection has it.
func (p *Producer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	p.mu.Lock()
	ms := make([]metric, len(p.metrics))
	for i, m := range p.metrics {
		ms[i] = *m
		ms[i].points = slices.Clone(m.points)
	}
	p.mu.Unlock()

	now := time.Now()
	var errs []error
	out := metricdata.ScopeMetrics{Scope: p.scope, Metrics: make([]metricdata.Metrics, 0, len(ms))}
	for _, m := range ms {
		md := metricdata.Metrics{Name: m.name, Description: m.description, Unit: m.unit}
		switch m.kind {
		case kindSum, kindUpDownSum:
			dps := make([]metricdata.DataPoint[int64], len(m.points))
			for i, pt := range m.points {
				dps[i] = metricdata.DataPoint[int64]{Attributes: pt.attrs, StartTime: pt.start, Time: now, Value: pt.c.Value()}
			}
			md.Data = metricdata.Sum[int64]{DataPoints: dps, Temporality: metricdata.CumulativeTemporality, IsMonotonic: m.kind == kindSum}
		case kindFloatSum:
			dps := make([]metricdata.DataPoint[float64], len(m.points))
			for i, pt := range m.points {
				dps[i] = metricdata.DataPoint[float64]{Attributes: pt.attrs, StartTime: pt.start, Time: now, Value: pt.f.Load()}
			}
			md.Data = metricdata.Sum[float64]{DataPoints: dps, Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
		case kindHistogram:
			dps := make([]metricdata.HistogramDataPoint[float64], 0, len(m.points))
			for _, pt := range m.points {
				s, err := pt.h.Snapshot()
				if err != nil {
					errs = append(errs, fmt.Errorf("rseqotel: histogram %q %v: %w", m.name, pt.attrs.ToSlice(), err))
					continue
				}
				dps = append(dps, metricdata.HistogramDataPoint[float64]{
					Attributes: pt.attrs, StartTime: pt.start, Time: now,
					Count: s.Count, Bounds: slices.Clone(s.Bounds), BucketCounts: s.Counts, Sum: s.Sum,
				})
			}
			md.Data = metricdata.Histogram[float64]{DataPoints: dps, Temporality: metricdata.CumulativeTemporality}
		}
		out.Metrics = append(out.Metrics, md)
	}
	return []metricdata.ScopeMetrics{out}, errors.Join(errs...)
}
