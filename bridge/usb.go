package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/bot"
	"github.com/sanbridge/sanbridge/sgio/discover"
	"github.com/sanbridge/sanbridge/sgio/scsi"
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
// inventory.claimSG). The device outlives the USB device's removal (see
// usbDevice).
func openUSB(sel *conf.Device, inv *inventory, log zerolog.Logger) (sgio.Device, string, error) {
	ifaces, err := inv.usbInterfaces()
	if err != nil {
		return nil, "", fmt.Errorf("listing USB interfaces: %w", err)
	}
	dev, key, err := openUSBFrom(sel, inv, ifaces, log)
	if err != nil {
		return nil, "", err
	}
	u := newUSBDevice(dev, key, log)
	u.lost = func(dev sgio.Device) bool {
		bd, ok := dev.(*bot.Device)
		if !ok {
			return false
		}
		t := bd.Transport()
		inv.mu.Lock()
		defer inv.mu.Unlock()
		for name, o := range inv.bot {
			if o == t {
				delete(inv.bot, name)
			}
		}
		// The backend sees the device gone (sgio.ErrGone) when libusb
		// says so; a deauthorized device answers some requests
		// otherwise, while its interface is no longer there.
		_, err := os.Stat(filepath.Join("/sys/bus/usb/devices", interfaceOf(t.Name())))
		return t.Gone() || errors.Is(err, fs.ErrNotExist)
	}
	// The device was this LUN's: the kernel driver that took it back
	// while it was away is detached again without the in-use check,
	// whose SCSI scan would also query the initiators' own nodes of this
	// LUN (an initiator on this host), waiting for the command that is
	// waiting for the scan.
	again := *sel
	again.AllowInUse = true
	u.reopen = func() (sgio.Device, string, error) {
		ifaces, err := inv.scanUSB()
		if err != nil {
			return nil, "", fmt.Errorf("listing USB interfaces: %w", err)
		}
		return openUSBFrom(&again, inv, ifaces, log)
	}
	return u, key, nil
}

// openUSBFrom opens the logical unit sel.USB selects among ifaces.
func openUSBFrom(sel *conf.Device, inv *inventory, ifaces []discover.USBInterface, log zerolog.Logger) (sgio.Device, string, error) {
	u := sel.USB
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
	return dev, usbKey(f, u.LUN), nil
}

// interfaceOf is the sysfs name of a transport's interface
// ("2-1:1.0" of "2-1:1.0" or of a name with more after it).
func interfaceOf(name string) string {
	if i := strings.IndexAny(name, " /"); i >= 0 {
		return name[:i]
	}
	return name
}

// usbKey is the identity of LUN lun of USB interface f.
func usbKey(f *discover.USBInterface, lun int) string {
	if f.Serial == "" {
		return "usb:" + f.Name + ":" + strconv.Itoa(lun)
	}
	return "usb:" + f.VendorID + ":" + f.ProductID + ":" + f.Serial + ":" + strconv.Itoa(lun)
}

// reopenInterval spaces the attempts to open a removed USB device again.
const reopenInterval = time.Second

// usbDevice is a logical unit over the Bulk-Only transport that outlives
// its USB device, the way a hotDevice outlives a local SCSI device (see
// hotdev.go for what the LUN answers meanwhile): a command that finds
// the device gone (deauthorized, unplugged: sgio.ErrGone) and every
// command after it are answered NOT READY, LOGICAL UNIT NOT READY,
// MANUAL INTERVENTION REQUIRED; INQUIRY with peripheral qualifier 001b.
// While it is gone, a command (at most one a second) looks for the USB
// device again by the configuration's selectors; the one found is put
// back under the LUN only when its identity (usbKey) is the same, and
// the first command after gets UNIT ATTENTION, POWER ON OCCURRED.
//
// The bridge's watcher knows local SCSI devices only (a USB interface
// served over BOT has no sg node), so the device is looked for from
// here, when an initiator asks.
type usbDevice struct {
	h      *hotDevice
	log    zerolog.Logger
	reopen func() (sgio.Device, string, error)
	every  time.Duration // between reopen attempts (reopenInterval)
	// lost, after a command that did not end with a SCSI status, says
	// whether dev is gone (and forgets its transport).
	lost func(dev sgio.Device) bool

	mu      sync.Mutex // held by the command looking for the device
	lastTry time.Time
}

