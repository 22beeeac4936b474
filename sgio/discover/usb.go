package discover

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// USB interface codes of mass storage (USB Mass Storage Class Overview
// 1.4, tables 1 and 2).
const (
	usbClassMassStorage = 0x08
	usbSubclassSCSI     = 0x06
	usbProtocolBulkOnly = 0x50
	usbProtocolUAS      = 0x62
)

// USBInterface is a USB mass-storage interface (bInterfaceClass 08h) as
// sysfs shows it, whether a kernel driver holds it or not: what a
// configuration's usb { } selector picks, and what the Bulk-Only backend
// (sgio/bot) would drive from user space.
type USBInterface struct {
	// Name is the interface's sysfs name, "BUS-PORTS:CONFIG.INTERFACE"
	// ("2-1:1.0"); it stays the same while the device stays in its port.
	Name string `json:"name"`
	// BusPath is the device's sysfs name, "BUS-PORTS" ("2-1", "1-1.4").
	BusPath string `json:"bus_path"`
	// Bus and DevNum are the bus number and the device address on it
	// (busnum, devnum; the address changes when the device re-enumerates).
	Bus    int `json:"bus"`
	DevNum int `json:"devnum"`
	// Config, Interface and AltSetting are bConfigurationValue,
	// bInterfaceNumber and the current bAlternateSetting.
	Config     int `json:"config"`
	Interface  int `json:"interface"`
	AltSetting int `json:"alt_setting"`
	// VendorID and ProductID are idVendor and idProduct in hex ("46f4").
	VendorID  string `json:"vendor_id"`
	ProductID string `json:"product_id"`
	// Serial, Manufacturer and Product are the device's strings.
	Serial       string `json:"serial,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	// Speed is the link speed in Mb/s ("480", "5000").
	Speed string `json:"speed,omitempty"`
	// Subclass and Protocol are the current alternate setting's
	// bInterfaceSubClass and bInterfaceProtocol (06h/50h: SCSI over
	// Bulk-Only; 06h/62h: USB Attached SCSI).
	Subclass uint8 `json:"subclass"`
	Protocol uint8 `json:"protocol"`
	// BulkOnly reports whether some alternate setting of the interface is
	// SCSI over the Bulk-Only Transport (08h/06h/50h), which sgio/bot
	// drives. UAS devices usually offer it as alternate setting 0.
	BulkOnly bool `json:"bulk_only"`
	// Driver is the driver bound to the interface: "usb-storage", "uas",
	// "usbfs" (a program holds it through libusb, e.g. sanbridge's
	// Bulk-Only backend), or "" when none is.
	Driver string `json:"driver,omitempty"`
	// SCSIHost is the SCSI host the kernel driver made ("host2"), "" when
	// no kernel driver drives the interface.
	SCSIHost string `json:"scsi_host,omitempty"`
	// LUNs are the SCSI devices of SCSIHost, sorted by LUN.
	LUNs []USBLUN `json:"luns,omitempty"`
	// Problems lists what could not be read.
	Problems []string `json:"problems,omitempty"`
}

// USBLUN is one SCSI device a kernel driver made of a USB interface.
type USBLUN struct {
	// HCTL is the Linux address ("2:0:0:0").
	HCTL string `json:"hctl"`
	// LUN is the logical unit number.
	LUN uint64 `json:"lun"`
	// Type, Vendor and Product come from sysfs (INQUIRY).
	Type    PeripheralType `json:"type"`
	Vendor  string         `json:"vendor,omitempty"`
	Product string         `json:"product,omitempty"`
	// SG and Block are the device nodes ("/dev/sg4", "/dev/sdd").
	SG    string `json:"sg,omitempty"`
	Block string `json:"block,omitempty"`
}

// KernelDriven reports whether a kernel driver (usb-storage, uas) holds
// the interface; opening it with the Bulk-Only backend detaches that
// driver, and its sd/sg nodes go away.
func (u *USBInterface) KernelDriven() bool {
	return u.Driver != "" && u.Driver != "usbfs"
}

// Address returns "VID:PID" and, when the device has one, ":SERIAL".
func (u *USBInterface) Address() string {
	s := u.VendorID + ":" + u.ProductID
	if u.Serial != "" {
		s += ":" + u.Serial
	}
	return s
}

// ScanUSB lists the USB mass-storage interfaces under
// cfg.SysfsRoot/bus/usb/devices, sorted by name. A system without USB
// yields none and no error. Only sysfs is read; no device is opened.
func ScanUSB(cfg Config) ([]USBInterface, error) {
	root := cfg.SysfsRoot
	if root == "" {
		root = "/sys"
	}
	devRoot := cfg.DevRoot
	if devRoot == "" {
		devRoot = "/dev"
	}
	sys := sysfs{root: root}
	dir := sys.path("bus", "usb", "devices")
	names := entries(dir)
	if names == nil {
		if _, err := os.Stat(sys.path("bus")); err != nil {
			return nil, fmt.Errorf("discover: no sysfs at %s: %w", root, err)
		}
		return nil, nil
	}
	var out []USBInterface
	for _, n := range names {
		if !reUSBIface.MatchString(n) {
			continue
		}
		iface, err := sys.resolve(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if hexAttr(filepath.Join(iface, "bInterfaceClass")) != usbClassMassStorage {
			continue
		}
		out = append(out, sys.usbInterface(n, iface, devRoot))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// hexAttr reads a hex byte attribute ("08"), -1 when absent or malformed.
func hexAttr(path string) int {
	s, err := attr(path)
	if err != nil {
		return -1
	}
	v, err := strconv.ParseUint(s, 16, 8)
	if err != nil {
		return -1
	}
	return int(v)
}

// usbInterface reads one interface (iface is its resolved directory).
func (s sysfs) usbInterface(name, iface, devRoot string) USBInterface {
	u := USBInterface{Name: name}
	dev := filepath.Dir(iface)
	u.BusPath = filepath.Base(dev)
	if b, _, ok := strings.Cut(name, ":"); ok && b != u.BusPath {
		u.Problems = append(u.Problems, "interface "+name+" is not under device "+u.BusPath)
		u.BusPath = b
	}
	u.Bus = int(attrInt(filepath.Join(dev, "busnum")))
	u.DevNum = int(attrInt(filepath.Join(dev, "devnum")))
	u.Config = int(attrInt(filepath.Join(dev, "bConfigurationValue")))
	u.Interface = hexAttr(filepath.Join(iface, "bInterfaceNumber"))
	u.AltSetting = int(attrInt(filepath.Join(iface, "bAlternateSetting")))
	u.VendorID = attrOr(filepath.Join(dev, "idVendor"))
	u.ProductID = attrOr(filepath.Join(dev, "idProduct"))
	u.Serial = cleanASCII([]byte(attrOr(filepath.Join(dev, "serial"))))
	u.Manufacturer = cleanASCII([]byte(attrOr(filepath.Join(dev, "manufacturer"))))
	u.Product = cleanASCII([]byte(attrOr(filepath.Join(dev, "product"))))
	u.Speed = attrOr(filepath.Join(dev, "speed"))
	if v := hexAttr(filepath.Join(iface, "bInterfaceSubClass")); v >= 0 {
		u.Subclass = uint8(v)
	}
	if v := hexAttr(filepath.Join(iface, "bInterfaceProtocol")); v >= 0 {
		u.Protocol = uint8(v)
	}
	u.BulkOnly = u.Subclass == usbSubclassSCSI && u.Protocol == usbProtocolBulkOnly
	if !u.BulkOnly {
		// The current alternate setting is not Bulk-Only (uas binds the
		// UAS one); the raw descriptors show the others.
		alts, err := ParseUSBDescriptors(binAttr(filepath.Join(dev, "descriptors")))
		if err != nil {
			u.Problems = append(u.Problems, "descriptors: "+err.Error())
		}
		for _, a := range alts {
			if a.Config == u.Config && a.Interface == u.Interface && a.BulkOnly() {
				u.BulkOnly = true
			}
		}
	}
	if drv, err := os.Readlink(filepath.Join(iface, "driver")); err == nil {
		u.Driver = filepath.Base(drv)
	}
	for _, h := range entries(iface) {
		if reHost.MatchString(h) {
			u.SCSIHost = h
			u.LUNs = s.usbLUNs(filepath.Join(iface, h), devRoot)
			break
		}
	}
	return u
}

// usbLUNs lists the SCSI devices under a SCSI host directory.
func (s sysfs) usbLUNs(host, devRoot string) []USBLUN {
	var luns []USBLUN
	for _, tgt := range entries(host) {
		if !strings.HasPrefix(tgt, "target") {
			continue
		}
		for _, n := range entries(filepath.Join(host, tgt)) {
			a, ok := parseHCTL(n)
			if !ok {
				continue
			}
			dir := filepath.Join(host, tgt, n)
			l := USBLUN{HCTL: n, LUN: a.LUN, Type: TypeUnknown}
			if t := attrInt(filepath.Join(dir, "type")); t >= 0 && t <= int64(peripheralTypeMax) {
				l.Type = PeripheralType(t)
			}
			l.Vendor = cleanASCII([]byte(attrOr(filepath.Join(dir, "vendor"))))
			l.Product = cleanASCII([]byte(attrOr(filepath.Join(dir, "model"))))
			if e := entries(filepath.Join(dir, "scsi_generic")); len(e) > 0 {
				l.SG = filepath.Join(devRoot, e[0])
			}
			if e := entries(filepath.Join(dir, "block")); len(e) > 0 {
				l.Block = filepath.Join(devRoot, e[0])
			}
			luns = append(luns, l)
		}
	}
	sort.Slice(luns, func(i, j int) bool { return luns[i].LUN < luns[j].LUN })
	return luns
}

// USBAltSetting is one interface alternate setting of a USB
// configuration descriptor.
type USBAltSetting struct {
	// Config is the bConfigurationValue of the configuration it is in.
	Config int
	// Interface and Alt are bInterfaceNumber and bAlternateSetting.
	Interface, Alt int
	// Class, Subclass and Protocol are the interface codes.
	Class, Subclass, Protocol uint8
	// BulkIn and BulkOut count its bulk endpoints by direction.
	BulkIn, BulkOut int
}

// BulkOnly reports whether the setting is SCSI over the Bulk-Only
// Transport with the two bulk endpoints it needs.
func (a *USBAltSetting) BulkOnly() bool {
	return a.Class == usbClassMassStorage && a.Subclass == usbSubclassSCSI && a.Protocol == usbProtocolBulkOnly &&
		a.BulkIn > 0 && a.BulkOut > 0
}

// USB descriptor types (USB 2.0 table 9-5).
const (
	usbDescDevice    = 0x01
	usbDescConfig    = 0x02
	usbDescInterface = 0x04
	usbDescEndpoint  = 0x05
)

// ParseUSBDescriptors decodes the sysfs "descriptors" attribute of a USB
// device (the device descriptor, then every configuration descriptor with
// what follows it) into its interface alternate settings. It never
// panics; on malformed input it returns what it decoded and an error.
func ParseUSBDescriptors(b []byte) ([]USBAltSetting, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var alts []USBAltSetting
	config := 0
	var cur *USBAltSetting
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return alts, fmt.Errorf("discover: descriptor header cut at byte %d", off)
		}
		n, typ := int(b[off]), b[off+1]
		if n < 2 || off+n > len(b) {
			return alts, fmt.Errorf("discover: descriptor of length %d at byte %d (%d bytes left)", n, off, len(b)-off)
		}
		d := b[off : off+n]
		switch typ {
		case usbDescDevice:
			if off != 0 {
				return alts, fmt.Errorf("discover: device descriptor at byte %d", off)
			}
		case usbDescConfig:
			if n < 9 {
				return alts, fmt.Errorf("discover: configuration descriptor of %d bytes", n)
			}
			config = int(d[5])
			cur = nil
		case usbDescInterface:
			if n < 9 {
				return alts, fmt.Errorf("discover: interface descriptor of %d bytes", n)
			}
			alts = append(alts, USBAltSetting{Config: config, Interface: int(d[2]), Alt: int(d[3]),
				Class: d[5], Subclass: d[6], Protocol: d[7]})
			cur = &alts[len(alts)-1]
		case usbDescEndpoint:
			if n < 7 {
				return alts, fmt.Errorf("discover: endpoint descriptor of %d bytes", n)
			}
			if cur != nil && d[3]&0x03 == 0x02 { // bmAttributes: bulk
				if d[2]&0x80 != 0 {
					cur.BulkIn++
				} else {
					cur.BulkOut++
				}
			}
		}
		off += n
	}
	return alts, nil
}
