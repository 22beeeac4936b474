// Package discover finds the local SCSI devices the gateway can export:
// it enumerates them through sysfs (/sys/class/scsi_generic,
// /sys/class/scsi_device, /sys/class/block), reads their identity from
// the devices themselves (standard INQUIRY, Unit Serial Number VPD page
// 80h, Device Identification VPD page 83h, READ CAPACITY) with the sysfs
// copies of those pages as a fallback, works out the transport and its
// addresses (SAS, FC, parallel SCSI, USB, iSCSI, ...), and flags devices
// that are in use (mounted, swap, held by md/dm) or that themselves come
// over iSCSI, which are not exported unless the configuration forces it.
//
// The decoders of device-supplied bytes ([ParseInquiry],
// [ParseUnitSerial], [ParseDeviceIdentification], [ParseSupportedPages],
// [ParseReadCapacity10], [ParseReadCapacity16]) never panic and are
// fuzzed.
package discover

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sanbridge/sanbridge/sgio"
)

// PeripheralType is the peripheral device type of standard INQUIRY data
// (SPC-4 6.4.2, table 141).
type PeripheralType uint8

// Peripheral device types.
const (
	TypeDisk          PeripheralType = 0x00 // direct access block device (SBC)
	TypeTape          PeripheralType = 0x01 // sequential access (SSC)
	TypePrinter       PeripheralType = 0x02
	TypeProcessor     PeripheralType = 0x03
	TypeWORM          PeripheralType = 0x04 // write-once
	TypeCDROM         PeripheralType = 0x05 // CD/DVD (MMC)
	TypeScanner       PeripheralType = 0x06
	TypeOptical       PeripheralType = 0x07 // optical memory
	TypeChanger       PeripheralType = 0x08 // medium changer (SMC)
	TypeComm          PeripheralType = 0x09
	TypeRAID          PeripheralType = 0x0c // storage array controller (SCC)
	TypeEnclosure     PeripheralType = 0x0d // enclosure services (SES)
	TypeRBC           PeripheralType = 0x0e // simplified direct access
	TypeOpticalCard   PeripheralType = 0x0f
	TypeOSD           PeripheralType = 0x11 // object-based storage
	TypeADC           PeripheralType = 0x12 // automation/drive interface
	TypeZBC           PeripheralType = 0x14 // host managed zoned block
	TypeWellKnownLU   PeripheralType = 0x1e
	TypeUnknown       PeripheralType = 0x1f // unknown or no device type
	peripheralTypeMax PeripheralType = 0x1f
)

var peripheralTypeNames = map[PeripheralType]string{
	TypeDisk: "disk", TypeTape: "tape", TypePrinter: "printer", TypeProcessor: "processor",
	TypeWORM: "worm", TypeCDROM: "cdrom", TypeScanner: "scanner", TypeOptical: "optical",
	TypeChanger: "changer", TypeComm: "comm", TypeRAID: "raid", TypeEnclosure: "enclosure",
	TypeRBC: "rbc", TypeOpticalCard: "optical-card", TypeOSD: "osd", TypeADC: "adc",
	TypeZBC: "zbc", TypeWellKnownLU: "wlun", TypeUnknown: "unknown",
}

// String returns the type's short name ("disk", "tape", "cdrom", ...).
func (t PeripheralType) String() string {
	if s, ok := peripheralTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type-0x%02x", uint8(t))
}

