package passthrough

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Target implements iscsi.Handler for one iSCSI target: the registry of
// the logical units its views may map, the views themselves (which
// initiator sees which logical unit at which LUN number), the state of
// every attached I_T nexus, and task management.
type Target struct {
	name  string
	ports map[uint16]uint16 // portal group tag -> relative target port identifier
	log   zerolog.Logger

	mu      sync.Mutex // serializes Attach, Detach and SetViews
	views   ViewFunc
	lus     []*LU
	nexuses sync.Map // *iscsi.Nexus -> *nexus, from Attach to Detach
}

// TargetConfig describes a target for [NewTarget].
type TargetConfig struct {
	// Name is the target's iSCSI name.
	Name string
	// Ports gives the relative target port identifier (SPC-4 3.1.120) of
	// each portal group the target is reached through, unique across the
	// gateway for the ports that reach a logical unit. Empty means one
	// portal group, tag 1, identifier 1; a group missing from a non-empty
	// map uses its tag as identifier.
	Ports map[uint16]uint16
	// LUs are the logical units the views may map. A view that maps
	// another one adds it.
	LUs []*LU
	// Views gives each initiator its view.
	Views ViewFunc
	// Log receives the target's logs.
	Log zerolog.Logger
}

// NewTarget returns a handler for the target c describes.
func NewTarget(c TargetConfig) (*Target, error) {
	if c.Name == "" {
		return nil, errors.New("passthrough: target has no name")
	}
	if c.Views == nil {
		return nil, fmt.Errorf("passthrough: target %s has no views", c.Name)
	}
	t := &Target{name: c.Name, ports: make(map[uint16]uint16, len(c.Ports)), log: c.Log, views: c.Views}
	seen := make(map[uint16]uint16, len(c.Ports))
	for tpgt, rel := range c.Ports {
		if rel == 0 {
			return nil, fmt.Errorf("passthrough: target %s: portal group %d has relative target port identifier 0", c.Name, tpgt)
		}
		if prev, dup := seen[rel]; dup {
			return nil, fmt.Errorf("passthrough: target %s: portal groups %d and %d share relative target port identifier %d", c.Name, prev, tpgt, rel)
		}
		seen[rel] = tpgt
		t.ports[tpgt] = rel
	}
	if len(t.ports) == 0 {
		t.ports[1] = 1
	}
	t.setRegistry(c.LUs)
	return t, nil
}

// Name returns the target's iSCSI name.
func (t *Target) Name() string { return t.name }

// ViewOf returns the view the named initiator gets at login.
func (t *Target) ViewOf(initiatorName string) View {
	t.mu.Lock()
	f := t.views
	t.mu.Unlock()
	return f(initiatorName)
}

// relPort returns the relative target port identifier of portal group
// tpgt.
func (t *Target) relPort(tpgt uint16) uint16 {
	if rel, ok := t.ports[tpgt]; ok {
		return rel
	}
	return tpgt
}

// setRegistry replaces the logical unit registry with lus. t.mu is held
// or t is not yet shared.
func (t *Target) setRegistry(lus []*LU) {
	for _, lu := range t.lus {
		if !slices.Contains(lus, lu) {
			lu.removeTarget(t)
		}
	}
	t.lus = t.lus[:0:0]
	for _, lu := range lus {
		if lu != nil && !slices.Contains(t.lus, lu) {
			t.lus = append(t.lus, lu)
			lu.addTarget(t)
		}
	}
}

// register adds the logical units of v missing from the registry. t.mu
// is held.
func (t *Target) register(v View) {
	for _, m := range v.maps {
		if !slices.Contains(t.lus, m.LU) {
			t.lus = append(t.lus, m.LU)
			m.LU.addTarget(t)
		}
	}
}

// Attach implements iscsi.Handler: the nexus gets the initiator's view,
// and POWER ON, RESET, OR BUS DEVICE RESET OCCURRED is pending on each
// logical unit it sees (SAM-5 5.14: a new I_T nexus is told that
// whatever it knew may be stale).
func (t *Target) Attach(in *iscsi.Nexus, ctl iscsi.NexusControl) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.nexuses.Load(in); dup {
		t.log.Error().Str("initiator", in.InitiatorPort()).Msg("nexus attached twice; keeping the first")
		return
	}
	n := newNexus(t, in, ctl)
	v := t.views(in.InitiatorName)
	t.register(v)
	n.setView(v, scsi.ASCPowerOnOrReset, false)
	t.nexuses.Store(in, n)
}

