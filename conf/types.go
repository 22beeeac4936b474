package conf

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
)

// Limits and defaults of the configuration language.
const (
	// DefaultGroup is the portal group tag of a portal without `group`.
	DefaultGroup uint16 = 1
	// DefaultBlockSize is the logical block size of an emulated LUN
	// without `block_size`.
	DefaultBlockSize = 512
	// MaxLUN is the largest LUN id: LUNs 0-255 are reported with the
	// peripheral device addressing method and 256-16383 with the flat space
	// addressing method (SAM-5 4.7.7), both single-level.
	MaxLUN = 16383
	// MinCHAPSecret and MaxCHAPSecret bound the length of a CHAP secret in
	// bytes. RFC 7143 12.1.3 requires IPsec for secrets with less than 96
	// random bits, which sanbridge does not do, so shorter secrets (and
	// secrets longer than a text value may carry) are refused when the
	// configuration is loaded, not at login.
	MinCHAPSecret = 12
	MaxCHAPSecret = 255
	// MaxTextValue is the longest value of an iSCSI text key (usernames,
	// TargetAlias), RFC 7143 6.1.
	MaxTextValue = 255
	// MaxSerial is the longest unit serial number of an emulated LUN.
	MaxSerial = 64
	// MaxPattern is the longest initiator name pattern, in bytes: the
	// longest iSCSI name (RFC 7143 4.2.7.1).
	MaxPattern = 223
	// MaxQueueDepth is the largest queue_depth of a device.
	MaxQueueDepth = 256
	// MaxCommandTimeout bounds timeout and long_timeout.
	MaxCommandTimeout = 24 * time.Hour
)

// Config is a resolved, validated sanbridge configuration. Every default is
// filled in and every name is normalized.
type Config struct {
	// LogLevel is the minimum level logged; default info.
	LogLevel zerolog.Level `json:"log_level"`
	// Portals are the listeners, in file order.
	Portals []Portal `json:"portals"`
	// Discovery configures discovery sessions; nil when the file has no
	// discovery block.
	Discovery *Discovery `json:"discovery,omitempty"`
	// InitiatorGroups are the initiator_group blocks, in file order. An
	// initiator belongs to at most one group ([Config.GroupOf]).
	InitiatorGroups []InitiatorGroup `json:"initiator_groups,omitempty"`
	// Backends are the logical units behind the LUNs, each defined once:
	// the backend blocks in file order, then the inline backends (an
	// emulated or device block written inside a lun) in the order of their
	// lun blocks. Every LUN of every map names one by [LUN.Backend]; two
	// LUNs with the same Backend are the same logical unit (shared data,
	// reservations and unit attentions), whatever their LUN numbers,
	// targets or groups.
	Backends []Backend `json:"backends"`
	// Targets are the exported targets, in file order.
	Targets []Target `json:"targets"`
	// Cluster, when non-nil, makes this gateway one of several serving
	// the shared backends ([Backend.Shared]) as one SCSI target device.
	Cluster *Cluster `json:"cluster,omitempty"`
	// Metrics, when non-nil, serves Prometheus metrics.
	Metrics *Metrics `json:"metrics,omitempty"`
	// ISNS, when non-nil, registers the targets and portals with an iSNS
	// server.
	ISNS *ISNS `json:"isns,omitempty"`
	// Limits bound what initiators can make the gateway hold (the limits
	// block; zero fields: the defaults).
	Limits Limits `json:"limits"`
	// AutoExports are the auto_export blocks, in file order.
	AutoExports []AutoExport `json:"auto_exports,omitempty"`
	// Admin, when non-nil, configures the admin endpoint.
	Admin *Admin `json:"admin,omitempty"`
}

