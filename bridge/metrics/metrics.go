// Package metrics is sanbridge's Prometheus instrumentation: one
// [Registry] of collectors, the hooks the engine, the pass-through layer
// and the bridge call, and an HTTP listener that serves them in the
// Prometheus exposition formats (through client_golang's promhttp, never
// hand-written).
//
// Families (every name starts with sanbridge_):
//
//	lun_commands_total{target,lun,kind}              kind: read, write, other
//	lun_bytes_total{target,lun,direction}            direction: read, write
//	lun_command_duration_seconds{target,lun,kind}    histogram
//	lun_command_errors_total{target,lun,status,sense_key}
//	initiator_commands_total{initiator,kind}
//	initiator_bytes_total{initiator,direction}
//	initiator_command_duration_seconds{initiator,kind}
//	initiator_command_errors_total{initiator,status,sense_key}
//	sessions{target}                                 gauge
//	logins_total{target}
//	login_failures_total{reason}
//	chap_failures_total{target}
//	device_arrivals_total, device_removals_total
//	reloads_total{result}                            result: ok, error
//	last_reload_success_timestamp_seconds
//	memory_budget_bytes, memory_in_use_bytes
//	build_info{version}
//
// Labels carry target and initiator iSCSI names, LUN numbers, SCSI
// statuses and sense key names only: never a CHAP user name or secret.
//
// Per-command recording goes through a [CommandStats] resolved once per
// nexus and LUN ([Registry.Command]): its Done method adds to
// pre-resolved counter and histogram children, with no label lookup and
// no allocation except on the first error of a given status and sense key.
package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const namespace = "sanbridge"

// Kind classifies a SCSI command for the per-kind series.
type Kind uint8

// Command kinds.
const (
	// KindOther is any command that neither reads nor writes medium data
	// (INQUIRY, TEST UNIT READY, MODE SENSE, ...).
	KindOther Kind = iota
	// KindRead is a command that reads medium data (READ(6..32), ...).
	KindRead
	// KindWrite is a command that writes medium data (WRITE, WRITE SAME, ...).
	KindWrite
	numKinds
)

// String returns the kind's label value.
func (k Kind) String() string {
	switch k {
	case KindRead:
		return "read"
	case KindWrite:
		return "write"
	case KindOther:
		return "other"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Direction is the direction of a command's data transfer.
type Direction uint8

// Data directions.
const (
	// DirNone: the command transferred no data.
	DirNone Direction = iota
	// DirRead: data went from the device to the initiator (Data-In).
	DirRead
	// DirWrite: data went from the initiator to the device (Data-Out).
	DirWrite
)

// String returns the direction's label value.
func (d Direction) String() string {
	switch d {
	case DirNone:
		return "none"
	case DirRead:
		return "read"
	case DirWrite:
		return "write"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// latencyBuckets span a RAM disk on loopback (tens of microseconds) to a
// tape rewind (minutes).
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
}

// Registry holds every sanbridge collector in its own
// prometheus.Registry (with the Go runtime and process collectors). The
// zero value is not usable; call [New].
type Registry struct {
	reg *prometheus.Registry

	lunCommands  *prometheus.CounterVec
	lunBytes     *prometheus.CounterVec
	lunDuration  *prometheus.HistogramVec
	lunErrors    *prometheus.CounterVec
	initCommands *prometheus.CounterVec
	initBytes    *prometheus.CounterVec
	initDuration *prometheus.HistogramVec
	initErrors   *prometheus.CounterVec

	sessions      *prometheus.GaugeVec
	logins        *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	chapFailures  *prometheus.CounterVec

	arrivals prometheus.Counter
	removals prometheus.Counter

	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	memoryBudget    prometheus.Gauge
	memoryInUseFunc atomic.Pointer[func() int64]
	limits          atomic.Pointer[limitCollector] // limits.go
}

// New returns a Registry with every family registered. version is
// exported as sanbridge_build_info{version}.
func New(version string) *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	f := factory{r.reg}
	r.lunCommands = f.counterVec("lun_commands_total", "SCSI commands completed, per logical unit and kind.", "target", "lun", "kind")
	r.lunBytes = f.counterVec("lun_bytes_total", "Data bytes transferred, per logical unit and direction.", "target", "lun", "direction")
	r.lunDuration = f.histogramVec("lun_command_duration_seconds", "SCSI command latency from dispatch to completion, per logical unit and kind.", "target", "lun", "kind")
	r.lunErrors = f.counterVec("lun_command_errors_total", "SCSI commands that completed with a status other than GOOD or CONDITION MET, per logical unit, status and sense key.", "target", "lun", "status", "sense_key")
	r.initCommands = f.counterVec("initiator_commands_total", "SCSI commands completed, per initiator and kind.", "initiator", "kind")
	r.initBytes = f.counterVec("initiator_bytes_total", "Data bytes transferred, per initiator and direction.", "initiator", "direction")
	r.initDuration = f.histogramVec("initiator_command_duration_seconds", "SCSI command latency from dispatch to completion, per initiator and kind.", "initiator", "kind")
	r.initErrors = f.counterVec("initiator_command_errors_total", "SCSI commands that completed with a status other than GOOD or CONDITION MET, per initiator, status and sense key.", "initiator", "status", "sense_key")

	r.sessions = f.gaugeVec("sessions", "Normal iSCSI sessions in full feature phase, per target.", "target")
	r.logins = f.counterVec("logins_total", "Successful logins of normal sessions, per target.", "target")
	r.loginFailures = f.counterVec("login_failures_total", "Failed logins, per reason.", "reason")
	r.chapFailures = f.counterVec("chap_failures_total", "Failed CHAP authentications, per target (\"\" for discovery sessions).", "target")

	r.arrivals = f.counter("device_arrivals_total", "Local SCSI devices that appeared (at start or hot-plugged).")
	r.removals = f.counter("device_removals_total", "Local SCSI devices that went away.")

	r.reloads = f.counterVec("reloads_total", "Configuration reloads, per result.", "result")
	r.lastReloadOK = f.gauge("last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load or reload.")
	r.memoryBudget = f.gauge("memory_budget_bytes", "The configured memory budget for I/O buffers.")
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "memory_in_use_bytes",
		Help:      "Bytes of the memory budget in use by I/O buffers.",
	}, func() float64 {
		if fn := r.memoryInUseFunc.Load(); fn != nil {
			return float64((*fn)())
		}
		return 0
	}))
	build := f.gaugeVec("build_info", "Constant 1, labelled with the sanbridge version.", "version")
	build.WithLabelValues(version).Set(1)
	// Pre-create the reload results so a dashboard sees zeros, not gaps.
	r.reloads.WithLabelValues("ok")
	r.reloads.WithLabelValues("error")

	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Gatherer returns the underlying registry (for tests and for embedding
// the families in another handler).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

type factory struct{ reg *prometheus.Registry }

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: latencyBuckets}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

