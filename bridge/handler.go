package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge/metrics"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// handler is a target's iscsi.Handler: the pass-through target, with
// every command counted in the metrics (per LUN and per initiator) and
// every error a device reports logged with who sent what, at most a few
// times a second per logical unit and sense key, with a count of the
// rest. Everything else (Attach, task management, Admit) is the
// pass-through target's.
type handler struct {
	*passthrough.Target
	reg   *metrics.Registry // nil: no metrics
	log   zerolog.Logger
	stats sync.Map // statsKey -> *metrics.CommandStats
	errs  errorLog
}

type statsKey struct {
	n   *iscsi.Nexus
	lun iscsi.LUN
}

func newHandler(pt *passthrough.Target, reg *metrics.Registry, log zerolog.Logger) *handler {
	return &handler{Target: pt, reg: reg, log: log.With().Str("target", pt.Name()).Logger()}
}

// Execute implements iscsi.Handler.
func (h *handler) Execute(ctx context.Context, cmd *iscsi.Command) iscsi.Response {
	start := time.Now()
	r := h.Target.Execute(ctx, cmd)
	if h.reg == nil && r.Status == scsi.Good {
		return r
	}
	key := scsi.SenseKey(0)
	if r.Status == scsi.CheckCondition {
		if s, err := scsi.ParseSense(r.Sense); err == nil {
			key = s.Key
			if deviceError(s.Key) && ctx.Err() == nil {
				h.errs.log(h.log, cmd, s)
			}
		}
	}
	if h.reg != nil {
		kind, dir, n := classify(cmd, &r)
		h.statsFor(cmd).Done(kind, dir, n, time.Since(start), r.Status, key)
	}
	return r
}

// Detach implements iscsi.Handler: the nexus' stats handles go too.
func (h *handler) Detach(n *iscsi.Nexus) {
	h.Target.Detach(n)
	h.stats.Range(func(k, _ any) bool {
		if k.(statsKey).n == n {
			h.stats.Delete(k)
		}
		return true
	})
}

// statsFor returns the stats handle of the command's nexus and LUN.
func (h *handler) statsFor(cmd *iscsi.Command) *metrics.CommandStats {
	k := statsKey{cmd.Nexus, cmd.LUN}
	if s, ok := h.stats.Load(k); ok {
		return s.(*metrics.CommandStats)
	}
	lun, _ := cmd.LUN.Number()
	s, _ := h.stats.LoadOrStore(k, h.reg.Command(h.Name(), lun, cmd.Nexus.InitiatorName))
	return s.(*metrics.CommandStats)
}

// classify says what kind of command cmd is and how many data bytes it
// moved in which direction.
func classify(cmd *iscsi.Command, r *iscsi.Response) (metrics.Kind, metrics.Direction, int) {
	kind := metrics.KindOther
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpRead6, scsi.OpRead10, scsi.OpRead12, scsi.OpRead16, scsi.OpReadReverse6:
		kind = metrics.KindRead
	case scsi.OpWrite6, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16,
		scsi.OpWriteAndVerify10, scsi.OpWriteAndVerify12, scsi.OpWriteAndVerify16,
		scsi.OpWriteSame10, scsi.OpWriteSame16, scsi.OpWriteAtomic16, scsi.OpWriteFilemarks6, scsi.OpWriteFilemarks16:
		kind = metrics.KindWrite
	}
	switch {
	case cmd.Read && r.ReadLen > 0:
		return kind, metrics.DirRead, r.ReadLen
	case cmd.Write && r.Status == scsi.Good:
		return kind, metrics.DirWrite, len(cmd.WriteData)
	}
	return kind, metrics.DirNone, 0
}

// deviceError reports whether a sense key is a device's failure (not a
// condition such as a unit attention, a reservation or an illegal
// request, which are the initiator's business).
func deviceError(k scsi.SenseKey) bool {
	switch k {
	case scsi.SenseNotReady, scsi.SenseMediumError, scsi.SenseHardwareError, scsi.SenseAbortedCommand:
		return true
	}
	return false
}

// errorLog rate-limits device error logs per LUN and sense key: the first
// of each burst is logged, the next ones within errorLogEvery are counted
// and reported with the next logged one.
type errorLog struct {
	now  func() time.Time // nil: time.Now
	mu   sync.Mutex
	last map[errorLogKey]*errorLogEntry
}

type errorLogKey struct {
	lun iscsi.LUN
	key scsi.SenseKey
}

type errorLogEntry struct {
	at         time.Time
	suppressed int
}

// errorLogEvery is the least time between two logs of one LUN and sense
// key.
const errorLogEvery = 5 * time.Second

func (e *errorLog) log(log zerolog.Logger, cmd *iscsi.Command, s scsi.Sense) {
	now := time.Now()
	if e.now != nil {
		now = e.now()
	}
	k := errorLogKey{cmd.LUN, s.Key}
	e.mu.Lock()
	if e.last == nil {
		e.last = map[errorLogKey]*errorLogEntry{}
	}
	ent := e.last[k]
	if ent == nil {
		ent = &errorLogEntry{}
		e.last[k] = ent
	}
	if !ent.at.IsZero() && now.Sub(ent.at) < errorLogEvery {
		ent.suppressed++
		e.mu.Unlock()
		return
	}
	n := ent.suppressed
	ent.at, ent.suppressed = now, 0
	if len(e.last) > 1024 { // LUNs come and go: forget the quiet ones
		for ok, oe := range e.last {
			if now.Sub(oe.at) > time.Minute {
				delete(e.last, ok)
			}
		}
	}
	e.mu.Unlock()
	lun, _ := cmd.LUN.Number()
	log.Warn().Str("initiator", cmd.Nexus.InitiatorName).Stringer("isid", cmd.Nexus.ISID).Uint64("lun", lun).
		Stringer("opcode", scsi.Opcode(cmd.CDB[0])).Stringer("sense_key", s.Key).Stringer("asc", s.ASC).
		Int("suppressed", n).Msg("device error")
}
