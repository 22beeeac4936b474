//go:build cgo && !nousb

package bot

/*
#cgo pkg-config: libusb-1.0
#include <libusb.h>

// sb_clear_halt clears an endpoint's halt: the one libusb call the
// transport needs that gousb v1.1.3 does not wrap. See gousbLink.ClearHalt.
static int sb_clear_halt(void *handle, unsigned char endpoint) {
	return libusb_clear_halt((libusb_device_handle *)handle, endpoint);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/google/gousb"

	"github.com/sanbridge/sanbridge/sgio"
)

// BuiltIn reports whether this binary can drive USB devices ([Open]
// works): built with cgo and without the nousb tag.
const BuiltIn = true

// Open finds the USB mass-storage device sel selects, claims its
// Bulk-Only interface through libusb (github.com/google/gousb) and
// starts the transport on it. The kernel driver bound to the interface
// (usb-storage or uas) is detached for as long as the interface is
// claimed, taking the device's sd/sg nodes with it, and given back when
// the Transport and its Devices are closed. Exactly one device must
// match: several matches are an error that lists them.
func Open(sel Selector, opts ...Option) (*Transport, error) {
	path := "usb " + sel.String()
	bp, err := sel.validate()
	if err != nil {
		return nil, &sgio.OpError{Op: "open", Path: path, Err: err}
	}
	l, name, err := openLink(sel, bp)
	if err != nil {
		return nil, &sgio.OpError{Op: "open", Path: path, Err: err}
	}
	return New(l, name, opts...)
}

// gousbLink is the [Link] over gousb.
type gousbLink struct {
	uctx    *gousb.Context
	dev     *gousb.Device
	cfg     *gousb.Config
	intf    *gousb.Interface
	in      *gousb.InEndpoint
	out     *gousb.OutEndpoint
	inAddr  uint8
	outAddr uint8
	iface   uint16
	handle  unsafe.Pointer // the libusb_device_handle, for sb_clear_halt (nil: unknown)
	// sync runs the bulk transfers (nil: gousb's ReadContext and
	// WriteContext do, as they do when viaGousb is set, for comparison).
	sync     *syncBulk
	viaGousb bool
}

// newContext starts libusb. gousb panics when libusb_init fails (no
// usbfs, no permission): that becomes an error here.
func newContext() (c *gousb.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: libusb cannot start: %v", sgio.ErrGone, r)
		}
	}()
	return gousb.NewContext(), nil
}

// descPath is the kernel's name of a device, "2-1.4".
func descPath(d *gousb.DeviceDesc) string {
	p := make([]string, len(d.Path))
	for i, n := range d.Path {
		p[i] = strconv.Itoa(n)
	}
	return strconv.Itoa(d.Bus) + "-" + strings.Join(p, ".")
}

// isBOT reports whether an alternate setting is a SCSI Bulk-Only interface.
func isBOT(a *gousb.InterfaceSetting) bool {
	return a.Class == ClassMassStorage && a.SubClass == SubclassSCSI && a.Protocol == ProtocolBulkOnly
}

func hasBOT(d *gousb.DeviceDesc) bool {
	for _, c := range d.Configs {
		for _, i := range c.Interfaces {
			for k := range i.AltSettings {
				if isBOT(&i.AltSettings[k]) {
					return true
				}
			}
		}
	}
	return false
}

// openLink opens the one device sel matches and claims its interface.
func openLink(sel Selector, bp busPath) (*gousbLink, string, error) {
	uctx, err := newContext()
	if err != nil {
		return nil, "", err
	}
	devs, enumErr := uctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		switch {
		case sel.VendorID != 0 && uint16(d.Vendor) != sel.VendorID,
			sel.ProductID != 0 && uint16(d.Product) != sel.ProductID,
			sel.BusPath != "" && descPath(d) != bp.device():
			return false
		}
		return hasBOT(d)
	})
	var match []*gousb.Device
	for _, d := range devs {
		if sel.Serial != "" {
			if s, err := d.SerialNumber(); err != nil || s != sel.Serial {
				d.Close()
				continue
			}
		}
		match = append(match, d)
	}
	fail := func(err error) (*gousbLink, string, error) {
		for _, d := range match {
			d.Close()
		}
		uctx.Close()
		return nil, "", err
	}
	switch len(match) {
	case 0:
		if enumErr != nil {
			return fail(fmt.Errorf("%w (enumeration: %v)", ErrNotFound, enumErr))
		}
		return fail(ErrNotFound)
	case 1:
	default:
		names := make([]string, len(match))
		for i, d := range match {
			names[i] = descPath(d.Desc)
		}
		return fail(fmt.Errorf("%w: %d devices match (%s); add serial or path", sgio.ErrBadRequest, len(match), strings.Join(names, ", ")))
	}
	dev := match[0]
	l, name, err := claim(dev, bp)
	if err != nil {
		return fail(err)
	}
	l.uctx = uctx
	l.sync = newSyncBulk(uctx, l.handle)
	return l, name, nil
}

// claim claims the Bulk-Only interface of dev in its active
// configuration and opens its bulk endpoints.
func claim(dev *gousb.Device, bp busPath) (*gousbLink, string, error) {
	cfgNum, err := dev.ActiveConfigNum()
	if err != nil {
		return nil, "", fmt.Errorf("active configuration of %s: %w", descPath(dev.Desc), classify(context.Background(), err))
	}
	if bp.config != 0 && bp.config != cfgNum {
		return nil, "", fmt.Errorf("%w: %s is in configuration %d, not %d", ErrNotFound, descPath(dev.Desc), cfgNum, bp.config)
	}
	cd, ok := dev.Desc.Configs[cfgNum]
	if !ok {
		return nil, "", fmt.Errorf("%w: %s has no descriptor for its configuration %d", ErrNotFound, descPath(dev.Desc), cfgNum)
	}
	var alt *gousb.InterfaceSetting
	for i := range cd.Interfaces {
		id := &cd.Interfaces[i]
		if bp.iface >= 0 && id.Number != bp.iface {
			continue
		}
		for k := range id.AltSettings {
			if isBOT(&id.AltSettings[k]) {
				alt = &id.AltSettings[k]
				break
			}
		}
		if alt != nil {
			break
		}
	}
	if alt == nil {
		return nil, "", fmt.Errorf("%w: %s has no Bulk-Only mass-storage interface in configuration %d", ErrNotFound, descPath(dev.Desc), cfgNum)
	}
	var inDesc, outDesc *gousb.EndpointDesc
	for _, e := range alt.Endpoints {
		if e.TransferType != gousb.TransferTypeBulk {
			continue
		}
		if e.Direction == gousb.EndpointDirectionIn && inDesc == nil {
			inDesc = &e
		} else if e.Direction == gousb.EndpointDirectionOut && outDesc == nil {
			outDesc = &e
		}
	}
	if inDesc == nil || outDesc == nil {
		return nil, "", fmt.Errorf("%w: interface %d of %s lacks a bulk-in or bulk-out endpoint", ErrNotFound, alt.Number, descPath(dev.Desc))
	}
	name := fmt.Sprintf("%s:%d.%d", descPath(dev.Desc), cfgNum, alt.Number)

	// Config claims nothing yet; gousb's own auto-detach would detach the
	// drivers of every interface of the configuration, so it is turned
	// on only afterwards, where it makes libusb detach the driver of the
	// one interface it claims (and re-attach it on release).
	cfg, err := dev.Config(cfgNum)
	if err != nil {
		return nil, "", fmt.Errorf("configuration %d of %s: %w", cfgNum, descPath(dev.Desc), err)
	}
	if err := dev.SetAutoDetach(true); err != nil {
		cfg.Close()
		return nil, "", fmt.Errorf("%s: kernel driver detach: %w", name, classify(context.Background(), err))
	}
	intf, err := cfg.Interface(alt.Number, alt.Alternate)
	if err != nil {
		cfg.Close()
		return nil, "", fmt.Errorf("claiming %s (held by another program?): %w", name, err)
	}
	in, err1 := intf.InEndpoint(inDesc.Number)
	out, err2 := intf.OutEndpoint(outDesc.Number)
	if err := errors.Join(err1, err2); err != nil {
		intf.Close()
		cfg.Close()
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return &gousbLink{
		dev: dev, cfg: cfg, intf: intf, in: in, out: out,
		inAddr: uint8(inDesc.Address), outAddr: uint8(outDesc.Address),
		iface:  uint16(alt.Number),
		handle: deviceHandle(dev),
	}, name, nil
}

// deviceHandle returns the libusb_device_handle gousb keeps in the
// unexported field Device.handle, or nil when that field is not there.
// gousb v1.1.3 (pinned in go.mod) has no clear-halt call nor a way to
// reach the handle; the handle cannot be opened a second time either,
// because usbfs lets only the file descriptor that claimed the
// interface clear its endpoints. TestDeviceHandleField fails when a
// gousb upgrade moves the field.
func deviceHandle(d *gousb.Device) unsafe.Pointer {
	v := reflect.ValueOf(d).Elem().FieldByName("handle")
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.UnsafePointer()
}

// Bulk implements [Link] with a synchronous transfer into buf (see
// syncBulk), or else through gousb, which copies through a transfer
// buffer of its own and waits for a cancelled transfer to end. Either
// way buf is free when Bulk returns.
func (l *gousbLink) Bulk(ctx context.Context, ep Endpoint, buf []byte) (int, error) {
	var n int
	var err error
	if l.sync != nil && !l.viaGousb {
		addr := l.outAddr
		if ep == BulkIn {
			addr = l.inAddr
		}
		n, err = l.sync.transfer(ctx, addr, buf)
		return n, classify(ctx, err)
	}
	if ep == BulkIn {
		n, err = l.in.ReadContext(ctx, buf)
	} else {
		n, err = l.out.WriteContext(ctx, buf)
	}
	return n, classify(ctx, err)
}

// Control implements [Link] with a synchronous libusb control transfer,
// bounded by ctx's deadline (5 s without one).
func (l *gousbLink) Control(ctx context.Context, rType, request uint8, value uint16, data []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.dev.ControlTimeout = timeoutOf(ctx)
	n, err := l.dev.Control(rType, request, value, l.iface, data)
	return n, classify(ctx, err)
}

// ClearHalt implements [Link] with libusb_clear_halt, which sends
// CLEAR_FEATURE(ENDPOINT_HALT) and resets the host controller's data
// toggle for the endpoint (usbfs USBDEVFS_CLEAR_HALT). A plain control
// request would only do the first half, and the next transfer could be
// dropped for a toggle mismatch. libusb's call cannot be interrupted;
// the kernel bounds it (5 s).
func (l *gousbLink) ClearHalt(ctx context.Context, ep Endpoint) error {
	addr := l.outAddr
	if ep == BulkIn {
		addr = l.inAddr
	}
	if l.handle == nil {
		// Unreachable with the pinned gousb (see deviceHandle).
		const stdEndpointOut, reqClearFeature, featEndpointHalt = 0x02, 0x01, 0
		l.dev.ControlTimeout = timeoutOf(ctx)
		_, err := l.dev.Control(stdEndpointOut, reqClearFeature, featEndpointHalt, uint16(addr), nil)
		return classify(ctx, err)
	}
	if rc := C.sb_clear_halt(l.handle, C.uchar(addr)); rc != 0 {
		return classify(ctx, gousb.Error(rc))
	}
	return nil
}

// Close implements [Link]: it releases the interface (libusb then
// re-attaches the kernel driver that had it) and closes the device.
func (l *gousbLink) Close() error {
	l.intf.Close()
	if l.sync != nil {
		l.sync.close()
	}
	err := l.cfg.Close()
	if e := l.dev.Close(); err == nil {
		err = e
	}
	if e := l.uctx.Close(); err == nil {
		err = e
	}
	return err
}

// timeoutOf is what is left of ctx's deadline, for calls that take a
// timeout instead of a context.
func timeoutOf(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return DefaultResetTimeout
	}
	return max(time.Until(dl), time.Millisecond)
}

// classify wraps a gousb error with the sentinel the transport branches on.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case errors.Is(err, gousb.TransferStall), errors.Is(err, gousb.ErrorPipe):
		sentinel = ErrStall
	case errors.Is(err, gousb.TransferNoDevice), errors.Is(err, gousb.ErrorNoDevice):
		sentinel = sgio.ErrGone
	case errors.Is(err, gousb.TransferOverflow), errors.Is(err, gousb.ErrorOverflow):
		sentinel = ErrOverflow
	case errors.Is(err, gousb.ErrorBusy):
		sentinel = sgio.ErrBusy
	case errors.Is(err, gousb.TransferCancelled), errors.Is(err, gousb.TransferTimedOut),
		errors.Is(err, gousb.ErrorTimeout), errors.Is(err, gousb.ErrorInterrupted):
		if ctx.Err() != nil {
			sentinel = ctx.Err()
		}
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w (%w)", sentinel, err)
}