// newUSBDevice wraps dev, the logical unit with identity key.
func newUSBDevice(dev sgio.Device, key string, log zerolog.Logger) *usbDevice {
	d := &discover.Device{Path: key}
	inquire(dev, d)
	h := newHotDevice(dev, d)
	h.id = key
	return &usbDevice{h: h, every: reopenInterval, log: log.With().Str("device", key).Logger()}
}

// inquire fills d's INQUIRY fields from the device's standard INQUIRY
// data, for the INQUIRY answered while the device is gone.
func inquire(dev sgio.Device, d *discover.Device) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := make([]byte, 36)
	var res sgio.Result
	req := &sgio.Request{CDB: scsi.InquiryCDB(false, 0, uint16(len(b))), Dir: sgio.DirFromDevice, Data: b}
	if err := dev.Execute(ctx, req, &res); err != nil || res.Status != scsi.Good || res.Transferred(len(b)) < 36 {
		return
	}
	d.Type = discover.PeripheralType(b[0] & 0x1f)
	d.Removable = b[1]&0x80 != 0
	d.Vendor = strings.TrimSpace(string(b[8:16]))
	d.Product = strings.TrimSpace(string(b[16:32]))
	d.Revision = strings.TrimSpace(string(b[32:36]))
}

// Execute implements sgio.Device.
func (u *usbDevice) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	dev := u.h.current()
	if dev == nil {
		dev = u.tryReopen()
	}
	if dev == nil {
		u.h.goneAnswer(req, res)
		return nil
	}
	if u.h.attention(req, res) {
		return nil
	}
	err := dev.Execute(ctx, req, res)
	gone := errors.Is(err, sgio.ErrGone) || errors.Is(err, sgio.ErrClosed) && u.h.current() != dev
	if (gone || err != nil || res.HostStatus != scsi.HostOK) && u.lost != nil && u.lost(dev) {
		gone = true
	}
	if gone {
		if u.h.current() == dev && u.h.gone() {
			u.log.Warn().Err(err).Msg("USB device gone: its LUN answers NOT READY until it comes back")
		}
		u.h.goneAnswer(req, res)
		return nil
	}
	return err
}

// tryReopen looks for the removed device again (at most once per
// u.every) and returns it when it is back under the LUN.
func (u *usbDevice) tryReopen() sgio.Device {
	if !u.mu.TryLock() {
		return nil // another command is looking; this one is answered as gone
	}
	defer u.mu.Unlock()
	if dev := u.h.current(); dev != nil {
		return dev
	}
	if u.reopen == nil || time.Since(u.lastTry) < u.every {
		return nil
	}
	u.lastTry = time.Now()
	dev, key, err := u.reopen()
	if err != nil {
		u.log.Debug().Err(err).Msg("USB device still gone")
		return nil
	}
	if key != u.h.id {
		u.log.Warn().Str("found", key).Msg("another USB device matches the selectors: not put under the LUN")
		dev.Close()
		return nil
	}
	d := &discover.Device{Path: key}
	inquire(dev, d)
	if !u.h.reattach(dev, d) {
		dev.Close()
		return nil
	}
	u.log.Info().Msg("USB device is back: re-attached to its LUN (initiators get a unit attention)")
	return dev
}

// Limits implements sgio.Device.
func (u *usbDevice) Limits() sgio.Limits { return u.h.Limits() }

// Reset implements sgio.Resetter.
func (u *usbDevice) Reset(ctx context.Context) error { return u.h.Reset(ctx) }

// Close implements sgio.Device.
func (u *usbDevice) Close() error { return u.h.Close() }

// State returns the device's state ("present", "gone", "reattached") and
// how many times it came back.
func (u *usbDevice) State() (string, int) {
	st, _, _, _, returns := u.h.where()
	return st.String(), returns
}

var (
	_ sgio.Device   = (*usbDevice)(nil)
	_ sgio.Resetter = (*usbDevice)(nil)
)

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
	if t := inv.bot[f.Name]; t != nil && !t.Gone() {
		d, err := t.LUN(lun)
		if !errors.Is(err, sgio.ErrClosed) {
			return d, err
		}
	}
	// No transport, or one whose device went away or whose LUNs were
	// all closed (a reload): the interface is opened anew.
	delete(inv.bot, f.Name)
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
