package bridge

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/bot"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// resolveUSB finds the one Bulk-Only interface that matches every
// selector of u.
func resolveUSB(u *conf.USB, ifaces []discover.USBInterface) (*discover.USBInterface, error) {
	var hits []*discover.USBInterface
	for i := range ifaces {
		f := &ifaces[i]
		switch {
		case !f.BulkOnly,
			u.VendorID != "" && !strings.EqualFold(f.VendorID, u.VendorID),
			u.ProductID != "" && !strings.EqualFold(f.ProductID, u.ProductID),
			u.Serial != "" && f.Serial != u.Serial,
			u.Path != "" && u.Path != f.Name && u.Path != f.BusPath:
			continue
		}
		hits = append(hits, f)
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("no USB Bulk-Only interface matches %s (see sanbridge scan --usb)", describeUSB(u))
	case 1:
		return hits[0], nil
	}
	var names []string
	for _, h := range hits {
		names = append(names, h.Name)
	}
	return nil, fmt.Errorf("%d USB interfaces match %s (%s); add serial or path so that one does", len(hits), describeUSB(u), strings.Join(names, ", "))
}

func describeUSB(u *conf.USB) string {
	var parts []string
	for _, p := range [][2]string{{"vid", u.VendorID}, {"pid", u.ProductID}, {"serial", u.Serial}, {"path", u.Path}} {
		if p[1] != "" {
			parts = append(parts, p[0]+" "+p[1])
		}
	}
	return "usb " + strings.Join(parts, ", ")
}

// usbInUse says why detaching the kernel driver from f would take
// something from this host: a LUN the kernel made of it is mounted,
// swapped on or held (from the SCSI inventory); "" when nothing is.
func usbInUse(f *discover.USBInterface, devs []discover.Device) string {
	for _, l := range f.LUNs {
		for i := range devs {
			if devs[i].HCTL == l.HCTL && len(devs[i].InUse) > 0 {
				return devs[i].InUse[0].String()
			}
		}
	}
	return ""
}

// openUSB opens the logical unit sel.USB selects over the Bulk-Only
// transport (sgio/bot), detaching the kernel driver from the interface,
// and returns its identity key: "usb:VID:PID:SERIAL:LUN", or with the
// interface's bus path when the device has no serial number. The same
// interface is never opened through its sg nodes too (see
// inventory.claimSG).
func openUSB(sel *conf.Device, inv *inventory, log zerolog.Logger) (sgio.Device, string, error) {
	u := sel.USB
	ifaces, err := inv.usbInterfaces()
	if err != nil {
		return nil, "", fmt.Errorf("listing USB interfaces: %w", err)
	}
	f, err := resolveUSB(u, ifaces)
	if err != nil {
		return nil, "", err
	}
	if f.KernelDriven() && !sel.AllowInUse {
		devs, err := inv.devices()
		if err != nil {
			return nil, "", fmt.Errorf("scanning devices: %w", err)
		}
		if why := usbInUse(f, devs); why != "" {
			return nil, "", fmt.Errorf("USB interface %s is in use on this host (%s): opening it detaches %s; set allow_in_use = true only if nothing on this host uses it", f.Name, why, f.Driver)
		}
	}
	dev, err := inv.openBOT(f, u.LUN, log)
	if err != nil {
		return nil, "", err
	}
	key := "usb:" + f.VendorID + ":" + f.ProductID + ":" + f.Serial + ":" + strconv.Itoa(u.LUN)
	if f.Serial == "" {
		key = "usb:" + f.Name + ":" + strconv.Itoa(u.LUN)
	}
	return dev, key, nil
}

// openBOT returns logical unit lun of interface f over the Bulk-Only
// transport. The LUNs of one interface share its transport (BOT runs one
// command at a time per interface); it is opened with the first and
// released, giving the interface back to the kernel driver, when the
// last of them is closed.
func (inv *inventory) openBOT(f *discover.USBInterface, lun int, log zerolog.Logger) (sgio.Device, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.sg[f.Name] {
		return nil, fmt.Errorf("USB interface %s is already opened through its sg node (device { }); it cannot also be opened over the Bulk-Only transport (usb { })", f.Name)
	}
	if t := inv.bot[f.Name]; t != nil {
		return t.LUN(lun)
	}
	sel := bot.Selector{BusPath: f.Name}
	if v, err := strconv.ParseUint(f.VendorID, 16, 16); err == nil {
		sel.VendorID = uint16(v)
	}
	if v, err := strconv.ParseUint(f.ProductID, 16, 16); err == nil {
		sel.ProductID = uint16(v)
	}
	t, err := bot.Open(sel, bot.WithLogger(log))
	if err != nil {
		return nil, err
	}
	d, err := t.LUN(lun)
	// The Devices hold the transport from now on; later LUNs of the
	// interface take theirs from it while one is open.
	if cerr := t.Close(); err == nil && cerr != nil {
		d.Close()
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	if inv.bot == nil {
		inv.bot = map[string]*bot.Transport{}
	}
	inv.bot[f.Name] = t
	return d, nil
}
