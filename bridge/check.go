package bridge

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// Inventory is the machine's devices as sanbridge check looks at them.
type Inventory struct {
	Devices []discover.Device
	USB     []discover.USBInterface
	// USBErr is why the USB interfaces could not be listed (then USB
	// selectors are not checked).
	USBErr error
}

// ScanInventory scans the local SCSI devices (opening them for their
// identity) and the USB mass-storage interfaces.
func ScanInventory(log zerolog.Logger) (Inventory, error) {
	inv := newInventory(log)
	devs, err := inv.devices()
	if err != nil {
		return Inventory{}, err
	}
	usb, uerr := inv.usbInterfaces()
	return Inventory{Devices: devs, USB: usb, USBErr: uerr}, nil
}

// CheckDevices checks a configuration against an inventory, as serve
// would find it: every device block must select exactly one device that
// is free (or allow_in_use) and not itself an iSCSI LUN (idem), every
// usb block one Bulk-Only interface; an auto_export block that selects
// nothing is warned about. notes say what each auto_export block would
// export. stateDir, when set, is where the LUN numbers of auto-exported
// devices are read from (nothing is written).
func CheckDevices(cfg *conf.Config, inv Inventory, stateDir string) (diags hcl.Diagnostics, notes []string) {
	for i := range cfg.Backends {
		be := &cfg.Backends[i]
		if be.Device == nil {
			continue
		}
		if d := checkDevice(be.Device, inv); d != nil {
			diags = append(diags, d)
		}
	}
	if len(cfg.AutoExports) == 0 {
		return diags, nil
	}
	b := &Bridge{log: zerolog.Nop(), book: newLUNBook(stateDir),
		inv: &inventory{scan: func() ([]discover.Device, error) { return inv.Devices, nil }}}
	if err := b.book.load(); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Auto-exported LUN numbers unreadable",
			Detail: err.Error(), Subject: cfg.AutoExports[0].DeclRange.Ptr()})
	}
	b.book.path = "" // never written by a check
	eff, err := b.effective(cfg, inv.Devices)
	if err != nil {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Auto-export failed", Detail: err.Error(),
			Subject: cfg.AutoExports[0].DeclRange.Ptr()}), nil
	}
	for _, a := range cfg.AutoExports {
		var got []string
		for _, t := range eff.Targets {
			for _, l := range t.LUNs {
				if autoBlock(eff, l.Backend) == a.Name {
					got = append(got, fmt.Sprintf("%s LUN %d: %s", t.Name, l.ID, strings.TrimPrefix(l.Backend, autoPrefix+a.Name+"/")))
				}
			}
		}
		if len(got) == 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "auto_export selects no device",
				Detail:  fmt.Sprintf("No device of this machine (%d found) matches auto_export %q and is free; see sanbridge scan --all. Its target has no LUN until one appears.", len(inv.Devices), a.Name),
				Subject: a.DeclRange.Ptr()})
			continue
		}
		notes = append(notes, fmt.Sprintf("auto_export %q exports %d device(s):\n  %s", a.Name, len(got), strings.Join(got, "\n  ")))
	}
	return diags, notes
}

// checkDevice checks one device block against the inventory.
func checkDevice(sel *conf.Device, inv Inventory) *hcl.Diagnostic {
	diag := func(sev hcl.DiagnosticSeverity, summary, format string, args ...any) *hcl.Diagnostic {
		return &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: sel.DeclRange.Ptr()}
	}
	if sel.USB != nil {
		if inv.USBErr != nil {
			return diag(hcl.DiagWarning, "USB interfaces not checked", "Listing the USB mass-storage interfaces failed: %v.", inv.USBErr)
		}
		if _, err := resolveUSB(sel.USB, inv.USB); err != nil {
			return diag(hcl.DiagError, "No single USB interface", "%v.", err)
		}
		return nil
	}
	hits := matchDevices(sel, inv.Devices)
	switch len(hits) {
	case 0:
		return diag(hcl.DiagError, "No device matches", "No local SCSI device matches %s (%d devices found). sanbridge scan lists them with the names a device block can use.", describe(sel), len(inv.Devices))
	case 1:
	default:
		var names []string
		for _, h := range hits {
			names = append(names, h.HCTL+" "+h.SG)
		}
		return diag(hcl.DiagError, "Several devices match", "%d devices match %s (%s); add a selector (wwn, serial or path) so that exactly one does.", len(hits), describe(sel), strings.Join(names, ", "))
	}
	d := hits[0]
	switch {
	case d.Transport.Kind == discover.TransportISCSI && !sel.AllowInUse:
		return diag(hcl.DiagError, "Device behind iSCSI", "Device %s (%s) is itself an iSCSI LUN (%s); exporting it again loops through the network. Set allow_in_use = true only if that is what you want.", d.HCTL, d.StableName, d.Transport.Address())
	case len(d.InUse) > 0 && !sel.AllowInUse:
		var uses []string
		for _, u := range d.InUse {
			uses = append(uses, u.String())
		}
		return diag(hcl.DiagError, "Device in use", "Device %s (%s) is in use on this host (%s); an initiator writing to it would corrupt it. Set allow_in_use = true only if nothing here uses it.", d.HCTL, d.StableName, strings.Join(uses, ", "))
	case d.Excluded != "" && !sel.AllowInUse:
		return diag(hcl.DiagError, "Device not exportable", "Device %s (%s) is not exported: %s. Set allow_in_use = true to export it anyway.", d.HCTL, d.StableName, d.Excluded)
	case d.SG == "":
		return diag(hcl.DiagError, "Device without an sg node", "Device %s has no sg node: load the sg module (modprobe sg).", d.HCTL)
	}
	return nil
}
