package discover

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// CommandError is a SCSI command that completed without GOOD status.
type CommandError struct {
	// Command names the command ("INQUIRY VPD 80h").
	Command string
	// Status, HostStatus and DriverStatus are as the transport reported.
	Status       scsi.Status
	HostStatus   scsi.HostByte
	DriverStatus scsi.DriverByte
	// Sense is the decoded sense data (valid when HasSense).
	Sense    scsi.Sense
	HasSense bool
}

// Error implements error: "INQUIRY VPD 80h: CHECK CONDITION, ILLEGAL
// REQUEST: INVALID FIELD IN CDB (CDB byte 2)".
func (e *CommandError) Error() string {
	s := e.Command + ": " + e.Status.String()
	if e.HasSense {
		s += ", " + e.Sense.String()
	}
	if e.HostStatus != 0 {
		s += ", host status " + e.HostStatus.String()
	}
	if e.DriverStatus&scsi.DriverMask != 0 {
		s += ", driver status " + e.DriverStatus.String()
	}
	return s
}

// querier issues the identification commands to one device.
type querier struct {
	dev     sgio.Device
	timeout time.Duration
}

// in runs a data-in command and returns the bytes transferred. UNIT
// ATTENTION (a reset or power-on the device reports once), BUSY and
// TASK SET FULL are retried a few times.
func (q *querier) in(ctx context.Context, name string, cdb []byte, n int) ([]byte, error) {
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		buf := make([]byte, n)
		res := new(sgio.Result)
		err := q.dev.Execute(ctx, &sgio.Request{CDB: cdb, Dir: sgio.DirFromDevice, Data: buf, Timeout: q.timeout}, res)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if res.Status == scsi.Good && res.HostStatus == scsi.HostOK && res.DriverStatus&scsi.DriverMask == 0 {
			return buf[:res.Transferred(n)], nil
		}
		ce := &CommandError{Command: name, Status: res.Status, HostStatus: res.HostStatus, DriverStatus: res.DriverStatus}
		if len(res.Sense) > 0 {
			if s, err := scsi.ParseSense(res.Sense); err == nil {
				ce.Sense, ce.HasSense = s, true
			}
		}
		last = ce
		retry := res.Status == scsi.Busy || res.Status == scsi.TaskSetFull ||
			(ce.HasSense && ce.Sense.Key == scsi.SenseUnitAttention)
		if !retry {
			return nil, ce
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
	return nil, last
}

// vpd reads a whole VPD page: first with an allocation length of 255
// (some devices reject more), again with the page's length if longer.
func (q *querier) vpd(ctx context.Context, page byte) ([]byte, error) {
	name := fmt.Sprintf("INQUIRY VPD %02xh", page)
	b, err := q.in(ctx, name, scsi.InquiryCDB(true, page, 255), 255)
	if err != nil {
		return nil, err
	}
	if len(b) >= 4 {
		if n := 4 + int(binary.BigEndian.Uint16(b[2:4])); n > 255 {
			return q.in(ctx, name, scsi.InquiryCDB(true, page, uint16(min(n, 0xffff))), n)
		}
	}
	return b, nil
}

// ReadCapacity asks dev for its capacity: READ CAPACITY(16), or (10) on
// devices without it, retrying past a unit attention, busy or task set
// full; timeout bounds each command (0: the device's default).
func ReadCapacity(ctx context.Context, dev sgio.Device, timeout time.Duration) (Capacity, error) {
	return (&querier{dev: dev, timeout: timeout}).capacity(ctx)
}

// capacity reads READ CAPACITY(16), falling back to READ CAPACITY(10)
// for devices without it.
func (q *querier) capacity(ctx context.Context) (Capacity, error) {
	b, err16 := q.in(ctx, "READ CAPACITY(16)", scsi.ReadCapacity16CDB(32), 32)
	if err16 == nil {
		return ParseReadCapacity16(b)
	}
	var ce *CommandError
	if !errors.As(err16, &ce) || !ce.HasSense || ce.Sense.Key != scsi.SenseIllegalRequest {
		return Capacity{}, err16
	}
	b, err := q.in(ctx, "READ CAPACITY(10)", []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8)
	if err != nil {
		return Capacity{}, err
	}
	return ParseReadCapacity10(b)
}

// queryDevice asks the device for its identity and capacity and merges
// the answers into d; cached is the sysfs copy of the VPD pages, used
// for what the device does not answer. askVPD is false for devices the
// kernel itself does not ask for VPD pages (usb-storage quirks).
func queryDevice(ctx context.Context, dev sgio.Device, timeout time.Duration, d *Device, cached Identity, askVPD bool) {
	q := &querier{dev: dev, timeout: timeout}
	problem := func(err error) { d.Problems = append(d.Problems, err.Error()) }

	if b, err := q.in(ctx, "INQUIRY", scsi.InquiryCDB(false, 0, 96), 96); err != nil {
		problem(err)
	} else if inq, err := ParseInquiry(b); err != nil {
		problem(fmt.Errorf("INQUIRY: %w", err))
	} else {
		if inq.Vendor != "" || inq.Product != "" {
			d.Vendor, d.Product, d.Revision = inq.Vendor, inq.Product, inq.Revision
		}
		d.Removable = d.Removable || inq.Removable
		if inq.Qualifier != 0 {
			d.Problems = append(d.Problems, fmt.Sprintf("INQUIRY: peripheral qualifier %d (no device connected)", inq.Qualifier))
		}
		if d.Type == TypeUnknown {
			d.Type = inq.Type
		} else if inq.Type != d.Type {
			d.Problems = append(d.Problems, fmt.Sprintf("INQUIRY reports peripheral type %d (%v), the kernel attached it as %d (%v)",
				inq.Type, inq.Type, d.Type, d.Type))
		}
	}

	id := Identity{}
	if askVPD {
		var pages []byte
		known := false
		if b, err := q.vpd(ctx, PageSupported); err == nil {
			if p, err := ParseSupportedPages(b); err == nil || len(p) > 0 {
				pages, known = p, true
			}
		}
		has := func(page byte) bool {
			if !known {
				return true
			}
			for _, p := range pages {
				if p == page {
					return true
				}
			}
			return false
		}
		if has(PageUnitSerial) {
			if b, err := q.vpd(ctx, PageUnitSerial); err != nil {
				problem(err)
			} else if s, err := ParseUnitSerial(b); err != nil && s == "" {
				problem(fmt.Errorf("VPD page 80h: %w", err))
			} else {
				id.Serial, id.Source = s, "device"
			}
		}
		if has(PageIdentification) {
			if b, err := q.vpd(ctx, PageIdentification); err != nil {
				problem(err)
			} else {
				ds, err := ParseDeviceIdentification(b)
				if err != nil {
					problem(fmt.Errorf("VPD page 83h: %w", err))
				}
				if len(ds) > 0 || err == nil {
					id.Designators, id.WWN, id.Source = ds, PreferredWWN(ds), "device"
				}
			}
		}
	}
	// Field by field, what the device did not say comes from sysfs.
	if id.Source == "" {
		id = cached
	} else {
		if id.Serial == "" {
			id.Serial = cached.Serial
		}
		if len(id.Designators) == 0 {
			id.Designators = cached.Designators
		}
		if id.WWN == "" {
			id.WWN = cached.WWN
		}
	}
	d.Identity = id

	if d.Type.HasBlocks() {
		c, err := q.capacity(ctx)
		if err != nil {
			var ce *CommandError
			if errors.As(err, &ce) && ce.HasSense && ce.Sense.Key == scsi.SenseNotReady {
				d.Problems = append(d.Problems, "no medium ("+ce.Sense.String()+")")
			} else {
				problem(err)
			}
			return
		}
		if n, ok := c.Bytes(); ok {
			d.Blocks, d.BlockSize, d.SizeBytes = c.Blocks(), c.BlockSize, n
		}
	}
}
