package bridge

import (
	"context"
	"errors"
	"path"
	"reflect"
	"time"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// Devices come and go. Kernel uevents (a monitor on NETLINK_KOBJECT_UEVENT)
// say when, and a periodic rescan makes sure: a missed event (the socket
// overflowed, the monitor could not be opened) cannot leave a wrong
// state, because each reconciliation compares the whole inventory with
// what the logical units run on:
//   - a device a logical unit runs on that is not in the inventory is gone
//     (hotDevice.gone: its LUN answers NOT READY);
//   - a device whose identity matches a gone logical unit's, under any sg
//     node, is opened and put back under it (hotDevice.reattach: unit
//     attention, same LUN, no relogin); so is one whose sg node or H:C:T:L
//     changed while it looked present;
//   - auto-export is computed again, and applied like a reload when what
//     it exports changed (a new matching device gets its LUN).

// defaultRescanInterval is the periodic rescan's interval.
const defaultRescanInterval = 30 * time.Second

// settleDelay lets a burst of events (a device brings several: scsi,
// scsi_device, scsi_generic, block) end before the rescan.
const settleDelay = 300 * time.Millisecond

// watchDevices follows device arrivals and removals until ctx ends.
func (b *Bridge) watchDevices(ctx context.Context) {
	b.seen.Store(true)
	defer b.seen.Store(false)
	events := make(chan discover.Uevent, 64)
	if mon, err := discover.OpenUeventMonitor(); err != nil {
		b.log.Warn().Err(err).Msg("kernel device events unavailable: devices are found by the periodic rescan only")
	} else {
		go func() {
			defer mon.Close()
			for {
				ev, err := mon.Next(ctx)
				switch {
				case ctx.Err() != nil:
					return
				case errors.Is(err, discover.ErrUeventOverflow):
					b.log.Warn().Msg("kernel device events were lost: rescanning")
					b.requestRescan()
					continue
				case err != nil:
					b.log.Warn().Err(err).Msg("kernel device events: monitor failed; the periodic rescan goes on")
					return
				}
				select {
				case events <- ev:
				default:
					b.requestRescan()
				}
			}
		}()
	}
	interval := b.opts.RescanInterval
	if interval <= 0 {
		interval = defaultRescanInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			settle.Stop()
			return
		case ev := <-events:
			if ev.Action == discover.ActionRemove && ev.Subsystem == "scsi_generic" && ev.DevName != "" {
				// Answer for the removed device at once; the rescan
				// confirms.
				b.sgRemoved("/dev/" + path.Base(ev.DevName))
			}
			settle.Reset(settleDelay)
		case <-b.rescan:
			settle.Reset(settleDelay)
		case <-settle.C:
			b.Reconcile()
		case <-tick.C:
			b.Reconcile()
		}
	}
}

// requestRescan asks the watcher for a rescan soon.
func (b *Bridge) requestRescan() {
	select {
	case b.rescan <- struct{}{}:
	default:
	}
}

// deviceLost is told by a hotDevice whose command found its device gone.
func (b *Bridge) deviceLost() { b.requestRescan() }

// sgRemoved marks the logical unit running on sg node node gone.
func (b *Bridge) sgRemoved(node string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, ls := range b.gen.lus {
		if ls.hot == nil {
			continue
		}
		if st, sg, _, _, _ := ls.hot.where(); st != devGone && sg == node && ls.hot.gone() {
			b.log.Warn().Str("backend", name).Str("device", ls.hot.id).Str("sg", node).Msg("device removed: its LUN answers NOT READY until it comes back")
			b.deviceRemoved(ls.hot.id)
		}
	}
}

