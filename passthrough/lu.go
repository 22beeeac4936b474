package passthrough

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// LU is one logical unit: a device, the concurrency it allows, and what
// SCSI keeps per logical unit, shared by every I_T nexus and every target
// that maps it: the SPC-2 reservation, the persistent reservations, and
// the attached I_T_L nexuses that unit attentions fan out to. The same
// backend mapped in several views or targets is one LU.
type LU struct {
	name string
	key  string
	dev  sgio.Device
	q    *fairQueue // the device's queue depth, shared round-robin between nexuses (fairq.go)
	log  zerolog.Logger
	geom atomic.Pointer[Geometry] // bounds commands before allocation (admit.go)

	// reserved is the SPC-2 reservation's holder, nil when none
	// (reserve.go).
	reserved atomic.Pointer[nexus]

	pr    *PR
	prOut chan struct{} // a one-slot lock serializing PR OUT (abortable)

	// shared connects a logical unit several gateways serve to the
	// others (alua.go); nil for a logical unit of this gateway alone.
	shared Shared

	// What the gateway knows of the device (devinfo.go) and does with
	// its commands (policy.go).
	info     devInfo
	pol      *policy
	maxXfer  int         // the path's transfer limit in bytes (0: none known)
	dsense   atomic.Bool // D_SENSE as the gateway presents it (mode.go)
	capStale atomic.Bool // the capacity must be read again before a range check
	quirks   quirk       // workarounds for the device (quirks.go)

	mu      sync.Mutex
	itls    map[*itl]struct{}    // attached I_T_L nexuses that see the LU
	targets map[*Target]struct{} // targets whose registry holds the LU
}

// LUConfig describes a logical unit for [NewLU].
type LUConfig struct {
	// Name names the logical unit in logs (the configuration's backend
	// name).
	Name string
	// Key identifies the backend across restarts and gateways: the
	// device's WWN or serial number, else the configuration's name. The
	// persistent reservation state is stored under it. Empty means Name.
	Key string
	// Device executes the logical unit's commands.
	Device sgio.Device
	// PRStore keeps the persistent reservation state; nil keeps it in
	// memory only.
	PRStore PRStore
	// Log receives the logical unit's logs.
	Log zerolog.Logger
	// QueueDepth bounds the commands in flight to the device; 0 means
	// the device's own queue depth (Limits), else 32.
	QueueDepth int
	// Policy is what the configuration changes in the device-type
	// policy (allowed and denied opcodes, timeouts).
	Policy PolicyConfig
}

// NewLU returns a logical unit for c.Device, with its persistent
// reservation state loaded from c.PRStore. It asks the device what the
// gateway needs to know (devinfo.go: type, capacity, VPD pages, D_SENSE);
// a device that does not answer leaves those unknown, and the device
// type's policy is that of its peripheral type.
func NewLU(ctx context.Context, c LUConfig) (*LU, error) {
	if c.Device == nil {
		return nil, fmt.Errorf("passthrough: logical unit %q has no device", c.Name)
	}
	key := cmp.Or(c.Key, c.Name)
	if key == "" {
		return nil, errors.New("passthrough: logical unit has neither a name nor a key")
	}
	qd := c.QueueDepth
	if qd <= 0 {
		qd = c.Device.Limits().QueueDepth
	}
	if qd <= 0 {
		qd = 32
	}
	lu := &LU{
		name:    cmp.Or(c.Name, key),
		key:     key,
		dev:     c.Device,
		q:       newFairQueue(qd),
		log:     c.Log,
		prOut:   make(chan struct{}, 1),
		itls:    make(map[*itl]struct{}),
		targets: make(map[*Target]struct{}),
	}
	pr, err := NewPR(ctx, c.PRStore, key, PRHooks{UA: lu.prUA, Abort: lu.prAbort, Ports: lu.prPorts})
	if err != nil {
		return nil, fmt.Errorf("passthrough: logical unit %s: persistent reservations: %w", lu.name, err)
	}
	lu.pr = pr
	info, g, dsense := probe(ctx, c.Device)
	lu.info = info
	lu.quirks = info.quirks
	lu.maxXfer = c.Device.Limits().MaxTransferBytes
	lu.dsense.Store(dsense)
	lu.geom.Store(&g)
	if lu.pol, err = newPolicy(g.Type, c.Policy); err != nil {
		return nil, fmt.Errorf("passthrough: logical unit %s: %w", lu.name, err)
	}
	lu.log.Debug().Str("lu", lu.name).Stringer("type", g.Type).Str("vendor", info.vendor).Str("product", info.product).
		Uint32("block_size", g.BlockSize).Uint64("blocks", g.Blocks).Int("max_transfer", lu.maxXfer).
		Bool("d_sense", dsense).Uint32("quirks", uint32(lu.quirks)).Msg("device probed")
	return lu, nil
}

// Name returns the logical unit's name.
func (lu *LU) Name() string { return lu.name }

// Key returns the logical unit's identity key.
func (lu *LU) Key() string { return lu.key }

// Device returns the logical unit's device.
func (lu *LU) Device() sgio.Device { return lu.dev }

// attach adds an I_T_L nexus that sees the logical unit.
func (lu *LU) attach(x *itl) {
	lu.mu.Lock()
	lu.itls[x] = struct{}{}
	lu.mu.Unlock()
}

// detach removes an I_T_L nexus: its nexus ended or no longer sees the
// logical unit, and an SPC-2 reservation it held ends with it.
func (lu *LU) detach(x *itl) {
	lu.mu.Lock()
	delete(lu.itls, x)
	lu.mu.Unlock()
	lu.releaseHeldBy(x.n)
}