// Detach implements iscsi.Handler: the nexus' state goes, and with it an
// SPC-2 reservation it held (I_T nexus loss).
func (t *Target) Detach(in *iscsi.Nexus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.nexuses.LoadAndDelete(in); ok {
		v.(*nexus).close()
	}
}

// SetViews replaces the target's logical unit registry and views. Every
// attached nexus whose view changes gets the new one at once, and
// REPORTED LUNS DATA HAS CHANGED on each logical unit it now sees
// (SPC-4 6.33); logical units it no longer sees end their SPC-2
// reservation for it. It returns the number of nexuses whose view
// changed.
func (t *Target) SetViews(lus []*LU, views ViewFunc) (int, error) {
	if views == nil {
		return 0, fmt.Errorf("passthrough: target %s: no views", t.name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.views = views
	t.setRegistry(lus)
	changed := 0
	t.nexuses.Range(func(_, v any) bool {
		n := v.(*nexus)
		nv := views(n.in.InitiatorName)
		if cur := n.view.Load(); cur != nil && cur.Equal(nv) {
			return true
		}
		t.register(nv)
		n.setView(nv, scsi.ASCReportedLUNsDataChanged, true)
		changed++
		return true
	})
	return changed, nil
}

// nexusOf returns the state of an attached nexus. A nexus the engine did
// not attach is attached now, without task control.
func (t *Target) nexusOf(in *iscsi.Nexus) *nexus {
	if v, ok := t.nexuses.Load(in); ok {
		return v.(*nexus)
	}
	t.log.Warn().Str("initiator", in.InitiatorPort()).Msg("command from a nexus that was not attached")
	t.Attach(in, nil)
	v, _ := t.nexuses.Load(in)
	return v.(*nexus)
}

// HasLUN implements iscsi.Handler: only LUNs in the initiator's view
// exist for it.
func (t *Target) HasLUN(in *iscsi.Nexus, l iscsi.LUN) bool {
	_, _, ok := t.nexusOf(in).view.Load().lookup(l)
	return ok
}

// TaskManagement implements iscsi.Handler. The engine has aborted the
// tasks of this nexus the function affects (of every session of this
// target for the target resets) and waited for them; the rest is done
// here (SAM-5 7):
//   - CLEAR TASK SET: the tasks of every other nexus that sees the logical
//     unit are aborted, and those nexuses get COMMANDS CLEARED BY ANOTHER
//     INITIATOR;
//   - LOGICAL UNIT RESET: the same aborts; the device is reset when it
//     supports it, the SPC-2 reservation ends, and every nexus of the
//     logical unit, this one included, gets BUS DEVICE RESET FUNCTION
//     OCCURRED (SAM-5 6.3.3);
//   - TARGET WARM/COLD RESET: a logical unit reset of every logical unit
//     of the target, whose tasks through other targets are aborted too
//     (the engine ends the nexuses of a cold reset itself).
func (t *Target) TaskManagement(ctx context.Context, in *iscsi.Nexus, fn iscsi.TMFunction, l iscsi.LUN) iscsi.TMFResponse {
	n := t.nexusOf(in)
	switch fn {
	case iscsi.TMFAbortTask, iscsi.TMFAbortTaskSet:
		return iscsi.TMFComplete
	case iscsi.TMFClearTaskSet, iscsi.TMFLogicalUnitReset:
		m, _, ok := n.view.Load().lookup(l)
		if !ok {
			return iscsi.TMFLUNNotExist
		}
		m.LU.abortTasks(func(o *nexus) bool { return o != n })
		if fn == iscsi.TMFClearTaskSet {
			m.LU.raiseUA(scsi.ASCCommandsClearedByAnother, n)
			m.LU.publishReset(ctx, scsi.ASCCommandsClearedByAnother)
			return iscsi.TMFComplete
		}
		m.LU.reset(ctx)
		m.LU.raiseUA(scsi.ASCBusDeviceResetOccurred, nil)
		m.LU.publishReset(ctx, scsi.ASCBusDeviceResetOccurred)
		return iscsi.TMFComplete
	case iscsi.TMFTargetWarmReset, iscsi.TMFTargetColdReset:
		t.mu.Lock()
		lus := slices.Clone(t.lus)
		t.mu.Unlock()
		for _, lu := range lus {
			lu.abortTasks(func(o *nexus) bool { return o.t != t })
			lu.reset(ctx)
			lu.raiseUA(scsi.ASCBusDeviceResetOccurred, nil)
			lu.publishReset(ctx, scsi.ASCBusDeviceResetOccurred)
		}
		return iscsi.TMFComplete
	}
	return iscsi.TMFNotSupported
}