// InitiatorGroup is a named set of initiators that share LUN maps: each
// target may give the group its own [View].
type InitiatorGroup struct {
	// Name is the group's label, referenced by view blocks.
	Name string `json:"name"`
	// Initiators are the exact iSCSI names listed, normalized.
	Initiators []string `json:"initiators,omitempty"`
	// Patterns are the listed name patterns, lower case: '*' matches any
	// run of characters (also none); every other character matches
	// itself. There is no '?' and no character class.
	Patterns []string `json:"patterns,omitempty"`

	// DeclRange is where the initiator_group block is defined.
	DeclRange hcl.Range `json:"-"`
}

// Backend is one logical unit: an emulated disk or a local SCSI device.
// Exactly one of Emulated and Device is set.
type Backend struct {
	// Name is the backend's key, stable across reloads of an unchanged
	// file and unique in the Config. For a backend block it is the block's
	// label (letters, digits, '_', '-'); for an inline backend it is
	// synthesized from where the lun block is: "<target>/lun/<id>" in a
	// target's default map, "<target>/view/<group>/lun/<id>" in a view
	// (target names normalized). The two forms cannot collide.
	Name string `json:"name"`
	// Inline is set for a backend written inside a lun block.
	Inline bool `json:"inline,omitempty"`
	// Emulated is an emulated SBC disk backed by memory or a file.
	Emulated *Emulated `json:"emulated,omitempty"`
	// Device is a local SCSI device whose commands pass through.
	Device *Device `json:"device,omitempty"`
	// Shared marks a backend that every gateway of the cluster serves:
	// one logical unit with its reservations kept in etcd. Only named
	// backends may be shared, and only with a [Cluster].
	Shared bool `json:"shared,omitempty"`

	// DeclRange is where the backend block (or the inline emulated or
	// device block) is defined.
	DeclRange hcl.Range `json:"-"`
}

// ReadOnly reports whether the backend itself is write-protected
// (read_only in its emulated or device block), so that every LUN that
// maps it is read-only.
func (b *Backend) ReadOnly() bool {
	return b.Emulated != nil && b.Emulated.ReadOnly || b.Device != nil && b.Device.ReadOnly
}

// Portal is one listening socket (a network portal, RFC 7143 4.4.1).
type Portal struct {
	// Name is the portal's label, referenced from target.portals.
	Name string `json:"name"`
	// Listen is the IP:port to listen on, in canonical form ("[::1]:3260").
	// Port 0 asks the kernel for a free port (tests).
	Listen string `json:"listen"`
	// Advertise is the TargetAddress (host:port) given to initiators in
	// SendTargets. When the file does not set it, it is Listen if Listen is
	// a specific address with a non-zero port, and empty otherwise: empty
	// means "advertise the local address of the connection the
	// SendTargets arrived on" (see [Portal.TargetAddress]), which is what
	// a listener on 0.0.0.0 or [::] needs unless NAT is in the way.
	Advertise string `json:"advertise,omitempty"`
	// Group is the target portal group tag (1-65535), default 1. A target
	// is reachable through whole portal groups.
	Group uint16 `json:"group"`

	// DeclRange is where the portal block is defined.
	DeclRange hcl.Range `json:"-"`
	// ListenRange is the listen attribute, for diagnostics at bind time.
	ListenRange hcl.Range `json:"-"`
}

// Discovery configures discovery sessions (SessionType=Discovery).
type Discovery struct {
	// CHAP, when non-nil, is required of every discovery session.
	CHAP *CHAP `json:"chap,omitempty"`

	// DeclRange is where the discovery block is defined.
	DeclRange hcl.Range `json:"-"`
}

// CHAP holds CHAP credentials (RFC 7143 12.1.3, RFC 1994). Username and
// Secret authenticate the initiator to the target; MutualUsername and
// MutualSecret, when set, authenticate the target to the initiator. CHAP
// prints, marshals and logs without its secrets.
type CHAP struct {
	Username       string
	Secret         string
	MutualUsername string
	MutualSecret   string

	// DeclRange is where the chap block is defined.
	DeclRange hcl.Range
}

// Mutual reports whether the credentials include mutual CHAP.
func (c *CHAP) Mutual() bool { return c != nil && c.MutualSecret != "" }

