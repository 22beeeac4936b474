package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// LimitCounts says how often each of the gateway's resource limits bit
// (the engine's iscsi.LimitStats counters, which the bridge converts):
// exported as sanbridge_limit_hits_total{limit}.
type LimitCounts struct {
	MemoryFull      uint64 // TASK SET FULL for the memory budget
	TaskTableFull   uint64 // TASK SET FULL for a full task table
	TransferRefused uint64 // refused before allocation: beyond the LU's limit or medium
	WindowWithheld  uint64 // CmdSN window openings withheld under memory pressure
	SessionsRefused uint64 // logins refused for the session limits
	PendingRefused  uint64 // connections closed for the pending-login limits
	TMFRejected     uint64 // task management requests rejected
	TextKeys        uint64 // login or text requests with too many keys
	AuthFailures    uint64 // failed CHAP authentications
	AuthDelayed     uint64 // login responses delayed for earlier failures
	AuthLockouts    uint64 // lockouts begun
	AuthLockedOut   uint64 // logins refused during a lockout
}

// limitCollector reads the counts at scrape time.
type limitCollector struct {
	fn   atomic.Pointer[func() LimitCounts]
	desc *prometheus.Desc
}

func (c *limitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *limitCollector) Collect(ch chan<- prometheus.Metric) {
	fn := c.fn.Load()
	if fn == nil {
		return
	}
	n := (*fn)()
	for _, v := range []struct {
		limit string
		n     uint64
	}{
		{"memory_full", n.MemoryFull}, {"task_table_full", n.TaskTableFull},
		{"transfer_refused", n.TransferRefused}, {"window_withheld", n.WindowWithheld},
		{"sessions_refused", n.SessionsRefused}, {"pending_logins_refused", n.PendingRefused},
		{"tmf_rejected", n.TMFRejected}, {"text_keys_refused", n.TextKeys},
		{"auth_failures", n.AuthFailures}, {"auth_delayed", n.AuthDelayed},
		{"auth_lockouts", n.AuthLockouts}, {"auth_locked_out", n.AuthLockedOut},
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v.n), v.limit)
	}
}

// SetLimitCounts publishes sanbridge_limit_hits_total{limit} from fn,
// which is called once per scrape (nil stops publishing). The first call
// registers the family.
func (r *Registry) SetLimitCounts(fn func() LimitCounts) {
	c := r.limits.Load()
	if c == nil {
		c = &limitCollector{desc: prometheus.NewDesc(namespace+"_limit_hits_total",
			"How often each resource limit refused or delayed something (memory budget, task table, transfer limits, sessions, pending logins, task management, text keys, CHAP throttle).",
			[]string{"limit"}, nil)}
		if r.limits.CompareAndSwap(nil, c) {
			r.reg.MustRegister(c)
		}
		c = r.limits.Load()
	}
	if fn == nil {
		c.fn.Store(nil)
		return
	}
	c.fn.Store(&fn)
}
