package bridge

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/bot"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// inventory scans the local SCSI devices (and USB mass-storage
// interfaces) on first use, again after refresh (a reload, a device
// event), and remembers which USB interfaces are open through their sg
// nodes or over the Bulk-Only transport.
type inventory struct {
	scanMu sync.Mutex
	fresh  bool
	devs   []discover.Device
	err    error
	scan   func() ([]discover.Device, error)

	usbFresh bool
	usb      []discover.USBInterface
	usbErr   error
	scanUSB  func() ([]discover.USBInterface, error)

	mu  sync.Mutex
	sg  map[string]bool           // USB interfaces opened through an sg node
	bot map[string]*bot.Transport // USB interfaces opened over the Bulk-Only transport
}

func newInventory(log zerolog.Logger) *inventory {
	return &inventory{scan: func() ([]discover.Device, error) {
		return discover.Scan(context.Background(), discover.Config{Open: openForScan, Logger: log})
	}, scanUSB: func() ([]discover.USBInterface, error) {
		return discover.ScanUSB(discover.Config{})
	}}
}

func (inv *inventory) usbInterfaces() ([]discover.USBInterface, error) {
	inv.scanMu.Lock()
	defer inv.scanMu.Unlock()
	if !inv.usbFresh {
		inv.usb, inv.usbErr = inv.scanUSB()
		inv.usbFresh = true
	}
	return inv.usb, inv.usbErr
}

// claimSG records that an sg node of USB interface iface is opened, and
// refuses when the interface is open over the Bulk-Only transport, which
// detached the kernel driver and its sg nodes: the same logical unit
// must not be reachable both ways.
func (inv *inventory) claimSG(iface string) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.bot[iface] != nil {
		return fmt.Errorf("USB interface %s is already opened over the Bulk-Only transport (usb { }); its sg nodes are gone", iface)
	}
	if inv.sg == nil {
		inv.sg = map[string]bool{}
	}
	inv.sg[iface] = true
	return nil
}

// devices returns the devices of the last scan, scanning first if none
// was made since the last refresh.
func (inv *inventory) devices() ([]discover.Device, error) {
	inv.scanMu.Lock()
	defer inv.scanMu.Unlock()
	if !inv.fresh {
		inv.devs, inv.err = inv.scan()
		inv.fresh = true
	}
	return inv.devs, inv.err
}

// refresh makes the next devices call scan again.
func (inv *inventory) refresh() {
	inv.scanMu.Lock()
	inv.fresh, inv.usbFresh = false, false
	inv.scanMu.Unlock()
}

// errBehindISCSI is why a LUN behind an iSCSI session is not queried.
var errBehindISCSI = errors.New("behind an iSCSI session: not queried (identity from sysfs)")

// openForScan opens an sg node for discovery's INQUIRY and READ
// CAPACITY, except a LUN behind an iSCSI session: it is remote (often
// this gateway's own export, seen by an initiator on this host), the
// commands would cost round trips at every rescan, and each would take
// the unit attention meant for that initiator's users. Its identity
// comes from the kernel's copies of its VPD pages in sysfs.
func openForScan(path string) (sgio.Device, error) {
	if p, err := filepath.EvalSymlinks(filepath.Join("/sys/class/scsi_generic", filepath.Base(path), "device")); err == nil &&
		strings.Contains(p, "/session") {
		return nil, errBehindISCSI
	}
	return discover.OpenSG(path)
}

// sgOpener opens an sg node (sgio.Open, or a fake in tests).
type sgOpener func(path string, opts ...sgio.Option) (sgio.Device, error)

// openSGDevice is the sgOpener of real devices.
func openSGDevice(path string, opts ...sgio.Option) (sgio.Device, error) {
	d, err := sgio.Open(path, opts...)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// resolveDevice finds the one device that matches every selector of sel.
func resolveDevice(sel *conf.Device, devs []discover.Device) (*discover.Device, error) {
	hits := matchDevices(sel, devs)
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("no local SCSI device matches %s (see sanbridge scan)", describe(sel))
	case 1:
	default:
		var names []string
		for _, h := range hits {
			names = append(names, h.HCTL)
		}
		return nil, fmt.Errorf("%d devices match %s (%s); add a selector so that one does", len(hits), describe(sel), strings.Join(names, ", "))
	}
	d := hits[0]
	if d.Excluded != "" && !sel.AllowInUse {
		return nil, fmt.Errorf("device %s (%s) is not exported: %s; set allow_in_use = true only if nothing on this host uses it", d.HCTL, d.StableName, d.Excluded)
	}
	if d.SG == "" {
		return nil, fmt.Errorf("device %s has no sg node (is the sg module loaded?)", d.HCTL)
	}
	return d, nil
}