// Target is one exported iSCSI target node.
type Target struct {
	// Name is the target's iSCSI name, normalized.
	Name string `json:"name"`
	// Alias is the TargetAlias (RFC 7143 13.6); may be empty.
	Alias string `json:"alias,omitempty"`
	// Portals are the names of the portals the target is reachable
	// through; every portal when the file does not say.
	Portals []string `json:"portals"`
	// CHAP, when non-nil, is required of initiators that have no CHAP of
	// their own.
	CHAP *CHAP `json:"chap,omitempty"`
	// Initiators is the access list: when non-empty, only these
	// initiators may log in to the target or see it in discovery.
	Initiators []Initiator `json:"initiators,omitempty"`
	// LUNs are the default map, in file order: what initiators see that
	// are in no initiator group, or in a group without a view in this
	// target. It may be empty.
	LUNs []LUN `json:"luns"`
	// Views are the per-group maps, in file order, at most one per group:
	// an initiator of a group with a view sees that view's LUNs and not
	// the default map. See [Target.ViewFor].
	Views []View `json:"views,omitempty"`

	// DeclRange is where the target block is defined.
	DeclRange hcl.Range `json:"-"`
}

// Initiator is one access-list entry of a target.
type Initiator struct {
	// Name is the initiator's iSCSI name, normalized.
	Name string `json:"name"`
	// CHAP, when non-nil, overrides the target's CHAP for this initiator.
	CHAP *CHAP `json:"chap,omitempty"`

	// DeclRange is where the initiator block is defined.
	DeclRange hcl.Range `json:"-"`
}

// View is what the initiators of one group see in one target.
type View struct {
	// Group is the name of an [InitiatorGroup] of the Config.
	Group string `json:"group"`
	// LUNs are the view's LUNs, in file order; possibly none (the group
	// sees no LUN in this target).
	LUNs []LUN `json:"luns"`

	// DeclRange is where the view block is defined.
	DeclRange hcl.Range `json:"-"`
}

// LUN is one entry of a LUN map (a target's default map or a view): a
// LUN number, the logical unit behind it, and whether this mapping may
// write. Exactly one of Emulated and Device is set: they point to the
// settings of the [Backend] named by Backend, shared by every LUN that
// maps it.
type LUN struct {
	// ID is the LUN number, 0 to [MaxLUN], unique within its map.
	ID uint64 `json:"id"`
	// Backend is the [Backend.Name] of the logical unit ([Config.Backend]).
	Backend string `json:"backend"`
	// ReadOnly is set when initiators may not write through this mapping:
	// the lun block says read_only = true, or the backend itself is
	// read-only ([Backend.ReadOnly]). A read-only backend cannot be made
	// writable by a mapping.
	ReadOnly bool `json:"read_only,omitempty"`
	// Emulated is the backend's emulated disk settings, or nil.
	Emulated *Emulated `json:"emulated,omitempty"`
	// Device is the backend's device selector, or nil.
	Device *Device `json:"device,omitempty"`

	// DeclRange is where the lun block is defined.
	DeclRange hcl.Range `json:"-"`
}

// Emulated configures an emulated SBC-3 disk.
type Emulated struct {
	// SizeBytes is the capacity in bytes, a positive multiple of BlockSize.
	SizeBytes int64 `json:"size_bytes"`
	// BlockSize is the logical block size, 512 or 4096.
	BlockSize int `json:"block_size"`
	// File is the absolute path of the backing file; empty means memory.
	File string `json:"file,omitempty"`
	// ReadOnly makes the disk write-protected.
	ReadOnly bool `json:"read_only"`
	// Vendor (at most 8 bytes), Product (16) and Revision (4) are the
	// INQUIRY identification (SPC-4 6.6.2), printable ASCII; Serial (at
	// most [MaxSerial] bytes, no spaces) is the unit serial number (VPD
	// page 80h). Empty means the backend's default.
	Vendor   string `json:"vendor,omitempty"`
	Product  string `json:"product,omitempty"`
	Revision string `json:"revision,omitempty"`
	Serial   string `json:"serial,omitempty"`

	// DeclRange is where the emulated block is defined.
	DeclRange hcl.Range `json:"-"`
	// FileRange is the file attribute, for diagnostics when it cannot be
	// opened; zero when absent.
	FileRange hcl.Range `json:"-"`
}

