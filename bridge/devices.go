package bridge

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// inventory scans the local SCSI devices once, on first use.
type inventory struct {
	once sync.Once
	devs []discover.Device
	err  error
	scan func() ([]discover.Device, error)
}

func newInventory(log zerolog.Logger) *inventory {
	return &inventory{scan: func() ([]discover.Device, error) {
		return discover.Scan(context.Background(), discover.Config{Open: discover.OpenSG, Logger: log})
	}}
}

func (inv *inventory) devices() ([]discover.Device, error) {
	inv.once.Do(func() { inv.devs, inv.err = inv.scan() })
	return inv.devs, inv.err
}

// resolveDevice finds the one device that matches every selector of sel.
func resolveDevice(sel *conf.Device, devs []discover.Device) (*discover.Device, error) {
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
// its identity key: its WWN, else its serial number, else name.
func openDevice(sel *conf.Device, name string, inv *inventory, log zerolog.Logger) (sgio.Device, string, error) {
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
	dev, err := sgio.Open(d.SG, sgio.WithLogger(log))
	if err != nil {
		return nil, "", err
	}
	return dev, key, nil
}