// addTarget and removeTarget keep the set of targets that can reach the
// logical unit (its target ports, for persistent reservations).
func (lu *LU) addTarget(t *Target) {
	lu.mu.Lock()
	lu.targets[t] = struct{}{}
	lu.mu.Unlock()
}

func (lu *LU) removeTarget(t *Target) {
	lu.mu.Lock()
	delete(lu.targets, t)
	lu.mu.Unlock()
}

// raiseUA establishes unit attention asc for every attached I_T_L nexus
// of the logical unit except those of nexus skip (nil: all of them).
func (lu *LU) raiseUA(asc scsi.ASC, skip *nexus) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for x := range lu.itls {
		if x.n != skip {
			x.ua.add(asc)
		}
	}
}

// reset performs what a logical unit reset does to the logical unit
// (SAM-5 6.3.3): the device is reset when it can be, and the SPC-2
// reservation ends. Persistent reservations survive it. The caller
// raises the unit attentions.
func (lu *LU) reset(ctx context.Context) {
	lu.clearReservation()
	r, ok := lu.dev.(sgio.Resetter)
	if !ok {
		return
	}
	if err := r.Reset(ctx); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		lu.log.Warn().Err(err).Str("lu", lu.name).Msg("device reset failed")
		return
	}
	// A reset returns the mode parameters to their saved values (SAM-5
	// 6.3.3): D_SENSE is the device's again.
	lu.dsense.Store(dsenseOf(ctx, lu.dev))
}

// prUA is the persistent reservations' UA hook: it establishes asc for
// the I_T_L nexuses p covers.
func (lu *LU) prUA(p PRNexus, asc scsi.ASC) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for x := range lu.itls {
		if p.Covers(x.n.pr) {
			x.ua.add(asc)
		}
	}
}

// prCallerKey marks the context of a PERSISTENT RESERVE OUT with the
// nexus that sent it.
type prCallerKey struct{}

// prAbort is the persistent reservations' abort hook (PREEMPT AND
// ABORT): the tasks on this logical unit of the nexuses p covers are
// aborted, and it returns once none of them can touch the medium
// anymore. The nexus running the PERSISTENT RESERVE OUT (in ctx) is
// skipped: its own task would wait for itself.
func (lu *LU) prAbort(ctx context.Context, p PRNexus) {
	caller, _ := ctx.Value(prCallerKey{}).(*nexus)
	lu.abortTasks(func(n *nexus) bool { return n != caller && p.Covers(n.pr) })
}

// abortTasks aborts the tasks on this logical unit of every attached
// nexus match selects, through the engine's NexusControl, and waits for
// them. It must not be called from a task it would abort.
func (lu *LU) abortTasks(match func(*nexus) bool) {
	type victim struct {
		ctl iscsi.NexusControl
		lun uint64
	}
	var vs []victim
	lu.mu.Lock()
	for x := range lu.itls {
		if x.n.ctl == nil || !match(x.n) {
			continue
		}
		if lun, ok := x.n.lunOf(lu); ok {
			vs = append(vs, victim{x.n.ctl, lun})
		}
	}
	lu.mu.Unlock()
	for _, v := range vs {
		v.ctl.AbortTasks(iscsi.MakeLUN(v.lun), false)
	}
}

// prPorts is the persistent reservations' port hook: every target port
// through which the logical unit can be reached, by relative target port
// identifier.
func (lu *LU) prPorts() []PRTargetPort {
	lu.mu.Lock()
	ts := make([]*Target, 0, len(lu.targets))
	for t := range lu.targets {
		ts = append(ts, t)
	}
	lu.mu.Unlock()
	var out []PRTargetPort
	for _, t := range ts {
		for tpgt, rel := range t.ports {
			out = append(out, PRTargetPort{Name: targetPortName(t.name, tpgt), RelTargetPortID: rel})
		}
	}
	slices.SortFunc(out, func(a, b PRTargetPort) int { return cmp.Compare(a.RelTargetPortID, b.RelTargetPortID) })
	return out
}

// persistentReserveIn answers PERSISTENT RESERVE IN from n.
func (lu *LU) persistentReserveIn(ctx context.Context, n *nexus, cmd *iscsi.Command) iscsi.Response {
	written, wanted, st, sense := lu.pr.In(ctx, n.pr, cmd.CDB, cmd.ReadBuf)
	return iscsi.Response{Status: st, Sense: sense, ReadLen: written, Wanted: wanted}
}

// persistentReserveOut executes PERSISTENT RESERVE OUT from n. PR OUTs
// of a logical unit run one at a time; waiting for the turn ends when the
// task is aborted.
func (lu *LU) persistentReserveOut(ctx context.Context, n *nexus, cmd *iscsi.Command) iscsi.Response {
	select {
	case lu.prOut <- struct{}{}:
	case <-ctx.Done():
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	// PR OUTs wait here rather than in PR.Out, where a PREEMPT AND ABORT
	// could not abort them.
	st, sense := lu.pr.Out(context.WithValue(ctx, prCallerKey{}, n), n.pr, cmd.CDB, cmd.WriteData)
	<-lu.prOut
	return iscsi.Response{Status: st, Sense: sense}
}

// prConflict reports whether the persistent reservation forbids cdb from
// n (SPC-4 5.13.1); one atomic load while no registration exists.
func (lu *LU) prConflict(n *nexus, cdb []byte) bool { return lu.pr.Conflict(n.pr, cdb) }