// Device selects a local SCSI device by stable identity, never by its
// /dev/sgN number, which changes across reboots. Every selector given
// must match, and exactly one device must match them all.
type Device struct {
	// WWN is the logical unit's preferred designator as `sanbridge scan`
	// shows it ("naa.5000c50015ea71a0"), lower case.
	WWN string `json:"wwn,omitempty"`
	// Serial is the unit serial number (VPD page 80h).
	Serial string `json:"serial,omitempty"`
	// Path is a device node or udev link (/dev/disk/by-path/...,
	// /dev/disk/by-id/..., /dev/sg3), resolved when the gateway starts.
	Path string `json:"path,omitempty"`
	// AllowInUse exports the device even when it is mounted, swapped on,
	// held by md/dm/LVM or itself iSCSI-backed. Off by default: exporting
	// a disk the gateway's own host uses corrupts it.
	AllowInUse bool `json:"allow_in_use,omitempty"`
	// ReadOnly write-protects the device: every LUN that maps it is
	// read-only, and the gateway refuses commands that write.
	ReadOnly bool `json:"read_only,omitempty"`
	// QueueDepth bounds the commands the gateway keeps in flight to the
	// device, 1 to [MaxQueueDepth]; 0 means the default (32).
	QueueDepth int `json:"queue_depth,omitempty"`
	// AllowOpcodes are operation codes passed to the device although its
	// device type refuses them by default (FORMAT UNIT, SANITIZE, WRITE
	// BUFFER, SECURITY PROTOCOL OUT, ATA PASS-THROUGH, vendor-specific).
	AllowOpcodes []int `json:"allow_opcodes,omitempty"`
	// DenyOpcodes are operation codes the gateway refuses (ILLEGAL
	// REQUEST, INVALID COMMAND OPERATION CODE) instead of passing them.
	DenyOpcodes []int `json:"deny_opcodes,omitempty"`
	// Timeout bounds an ordinary command; 0 keeps the device type's
	// default (60 s for disks, 15 min for tapes, 5 min for changers).
	Timeout time.Duration `json:"timeout,omitempty"`
	// LongTimeout bounds the long-running commands of the device type
	// (tape REWIND, ERASE, SPACE, LOCATE, LOAD, FORMAT MEDIUM; changer
	// MOVE MEDIUM, INITIALIZE ELEMENT STATUS; FORMAT UNIT, SANITIZE); 0
	// keeps the type's default (4 h for tapes, 2 h for changers, 1 h
	// otherwise).
	LongTimeout time.Duration `json:"long_timeout,omitempty"`
	// USB, instead of WWN, Serial and Path, selects a logical unit of a
	// USB mass-storage device that the gateway drives itself over the
	// Bulk-Only Transport (the kernel's usb-storage or uas driver is
	// detached from it meanwhile).
	USB *USB `json:"usb,omitempty"`

	// DeclRange is where the device block is defined.
	DeclRange hcl.Range `json:"-"`
}

// USB selects a USB mass-storage interface as `sanbridge scan --usb`
// shows it, and a logical unit behind it. Every selector given must
// match, and exactly one interface must match them all.
type USB struct {
	// VendorID and ProductID are idVendor and idProduct, four lower-case
	// hex digits ("46f4"); empty matches any.
	VendorID  string `json:"vid,omitempty"`
	ProductID string `json:"pid,omitempty"`
	// Serial is the device's USB serial number string.
	Serial string `json:"serial,omitempty"`
	// Path is the bus path of the interface ("2-1:1.0") or of the device
	// ("2-1", its first Bulk-Only interface); it holds while the device
	// stays in its port.
	Path string `json:"path,omitempty"`
	// LUN is the logical unit behind the interface, 0 to 15.
	LUN int `json:"lun"`

	// DeclRange is where the usb block is defined.
	DeclRange hcl.Range `json:"-"`
}