// matchDevices returns the devices that match every selector of sel.
func matchDevices(sel *conf.Device, devs []discover.Device) []*discover.Device {
	var target string
	if sel.Path != "" {
		target = sel.Path
		if p, err := filepath.EvalSymlinks(sel.Path); err == nil {
			target = p
		}
	}
	var hits []*discover.Device
	for i := range devs {
		d := &devs[i]
		if sel.WWN != "" && !strings.EqualFold(d.Identity.WWN, sel.WWN) {
			continue
		}
		if sel.Serial != "" && d.Identity.Serial != sel.Serial {
			continue
		}
		if sel.Path != "" && !pathMatches(d, sel.Path, target) {
			continue
		}
		hits = append(hits, d)
	}
	// A LUN that comes over iSCSI with the identity of a local device is
	// that device seen through an initiator on this host (exported by
	// this gateway, or by a peer for multipath), never another device.
	if local := slices.DeleteFunc(slices.Clone(hits), func(d *discover.Device) bool {
		return d.Transport.Kind == discover.TransportISCSI
	}); len(local) > 0 {
		return local
	}
	return hits
}

func pathMatches(d *discover.Device, given, resolved string) bool {
	for _, n := range []string{d.SG, d.Block, d.Tape} {
		if n != "" && (n == given || n == resolved) {
			return true
		}
	}
	for _, l := range append(append([]string(nil), d.ByID...), d.ByPath...) {
		if l == given || filepath.Base(l) == filepath.Base(given) && strings.HasPrefix(given, "/dev/disk/") {
			return true
		}
	}
	return false
}

func describe(sel *conf.Device) string {
	var parts []string
	if sel.WWN != "" {
		parts = append(parts, "wwn "+sel.WWN)
	}
	if sel.Serial != "" {
		parts = append(parts, "serial "+sel.Serial)
	}
	if sel.Path != "" {
		parts = append(parts, "path "+sel.Path)
	}
	return strings.Join(parts, ", ")
}

// openDevice opens the device sel selects for pass-through, and returns
// its identity key: its WWN, else its serial number, else name. A local
// SCSI device comes as a hotDevice, which outlives the device's removal.
func openDevice(sel *conf.Device, name string, inv *inventory, openSG sgOpener, log zerolog.Logger) (sgio.Device, string, error) {
	if sel.USB != nil {
		return openUSB(sel, inv, log)
	}
	devs, err := inv.devices()
	if err != nil {
		return nil, "", fmt.Errorf("scanning devices: %w", err)
	}
	d, err := resolveDevice(sel, devs)
	if err != nil {
		return nil, "", err
	}
	key := "device:" + name
	switch {
	case d.Identity.WWN != "":
		key = d.Identity.WWN
	case d.Identity.Serial != "":
		key = "serial:" + d.Identity.Serial
	}
	if d.Transport.Kind == discover.TransportUSB && d.Transport.HostPath != "" {
		if err := inv.claimSG(d.Transport.HostPath); err != nil {
			return nil, "", err
		}
	}
	opts := sgOptions(sel, log)
	dev, err := openSG(d.SG, opts...)
	if err != nil {
		return nil, "", err
	}
	h := newHotDevice(dev, d)
	h.reopen = func(path string) (sgio.Device, error) { return openSG(path, opts...) }
	return h, key, nil
}

// sgOptions are the SG backend's options for a device block.
func sgOptions(sel *conf.Device, log zerolog.Logger) []sgio.Option {
	opts := []sgio.Option{sgio.WithLogger(log)}
	if sel.QueueDepth > 0 {
		opts = append(opts, sgio.WithQueueDepth(sel.QueueDepth))
	}
	return opts
}