// Reconcile scans the devices and brings the logical units and
// auto-export in line with them (see the top of this file).
func (b *Bridge) Reconcile() {
	b.inv.refresh()
	devs, err := b.inv.devices()
	if err != nil {
		b.log.Warn().Err(err).Msg("device rescan failed")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return
	}
	byID := make(map[string][]*discover.Device, len(devs))
	for i := range devs {
		id := identityOf(&devs[i])
		byID[id] = append(byID[id], &devs[i])
	}
	for name, ls := range b.gen.lus {
		h := ls.hot
		if h == nil {
			continue
		}
		st, sg, hctl, _, _ := h.where()
		d := pickDevice(byID[h.id], sg, hctl, h.overISCSI)
		switch {
		case d == nil || d.SG == "":
			if st != devGone && h.gone() {
				b.log.Warn().Str("backend", name).Str("device", h.id).Str("sg", sg).Msg("device removed: its LUN answers NOT READY until it comes back")
				b.deviceRemoved(h.id)
			}
		case st == devGone || d.SG != sg || d.HCTL != hctl:
			dev, err := h.reopen(d.SG)
			if err != nil {
				b.log.Warn().Err(err).Str("backend", name).Str("device", h.id).Str("sg", d.SG).Msg("device is back but cannot be opened; retrying at the next rescan")
				continue
			}
			if !h.reattach(dev, d) {
				dev.Close()
				continue
			}
			b.log.Info().Str("backend", name).Str("device", h.id).Str("sg", d.SG).Str("hctl", d.HCTL).
				Msg("device is back: re-attached to its LUN (initiators get a unit attention)")
		}
	}
	b.noteDevicesFrom(devs)
	if len(b.cfg.AutoExports) == 0 {
		return
	}
	eff, err := b.effective(b.cfg, devs)
	if err != nil {
		b.log.Warn().Err(err).Msg("auto-export after a device change")
		return
	}
	if sameExports(b.gen.cfg, eff) {
		return
	}
	res, err := b.applyLocked(b.cfg, devs)
	if err != nil {
		b.log.Error().Err(err).Msg("auto-export after a device change failed; exports unchanged")
		return
	}
	b.log.Info().Strs("changes", res.Changes).Msg("auto-export follows the devices")
}

// pickDevice chooses, among the devices with a logical unit's identity,
// the one it runs on: the one it runs on already, else one that does not
// come over iSCSI (a LUN with the identity of a local device, seen
// through an initiator on this host, is that device exported by this
// gateway, or by a peer for multipath: never the device itself), unless
// the logical unit came over iSCSI itself. nil when none is.
func pickDevice(cands []*discover.Device, sg, hctl string, overISCSI bool) *discover.Device {
	for _, d := range cands {
		if d.SG == sg && d.HCTL == hctl && d.SG != "" {
			return d
		}
	}
	for _, d := range cands {
		if overISCSI || d.Transport.Kind != discover.TransportISCSI {
			return d
		}
	}
	return nil
}

// sameExports reports whether two effective configurations export the
// same backends at the same places.
func sameExports(a, b *conf.Config) bool {
	if len(a.Targets) != len(b.Targets) {
		return false
	}
	for i := range a.Targets {
		if a.Targets[i].Name != b.Targets[i].Name || !reflect.DeepEqual(mapsOf(&a.Targets[i]), mapsOf(&b.Targets[i])) {
			return false
		}
	}
	return true
}

// noteDevices counts the devices of the current inventory scan that
// appeared or went away since the last count. b.mu is held.
func (b *Bridge) noteDevices() {
	if devs, err := b.inv.devices(); err == nil {
		b.noteDevicesFrom(devs)
	}
}

func (b *Bridge) noteDevicesFrom(devs []discover.Device) {
	now := make(map[string]bool, len(devs))
	for i := range devs {
		d := &devs[i]
		id := identityOf(d)
		now[id] = true
		if !b.known[id] && b.opts.Metrics != nil {
			b.opts.Metrics.DeviceArrived()
		}
	}
	for id := range b.known {
		if !now[id] {
			b.deviceRemoved(id)
		}
	}
	b.known = now
}

// deviceRemoved counts a device that went away (once). b.mu is held.
func (b *Bridge) deviceRemoved(id string) {
	if !b.known[id] {
		return
	}
	delete(b.known, id)
	if b.opts.Metrics != nil {
		b.opts.Metrics.DeviceRemoved()
	}
}

var _ iscsi.PortalSet = (*targetSet)(nil)