// lunLabel formats a LUN number as its label value (decimal).
func lunLabel(lun uint64) string { return strconv.FormatUint(lun, 10) }

// CommandStats records the commands of one initiator to one logical unit
// of one target. Resolve it once with [Registry.Command] (when a nexus
// attaches or its view changes) and call [CommandStats.Done] per command.
// It is safe for concurrent use.
type CommandStats struct {
	r                   *Registry
	target, lun, init   string
	lunCmds, initCmds   [numKinds]prometheus.Counter
	lunDur, initDur     [numKinds]prometheus.Observer
	lunRead, lunWrite   prometheus.Counter
	initRead, initWrite prometheus.Counter
	// errs caches the error counters by status slot and sense key,
	// resolved on first use (errors are rare; most slots stay nil).
	errs [len(errorStatuses) * 16]atomic.Pointer[errPair]
}

type errPair struct{ lun, init prometheus.Counter }

// errorStatuses are the statuses counted as errors, in slot order; a
// status not listed lands in the last slot ("other").
var errorStatuses = [...]scsi.Status{scsi.CheckCondition, scsi.Busy, scsi.ReservationConflict, scsi.TaskSetFull, scsi.ACAActive, scsi.TaskAborted, 0xff}

// Command returns the stats handle for initiator's commands to lun of
// target. initiator is the iSCSI initiator name (no ISID: one series per
// initiator node, not per session).
func (r *Registry) Command(target string, lun uint64, initiator string) *CommandStats {
	l := lunLabel(lun)
	c := &CommandStats{r: r, target: target, lun: l, init: initiator}
	for k := Kind(0); k < numKinds; k++ {
		c.lunCmds[k] = r.lunCommands.WithLabelValues(target, l, k.String())
		c.initCmds[k] = r.initCommands.WithLabelValues(initiator, k.String())
		c.lunDur[k] = r.lunDuration.WithLabelValues(target, l, k.String())
		c.initDur[k] = r.initDuration.WithLabelValues(initiator, k.String())
	}
	c.lunRead = r.lunBytes.WithLabelValues(target, l, DirRead.String())
	c.lunWrite = r.lunBytes.WithLabelValues(target, l, DirWrite.String())
	c.initRead = r.initBytes.WithLabelValues(initiator, DirRead.String())
	c.initWrite = r.initBytes.WithLabelValues(initiator, DirWrite.String())
	return c
}

