package bot

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sanbridge/sanbridge/sgio"
)

// USB interface class codes of a Bulk-Only mass-storage interface (USB
// Mass Storage Class Overview 1.4, tables 1 and 2).
const (
	ClassMassStorage = 0x08 // bInterfaceClass: mass storage
	SubclassSCSI     = 0x06 // bInterfaceSubClass: SCSI transparent command set
	ProtocolBulkOnly = 0x50 // bInterfaceProtocol: Bulk-Only Transport
	ProtocolUAS      = 0x62 // bInterfaceProtocol: USB Attached SCSI (an alternate setting may offer BOT)
)

// maxBusPathPorts bounds the ports of a bus path: USB allows five tiers
// of hubs below the root hub (seven ports at most, with the root's).
const maxBusPathPorts = 7

// Selector picks a USB mass-storage device; [Open] uses its first
// Bulk-Only interface unless BusPath names the interface. Fields left
// zero match anything, but at least one must be set.
type Selector struct {
	// VendorID and ProductID are idVendor and idProduct.
	VendorID, ProductID uint16
	// Serial is the device's iSerialNumber string.
	Serial string
	// BusPath is the kernel's name of the device: the bus number, a dash
	// and the ports from the root hub, dot-separated ("2-1", "1-1.4"),
	// as in /sys/bus/usb/devices; it stays the same while the device
	// stays in its port. It may name the interface too, "2-1:1.0"
	// (configuration 1, interface 0).
	BusPath string
}

// String formats the selector for messages: "vid=0951 pid=1666
// serial=X path=2-1".
func (s Selector) String() string {
	var f []string
	if s.VendorID != 0 {
		f = append(f, fmt.Sprintf("vid=%04x", s.VendorID))
	}
	if s.ProductID != 0 {
		f = append(f, fmt.Sprintf("pid=%04x", s.ProductID))
	}
	if s.Serial != "" {
		f = append(f, "serial="+strconv.Quote(s.Serial))
	}
	if s.BusPath != "" {
		f = append(f, "path="+s.BusPath)
	}
	if len(f) == 0 {
		return "any"
	}
	return strings.Join(f, " ")
}

// busPath is a parsed Selector.BusPath.
type busPath struct {
	bus    int
	ports  []int
	config int // 0: the active configuration
	iface  int // -1: the first Bulk-Only interface
}

// parseBusPath parses "B-P[.P...][:C.I]".
func parseBusPath(s string) (busPath, error) {
	bp := busPath{iface: -1}
	bad := func() (busPath, error) {
		return busPath{}, fmt.Errorf("%w: USB bus path %q (want BUS-PORT[.PORT...][:CONFIG.INTERFACE], e.g. 2-1 or 1-1.4:1.0)", sgio.ErrBadRequest, s)
	}
	dev, ifc, hasIfc := strings.Cut(s, ":")
	b, ports, ok := strings.Cut(dev, "-")
	if !ok {
		return bad()
	}
	n, err := strconv.Atoi(b)
	if err != nil || n < 1 || n > 255 {
		return bad()
	}
	bp.bus = n
	for _, p := range strings.Split(ports, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 255 || len(bp.ports) == maxBusPathPorts {
			return bad()
		}
		bp.ports = append(bp.ports, n)
	}
	if hasIfc {
		c, i, ok := strings.Cut(ifc, ".")
		if !ok {
			return bad()
		}
		cn, err1 := strconv.Atoi(c)
		in, err2 := strconv.Atoi(i)
		if err1 != nil || err2 != nil || cn < 1 || cn > 255 || in < 0 || in > 255 {
			return bad()
		}
		bp.config, bp.iface = cn, in
	}
	return bp, nil
}

// device returns the device part, "2-1".
func (bp busPath) device() string {
	p := make([]string, len(bp.ports))
	for i, n := range bp.ports {
		p[i] = strconv.Itoa(n)
	}
	return strconv.Itoa(bp.bus) + "-" + strings.Join(p, ".")
}

// validate checks that the selector names something.
func (s Selector) validate() (busPath, error) {
	bp := busPath{iface: -1}
	if s.BusPath != "" {
		var err error
		if bp, err = parseBusPath(s.BusPath); err != nil {
			return bp, err
		}
	}
	if s.VendorID == 0 && s.ProductID == 0 && s.Serial == "" && s.BusPath == "" {
		return bp, fmt.Errorf("%w: an empty USB selector would match any device", sgio.ErrBadRequest)
	}
	return bp, nil
}

// OpenLUN opens the interface sel selects and returns logical unit lun
// of it; the interface is released when the Device is closed.
func OpenLUN(sel Selector, lun int, opts ...Option) (*Device, error) {
	t, err := Open(sel, opts...)
	if err != nil {
		return nil, err
	}
	d, err := t.LUN(lun)
	cerr := t.Close()
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		d.Close()
		return nil, cerr
	}
	return d, nil
}