// Identity is the selector in one string, for duplicate detection.
func (u *USB) Identity() string {
	return u.VendorID + ":" + u.ProductID + ":" + u.Serial + ":" + u.Path + ":" + strconv.Itoa(u.LUN)
}

// Portal returns the portal with the given name, or nil.
func (c *Config) Portal(name string) *Portal {
	for i := range c.Portals {
		if c.Portals[i].Name == name {
			return &c.Portals[i]
		}
	}
	return nil
}

// Target returns the target with the given iSCSI name (compared after
// normalization), or nil.
func (c *Config) Target(name string) *Target {
	norm, err := iscsi.NormalizeName(name)
	if err != nil {
		return nil
	}
	for i := range c.Targets {
		if c.Targets[i].Name == norm {
			return &c.Targets[i]
		}
	}
	return nil
}

// TargetsForPortal returns the targets reachable through the named portal,
// in file order.
func (c *Config) TargetsForPortal(portal string) []*Target {
	var out []*Target
	for i := range c.Targets {
		if slices.Contains(c.Targets[i].Portals, portal) {
			out = append(out, &c.Targets[i])
		}
	}
	return out
}

// TargetGroups returns the sorted, distinct portal group tags of t's
// portals. Validation guarantees that a target includes every portal of
// each of these groups.
func (c *Config) TargetGroups(t *Target) []uint16 {
	var out []uint16
	for _, name := range t.Portals {
		if p := c.Portal(name); p != nil && !slices.Contains(out, p.Group) {
			out = append(out, p.Group)
		}
	}
	slices.Sort(out)
	return out
}

// Initiator returns the access-list entry for the initiator name (compared
// after normalization), or nil.
func (t *Target) Initiator(name string) *Initiator {
	norm, err := iscsi.NormalizeName(name)
	if err != nil {
		return nil
	}
	for i := range t.Initiators {
		if t.Initiators[i].Name == norm {
			return &t.Initiators[i]
		}
	}
	return nil
}

// LUN returns the LUN with the given id in the default map, or nil.
func (t *Target) LUN(id uint64) *LUN {
	for i := range t.LUNs {
		if t.LUNs[i].ID == id {
			return &t.LUNs[i]
		}
	}
	return nil
}

// Open reports whether the target has no access list, so that every
// initiator may log in.
func (t *Target) Open() bool { return len(t.Initiators) == 0 }

// Authorize decides for one initiator name: whether it may log in to the
// target and see it in discovery, and which CHAP credentials it must pass
// (its own entry's, else the target's; nil means no authentication). An
// invalid initiator name is refused unless the target is open.
func (t *Target) Authorize(initiator string) (allowed bool, chap *CHAP) {
	if t.Open() {
		return true, t.CHAP
	}
	i := t.Initiator(initiator)
	if i == nil {
		return false, nil
	}
	if i.CHAP != nil {
		return true, i.CHAP
	}
	return true, t.CHAP
}

// TargetAddress returns the SendTargets TargetAddress value for this portal,
// "host:port,group" (RFC 7143 13.8), for a discovery session whose
// connection has the given local address. An explicit or derived Advertise
// wins; otherwise the local IP and port of the connection are used (with
// any IPv6 zone dropped).
func (p *Portal) TargetAddress(local net.Addr) string {
	host := p.Advertise
	if host == "" && local != nil {
		if ap, err := netip.ParseAddrPort(local.String()); err == nil {
			host = netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port()).String()
		} else {
			host = local.String()
		}
	}
	return host + "," + strconv.FormatUint(uint64(p.Group), 10)
}
