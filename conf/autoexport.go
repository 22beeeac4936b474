package conf

import (
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// Auto-export: every local device that matches a selector becomes a LUN
// without a lun block of its own, and the set follows the devices as
// they come and go (the bridge reconciles it with the inventory):
//
//	auto_export "shelf" {
//	  target     = "iqn.2026-11.io.sanbridge:shelf"  # one target, one LUN per device
//	  per_device = false                              # true: one target per device, named target + "." + identity
//	  portals    = ["lan"]                            # default: every portal
//	  alias      = "disk shelf"
//	  transports = ["sas", "fc", "spi", "virtual"]    # default: any
//	  types      = ["disk", "tape", "changer"]        # default: any
//	  vendor     = ["SEAGATE", "HGST*"]              # '*' patterns, default: any
//	  product    = ["*"]
//	  include_in_use = false                          # devices this host uses
//	  include_iscsi  = false                          # devices that are themselves iSCSI LUNs
//	  read_only  = false
//	}
//
// A device mapped explicitly (a device block anywhere in the file)
// is never auto-exported. LUN numbers are kept per device identity in the
// state directory, so a device keeps its LUN across restarts and sg
// renumbering; a new device takes the lowest number free. A target of
// the file with the same name as an auto_export's target gets the
// devices' LUNs in its default map, next to its own (which win).

// AutoExport is one auto_export block.
type AutoExport struct {
	// Name is the block's label: LUN numbers are remembered under it.
	Name string `json:"name"`
	// Target is the target's iSCSI name (normalized); with PerDevice, the
	// prefix of every device's target name: Target + "." + a suffix made
	// of the device's identity.
	Target    string `json:"target"`
	PerDevice bool   `json:"per_device,omitempty"`
	// Alias is the TargetAlias of the target(s); empty: none (PerDevice:
	// the device's vendor and product).
	Alias string `json:"alias,omitempty"`
	// Portals are the portals the target(s) are reachable through.
	Portals []string `json:"portals"`
	// Transports, Types, Vendors and Products select devices: a device
	// matches when every non-empty list has an entry it matches.
	// Transports and Types hold discover's names ("sas", "usb";
	// "disk", "cdrom"); Vendors and Products are patterns where '*'
	// matches any run of characters, compared without case and without
	// the INQUIRY padding.
	Transports []string `json:"transports,omitempty"`
	Types      []string `json:"types,omitempty"`
	Vendors    []string `json:"vendor,omitempty"`
	Products   []string `json:"product,omitempty"`
	// IncludeInUse and IncludeISCSI export devices the host uses and
	// devices that come over iSCSI themselves, which are left out by
	// default.
	IncludeInUse bool `json:"include_in_use,omitempty"`
	IncludeISCSI bool `json:"include_iscsi,omitempty"`
	// ReadOnly makes every LUN of the block read-only.
	ReadOnly bool `json:"read_only,omitempty"`

	// DeclRange is where the block is defined.
	DeclRange hcl.Range `json:"-"`
}

// Matches reports whether the device d is selected by a's transports,
// types and patterns (not by the in-use and iSCSI exclusions).
func (a *AutoExport) Matches(d *discover.Device) bool {
	if len(a.Transports) > 0 && !containsFold(a.Transports, d.Transport.Kind.String()) {
		return false
	}
	if len(a.Types) > 0 && !containsFold(a.Types, d.Type.String()) {
		return false
	}
	if len(a.Vendors) > 0 && !anyPattern(a.Vendors, d.Vendor) {
		return false
	}
	if len(a.Products) > 0 && !anyPattern(a.Products, d.Product) {
		return false
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

func anyPattern(patterns []string, s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range patterns {
		if matchPattern(p, s) {
			return true
		}
	}
	return false
}

type rawAutoExport struct {
	Name         string         `hcl:"name,label"`
	NameRange    hcl.Range      `hcl:"name,label_range"`
	Target       hcl.Expression `hcl:"target,optional"`
	PerDevice    hcl.Expression `hcl:"per_device,optional"`
	Alias        hcl.Expression `hcl:"alias,optional"`
	Portals      hcl.Expression `hcl:"portals,optional"`
	Transports   hcl.Expression `hcl:"transports,optional"`
	Types        hcl.Expression `hcl:"types,optional"`
	Vendor       hcl.Expression `hcl:"vendor,optional"`
	Product      hcl.Expression `hcl:"product,optional"`
	IncludeInUse hcl.Expression `hcl:"include_in_use,optional"`
	IncludeISCSI hcl.Expression `hcl:"include_iscsi,optional"`
	ReadOnly     hcl.Expression `hcl:"read_only,optional"`
	DefRange     hcl.Range      `hcl:",def_range"`
}

// autoExports resolves the auto_export blocks. It runs after the
// portals and the targets.
func (r *resolver) autoExports(raws []*rawAutoExport) {
	names := map[string]hcl.Range{}
	targets := map[string]hcl.Range{}
	for _, ra := range raws {
		if ra == nil {
			continue
		}
		a := AutoExport{DeclRange: ra.DefRange}
		if r.declName(names, "auto_export", "LUN numbers are remembered under it", ra.Name, ra.NameRange, ra.DefRange) {
			a.Name = ra.Name
		}
		a.PerDevice, _ = r.boolean(ra.PerDevice, "per_device")
		switch name, st := r.str(ra.Target, "target"); st {
		case attrAbsent:
			r.errorf(ra.DefRange, "Missing target",
				`Add target = "iqn.YYYY-MM.domain:name" to the auto_export block: the target its devices are exported through (with per_device = true, the prefix of each device's target name).`)
		case attrOK:
			norm, err := iscsi.NormalizeName(name)
			switch {
			case err != nil:
				r.errorf(ra.Target.Range(), "Invalid target name", "%v.", err)
			case a.PerDevice && len(norm)+1+perDeviceSuffixMax > iscsiNameMax:
				r.errorf(ra.Target.Range(), "Target prefix too long",
					"With per_device, each device's target is named %q + \".\" + up to %d characters of its identity, and an iSCSI name has at most %d bytes; shorten the prefix.", norm, perDeviceSuffixMax, iscsiNameMax)
			default:
				a.Target = norm
				if prev, dup := targets[norm]; dup && !a.PerDevice {
					r.errorf(ra.Target.Range(), "Target used by two auto_export blocks",
						"The auto_export block at %s exports through %q already; LUN numbers of two blocks in one target would collide. Use one block with a wider selector.", prev, norm)
				}
				targets[norm] = ra.DefRange
			}
		}
		if alias, st := r.str(ra.Alias, "alias"); st == attrOK {
			if msg := checkText(alias, 0, MaxTextValue); msg != "" {
				r.errorf(ra.Alias.Range(), "Invalid alias", "The alias (TargetAlias) %s.", msg)
			} else {
				a.Alias = alias
			}
		}
		a.Portals = r.targetPortals(&rawTarget{Portals: ra.Portals})
		a.Transports = r.nameList(ra.Transports, "transports", func(s string) bool {
			var k discover.TransportKind
			return k.UnmarshalText([]byte(s)) == nil
		}, `transports lists transport names as "sanbridge scan" shows them: sas, fc, spi, usb, iscsi, ata, virtual, pseudo, srp, unknown`)
		a.Types = r.nameList(ra.Types, "types", func(s string) bool {
			var t discover.PeripheralType
			return t.UnmarshalText([]byte(s)) == nil
		}, `types lists peripheral device types as "sanbridge scan" shows them: disk, tape, cdrom, changer, worm, optical, enclosure, zbc, ...`)
		a.Vendors = r.patternList(ra.Vendor, "vendor")
		a.Products = r.patternList(ra.Product, "product")
		a.IncludeInUse, _ = r.boolean(ra.IncludeInUse, "include_in_use")
		a.IncludeISCSI, _ = r.boolean(ra.IncludeISCSI, "include_iscsi")
		a.ReadOnly, _ = r.boolean(ra.ReadOnly, "read_only")
		if a.PerDevice && a.Target != "" {
			if t := r.cfg.Target(a.Target); t != nil {
				r.warnf(ra.Target.Range(), "Prefix is a target's name",
					"Target %q (%s) has the name this per-device prefix starts the devices' targets with; that target gets none of them.", t.Name, t.DeclRange)
			}
		}
		r.cfg.AutoExports = append(r.cfg.AutoExports, a)
	}
}

// iscsiNameMax is the longest iSCSI name in bytes (RFC 7143 4.2.7.1);
// perDeviceSuffixMax the longest identity suffix of a per-device target.
const (
	iscsiNameMax       = 223
	perDeviceSuffixMax = 64
)

// nameList resolves a list of names each of which valid accepts,
// lower-cased.
func (r *resolver) nameList(expr hcl.Expression, name string, valid func(string) bool, how string) []string {
	elems, st := r.stringList(expr, name, "a list of names")
	if st != attrOK {
		return nil
	}
	var out []string
	for _, e := range elems {
		v := strings.ToLower(e.value)
		if e.null || !valid(v) {
			r.errorf(e.rng, "Unknown name in "+name, "%s; %q is not one.", how, e.value)
			continue
		}
		out = append(out, v)
	}
	return out
}

// patternList resolves a list of '*' patterns, lower-cased.
func (r *resolver) patternList(expr hcl.Expression, name string) []string {
	elems, st := r.stringList(expr, name, "a list of patterns")
	if st != attrOK {
		return nil
	}
	var out []string
	for _, e := range elems {
		if e.null || e.value == "" || len(e.value) > 64 || !printableASCIISpaces(e.value) {
			r.errorf(e.rng, "Invalid pattern in "+name,
				"%s lists INQUIRY strings to match, with '*' for any run of characters (\"SEAGATE\", \"ST4000*\"): 1 to 64 printable ASCII characters; %q is not one.", name, e.value)
			continue
		}
		out = append(out, strings.ToLower(strings.TrimSpace(e.value)))
	}
	return out
}

func printableASCIISpaces(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