// MarshalText encodes the type as its name.
func (t PeripheralType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (t *PeripheralType) UnmarshalText(b []byte) error {
	s := string(b)
	for k, v := range peripheralTypeNames {
		if v == s {
			*t = k
			return nil
		}
	}
	var v uint8
	if _, err := fmt.Sscanf(s, "type-0x%02x", &v); err == nil && PeripheralType(v) <= peripheralTypeMax {
		*t = PeripheralType(v)
		return nil
	}
	return fmt.Errorf("discover: unknown peripheral type %q", s)
}

// HasBlocks reports whether devices of this type hold addressable
// logical blocks, so that READ CAPACITY applies.
func (t PeripheralType) HasBlocks() bool {
	switch t {
	case TypeDisk, TypeWORM, TypeCDROM, TypeOptical, TypeRBC, TypeZBC:
		return true
	}
	return false
}

// TransportKind is how a device is attached.
type TransportKind uint8

// Transports.
const (
	TransportUnknown TransportKind = iota
	TransportSAS                   // Serial Attached SCSI
	TransportFC                    // Fibre Channel
	TransportSPI                   // parallel SCSI
	TransportUSB                   // USB mass storage (usb-storage or uas)
	TransportISCSI                 // iSCSI (the device itself is remote)
	TransportATA                   // ATA/SATA through libata
	TransportVirtual               // para-virtual HBA (virtio-scsi, hv_storvsc, vmw_pvscsi, xen)
	TransportPseudo                // software device (scsi_debug)
	TransportSRP                   // SCSI RDMA Protocol
)

var transportNames = [...]string{
	TransportUnknown: "unknown", TransportSAS: "sas", TransportFC: "fc", TransportSPI: "spi",
	TransportUSB: "usb", TransportISCSI: "iscsi", TransportATA: "ata", TransportVirtual: "virtual",
	TransportPseudo: "pseudo", TransportSRP: "srp",
}

// String returns the transport's short name.
func (k TransportKind) String() string {
	if int(k) < len(transportNames) {
		return transportNames[k]
	}
	return fmt.Sprintf("TransportKind(%d)", uint8(k))
}

// MarshalText encodes the transport as its name.
func (k TransportKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (k *TransportKind) UnmarshalText(b []byte) error {
	for i, n := range transportNames {
		if n == string(b) {
			*k = TransportKind(i)
			return nil
		}
	}
	return fmt.Errorf("discover: unknown transport %q", b)
}

// Transport describes how a device is attached and at which addresses.
// Only the fields of its Kind are set, and only those the system exposes.
type Transport struct {
	// Kind is the transport.
	Kind TransportKind `json:"kind"`
	// HostDriver is the HBA driver (the SCSI host's proc_name, e.g.
	// "megaraid_sas", "virtio_scsi", "usb-storage", "iscsi_tcp").
	HostDriver string `json:"host_driver,omitempty"`
	// HostPath is the HBA's bus address: a PCI address ("0000:00:03.0")
	// or, for USB, the interface ("2-1:1.0").
	HostPath string `json:"host_path,omitempty"`

	// SASAddress is the end device's SAS address ("0x5000c500a1b2c3d4"),
	// from sas_transport or the device's target port designator.
	SASAddress string `json:"sas_address,omitempty"`

	// FC: the remote port's WWNN/WWPN and port ID, and the local HBA
	// port's WWNN/WWPN (fc_transport).
	NodeName     string `json:"node_name,omitempty"`
	PortName     string `json:"port_name,omitempty"`
	PortID       string `json:"port_id,omitempty"`
	HostNodeName string `json:"host_node_name,omitempty"`
	HostPortName string `json:"host_port_name,omitempty"`

	// USB: vendor and product IDs (hex), iSerial, bus path ("2-1"),
	// strings, and the storage driver (usb-storage or uas).
	USBVendorID     string `json:"usb_vendor_id,omitempty"`
	USBProductID    string `json:"usb_product_id,omitempty"`
	USBSerial       string `json:"usb_serial,omitempty"`
	USBPath         string `json:"usb_path,omitempty"`
	USBManufacturer string `json:"usb_manufacturer,omitempty"`
	USBProduct      string `json:"usb_product,omitempty"`
	USBDriver       string `json:"usb_driver,omitempty"`

	// iSCSI: the target name, portal ("10.0.0.1:3260"), target portal
	// group tag and session.
	TargetName string `json:"target_name,omitempty"`
	Portal     string `json:"portal,omitempty"`
	TPGT       string `json:"tpgt,omitempty"`
	Session    string `json:"session,omitempty"`

	// ATAPort is the libata port ("ata3") for ATA devices.
	ATAPort string `json:"ata_port,omitempty"`
}

// Address returns the transport address an administrator recognises:
// the SAS address, the FC WWPN, the USB VID:PID:serial, the iSCSI target
// and portal; "" when the transport has none.
func (t *Transport) Address() string {
	switch t.Kind {
	case TransportSAS:
		return t.SASAddress
	case TransportFC:
		return t.PortName
	case TransportUSB:
		if t.USBVendorID == "" {
			return ""
		}
		s := t.USBVendorID + ":" + t.USBProductID
		if t.USBSerial != "" {
			s += ":" + t.USBSerial
		}
		return s
	case TransportISCSI:
		if t.Portal != "" {
			return t.TargetName + "@" + t.Portal
		}
		return t.TargetName
	case TransportATA:
		return t.ATAPort
	}
	return ""
}

// UseKind is why a device counts as in use.
type UseKind uint8

// Kinds of use.
const (
	UseMount  UseKind = iota + 1 // a filesystem on it is mounted
	UseSwap                      // it is active swap
	UseHolder                    // another block device (md, dm/LVM, bcache) is built on it
)

// String returns the kind's name.
func (k UseKind) String() string {
	switch k {
	case UseMount:
		return "mount"
	case UseSwap:
		return "swap"
	case UseHolder:
		return "holder"
	}
	return fmt.Sprintf("UseKind(%d)", uint8(k))
}

// MarshalText encodes the kind as its name.
func (k UseKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (k *UseKind) UnmarshalText(b []byte) error {
	for _, c := range []UseKind{UseMount, UseSwap, UseHolder} {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("discover: unknown use %q", b)
}

// Use is one reason a device is in use.
type Use struct {
	// Kind is the kind of use.
	Kind UseKind `json:"kind"`
	// Block is the block device in use: the disk or one of its
	// partitions ("sda", "sda2").
	Block string `json:"block"`
	// What says by what: the mount point and filesystem type, the swap
	// file name, the holder ("dm-0 (vg0-root)").
	What string `json:"what"`
}

// String formats the use for people: "sda2 mounted on /boot (ext4)".
func (u Use) String() string {
	switch u.Kind {
	case UseMount:
		return u.Block + " mounted on " + u.What
	case UseSwap:
		return u.Block + " is swap"
	case UseHolder:
		return u.Block + " held by " + u.What
	}
	return u.Block + " " + u.What
}

// Identity is what a device says about itself, or what sysfs cached of it.
type Identity struct {
	// Serial is the unit serial number (VPD page 80h), trimmed.
	Serial string `json:"serial,omitempty"`
	// Designators are the device identification designators (VPD page 83h).
	Designators []Designator `json:"designators,omitempty"`
	// WWN is the preferred logical unit designator, formatted like the
	// kernel's wwid attribute ("naa.5000c500a1b2c3d4", "eui.0123...",
	// "t10.VENDOR ..."), or "" when the device has none.
	WWN string `json:"wwn,omitempty"`
	// Source says where the identity came from: "device" (SG_IO),
	// "sysfs" (the kernel's cached VPD pages and wwid) or "" (nowhere).
	Source string `json:"source,omitempty"`
}

// Device is one SCSI logical unit found on the system.
type Device struct {
	// Address is the Linux H:C:T:L address (it changes across reboots).
	Address sgio.HCTL `json:"-"`
	// HCTL is Address as a string, for JSON.
	HCTL string `json:"hctl"`
	// Type is the peripheral device type the kernel attached the device as.
	Type PeripheralType `json:"type"`
	// Vendor, Product and Revision are the standard INQUIRY strings.
	Vendor   string `json:"vendor"`
	Product  string `json:"product"`
	Revision string `json:"revision"`
	// Removable is the RMB bit of INQUIRY (or sysfs removable).
	Removable bool `json:"removable,omitempty"`
	// State is the midlayer's device state ("running", "offline", ...).
	State string `json:"state,omitempty"`
	// SG is the sg node ("/dev/sg3"), "" when the sg driver is not bound.
	SG string `json:"sg,omitempty"`
	// Block is the block node ("/dev/sda", "/dev/sr0"), if any.
	Block string `json:"block,omitempty"`
	// Tape is the tape node ("/dev/nst0", the non-rewinding one), if any.
	Tape string `json:"tape,omitempty"`
	// UpperDriver is the upper-level driver bound to the device: "sd",
	// "sr", "st", "ch", "ses", or "" when none is.
	UpperDriver string `json:"upper_driver,omitempty"`
	// Identity is the device's serial number and designators.
	Identity Identity `json:"identity"`
	// Blocks and BlockSize are the capacity (READ CAPACITY, or sysfs for
	// block devices); zero when unknown or not a block device.
	Blocks    uint64 `json:"blocks,omitempty"`
	BlockSize uint32 `json:"block_size,omitempty"`
	// SizeBytes is Blocks * BlockSize.
	SizeBytes uint64 `json:"size_bytes,omitempty"`
	// Transport is how the device is attached.
	Transport Transport `json:"transport"`
	// InUse lists why the device is in use; empty when it is free.
	InUse []Use `json:"in_use,omitempty"`
	// ByID and ByPath are the /dev/disk/by-id and by-path links to the
	// device's block node (udev names), when they exist.
	ByID   []string `json:"by_id,omitempty"`
	ByPath []string `json:"by_path,omitempty"`
	// Path is a bus path independent of sg/sd numbering, in the style
	// of udev's by-path names ("pci-0000:00:03.0-scsi-0:2:0:0",
	// "pci-0000:00:05.0-usb-0:1:1.0-scsi-0:0:0:0", "ip-10.0.0.1:3260-iscsi-iqn...-lun-0").
	Path string `json:"path,omitempty"`
	// StableName is the best name to put in a configuration: the WWN,
	// else "serial:VENDOR:PRODUCT:SERIAL", else "path:" + Path.
	StableName string `json:"stable_name"`
	// Excluded says why the device is not exported by default ("in use",
	// "iSCSI-backed"); "" when it is exportable.
	Excluded string `json:"excluded,omitempty"`
	// Problems lists what could not be read or does not add up; the
	// device is reported anyway.
	Problems []string `json:"problems,omitempty"`
}

// UnmarshalJSON decodes a device written by encoding/json (the output
// of "sanbridge scan --json"), restoring Address from HCTL.
func (d *Device) UnmarshalJSON(b []byte) error {
	type plain Device
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*d = Device(p)
	if d.HCTL != "" {
		a, ok := parseHCTL(d.HCTL)
		if !ok {
			return fmt.Errorf("discover: bad H:C:T:L %q", d.HCTL)
		}
		d.Address = a
	}
	return nil
}

// Exportable reports whether the device may be exported by default.
func (d *Device) Exportable() bool { return d.Excluded == "" }

// Names returns every name of the device a configuration may use to
// select it, most stable first.
func (d *Device) Names() []string {
	var n []string
	if d.Identity.WWN != "" {
		n = append(n, d.Identity.WWN)
	}
	if s := d.serialName(); s != "" {
		n = append(n, s)
	}
	n = append(n, d.ByID...)
	n = append(n, d.ByPath...)
	if d.Path != "" {
		n = append(n, "path:"+d.Path)
	}
	return n
}

func (d *Device) serialName() string {
	if d.Identity.Serial == "" {
		return ""
	}
	return "serial:" + d.Vendor + ":" + d.Product + ":" + d.Identity.Serial
}

// finish derives StableName and Excluded.
func (d *Device) finish() {
	d.HCTL = d.Address.String()
	switch {
	case d.Identity.WWN != "":
		d.StableName = d.Identity.WWN
	case d.serialName() != "":
		d.StableName = d.serialName()
	case d.Path != "":
		d.StableName = "path:" + d.Path
	default:
		d.StableName = "hctl:" + d.HCTL
	}
	var why []string
	if len(d.InUse) > 0 {
		why = append(why, "in use")
	}
	if d.Transport.Kind == TransportISCSI {
		why = append(why, "iSCSI-backed")
	}
	d.Excluded = strings.Join(why, ", ")
}