// Done records one completed command: its kind, the data bytes it
// transferred in direction dir, its latency, its status and, for CHECK
// CONDITION, the sense key (ignored otherwise).
func (c *CommandStats) Done(kind Kind, dir Direction, bytes int, latency time.Duration, st scsi.Status, key scsi.SenseKey) {
	if kind >= numKinds {
		kind = KindOther
	}
	c.lunCmds[kind].Inc()
	c.initCmds[kind].Inc()
	s := latency.Seconds()
	c.lunDur[kind].Observe(s)
	c.initDur[kind].Observe(s)
	if bytes > 0 {
		switch dir {
		case DirRead:
			c.lunRead.Add(float64(bytes))
			c.initRead.Add(float64(bytes))
		case DirWrite:
			c.lunWrite.Add(float64(bytes))
			c.initWrite.Add(float64(bytes))
		}
	}
	if st == scsi.Good || st == scsi.ConditionMet {
		return
	}
	e := c.errCounter(st, key)
	e.lun.Inc()
	e.init.Inc()
}

func (c *CommandStats) errCounter(st scsi.Status, key scsi.SenseKey) *errPair {
	slot := len(errorStatuses) - 1
	for i, s := range errorStatuses[:len(errorStatuses)-1] {
		if s == st {
			slot = i
			break
		}
	}
	keyLabel := "none"
	if st == scsi.CheckCondition {
		key &= 0xf
		keyLabel = key.String()
	} else {
		key = 0
	}
	p := &c.errs[slot*16+int(key)]
	if e := p.Load(); e != nil {
		return e
	}
	stLabel := "other"
	if slot < len(errorStatuses)-1 {
		stLabel = st.String()
	}
	e := &errPair{
		lun:  c.r.lunErrors.WithLabelValues(c.target, c.lun, stLabel, keyLabel),
		init: c.r.initErrors.WithLabelValues(c.init, stLabel, keyLabel),
	}
	// Two racing first errors resolve the same children: either wins.
	p.Store(e)
	return e
}

// ForgetLUN drops every per-LUN series of lun in target (the LUN was
// removed from the configuration).
func (r *Registry) ForgetLUN(target string, lun uint64) {
	m := prometheus.Labels{"target": target, "lun": lunLabel(lun)}
	r.lunCommands.DeletePartialMatch(m)
	r.lunBytes.DeletePartialMatch(m)
	r.lunDuration.DeletePartialMatch(m)
	r.lunErrors.DeletePartialMatch(m)
}

// ForgetInitiator drops every per-initiator series of initiator (for
// example when it lost access to every target).
func (r *Registry) ForgetInitiator(initiator string) {
	m := prometheus.Labels{"initiator": initiator}
	r.initCommands.DeletePartialMatch(m)
	r.initBytes.DeletePartialMatch(m)
	r.initDuration.DeletePartialMatch(m)
	r.initErrors.DeletePartialMatch(m)
}

// SessionStarted counts a normal session of target that reached full
// feature phase (a successful login) and adds it to the live sessions.
func (r *Registry) SessionStarted(target string) {
	r.sessions.WithLabelValues(target).Inc()
	r.logins.WithLabelValues(target).Inc()
}

// SessionEnded removes a session of target from the live sessions (call
// once per SessionStarted).
func (r *Registry) SessionEnded(target string) {
	r.sessions.WithLabelValues(target).Dec()
}

// LoginFailed counts a failed login. reason must come from a small fixed
// set (the engine's login status class names, such as "authentication
// failure" or "target not found"), never from peer-supplied text.
func (r *Registry) LoginFailed(reason string) {
	r.loginFailures.WithLabelValues(reason).Inc()
}

// CHAPFailed counts a failed CHAP authentication for target ("" for a
// discovery session). The CHAP user name is deliberately not a label.
func (r *Registry) CHAPFailed(target string) {
	r.chapFailures.WithLabelValues(target).Inc()
}

// DeviceArrived counts a local device that appeared.
func (r *Registry) DeviceArrived() { r.arrivals.Inc() }

// DeviceRemoved counts a local device that went away.
func (r *Registry) DeviceRemoved() { r.removals.Inc() }

// Reloaded counts a configuration reload: err nil is a success (and sets
// the last-success timestamp to now).
func (r *Registry) Reloaded(err error, now time.Time) {
	if err != nil {
		r.reloads.WithLabelValues("error").Inc()
		return
	}
	r.reloads.WithLabelValues("ok").Inc()
	r.lastReloadOK.Set(float64(now.UnixNano()) / 1e9)
}

// Loaded records the first successful configuration load (the
// last-success timestamp, without counting a reload).
func (r *Registry) Loaded(now time.Time) {
	r.lastReloadOK.Set(float64(now.UnixNano()) / 1e9)
}

// SetMemoryBudget publishes the memory budget's size and the function
// that reports the bytes in use; inUse is called at scrape time only, so
// the I/O path pays nothing for it. inUse may be nil (reported as 0).
func (r *Registry) SetMemoryBudget(limit int64, inUse func() int64) {
	r.memoryBudget.Set(float64(limit))
	if inUse == nil {
		r.memoryInUseFunc.Store(nil)
		return
	}
	r.memoryInUseFunc.Store(&inUse)
}
