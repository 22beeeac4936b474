package discover

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sanbridge/sanbridge/sgio"
)

// sysfs reads a sysfs tree rooted at root (normally /sys; a fixture in
// tests). Every path it returns is under root.
type sysfs struct {
	root string
}

// path joins elements under the root.
func (s sysfs) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// attr reads an attribute and trims surrounding blanks. A missing or
// unreadable attribute (the kernel refuses some reads, e.g. wwid with
// EINVAL or ENXIO) is "" with the error.
func attr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// attrOr reads an attribute, "" when it cannot be read.
func attrOr(path string) string {
	s, _ := attr(path)
	return s
}

// attrInt reads a decimal attribute, -1 when absent or malformed.
func attrInt(path string) int64 {
	s, err := attr(path)
	if err != nil {
		return -1
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// binAttr reads a binary attribute such as vpd_pg83 (nil when absent).
func binAttr(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// entries lists the names in a directory, sorted; nil when it is absent.
func entries(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// resolve follows the symlinks of path, which must stay under the root.
func (s sysfs) resolve(path string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(s.root)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("discover: %s resolves outside %s", path, s.root)
	}
	return filepath.Join(s.root, rel), nil
}

// rel returns path relative to the root, with slashes.
func (s sysfs) rel(path string) string {
	r, err := filepath.Rel(s.root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}

// parseHCTL parses "H:C:T:L".
func parseHCTL(s string) (sgio.HCTL, bool) {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return sgio.HCTL{}, false
	}
	var v [3]int
	for i := 0; i < 3; i++ {
		n, err := strconv.Atoi(f[i])
		if err != nil || n < 0 {
			return sgio.HCTL{}, false
		}
		v[i] = n
	}
	lun, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return sgio.HCTL{}, false
	}
	return sgio.HCTL{Host: v[0], Channel: v[1], Target: v[2], LUN: lun}, true
}

// scsiDevice is one SCSI device as sysfs shows it.
type scsiDevice struct {
	dir   string // the device's directory (.../H:C:T:L), under the root
	addr  sgio.HCTL
	block string // block device name ("sda"), if any
}

// listDevices finds the SCSI devices: every /sys/class/scsi_device
// entry, plus sg nodes whose device is missing there (older kernels,
// partial captures). The result is sorted by address.
func (s sysfs) listDevices() ([]scsiDevice, error) {
	seen := map[string]bool{}
	var out []scsiDevice
	add := func(classEntry string) {
		real, err := s.resolve(classEntry)
		if err != nil {
			return
		}
		// class/scsi_device/X -> .../H:C:T:L/scsi_device/X and
		// class/scsi_generic/sgN -> .../H:C:T:L/scsi_generic/sgN.
		dir := filepath.Dir(filepath.Dir(real))
		addr, ok := parseHCTL(filepath.Base(dir))
		if !ok || seen[dir] {
			return
		}
		seen[dir] = true
		out = append(out, scsiDevice{dir: dir, addr: addr})
	}
	found := false
	for _, class := range []string{"scsi_device", "scsi_generic"} {
		dir := s.path("class", class)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		found = true
		for _, n := range entries(dir) {
			add(filepath.Join(dir, n))
		}
	}
	if !found {
		if _, err := os.Stat(s.path("class")); err != nil {
			return nil, fmt.Errorf("discover: no sysfs at %s: %w", s.root, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessHCTL(out[i].addr, out[j].addr) })
	return out, nil
}

func lessHCTL(a, b sgio.HCTL) bool {
	if a.Host != b.Host {
		return a.Host < b.Host
	}
	if a.Channel != b.Channel {
		return a.Channel < b.Channel
	}
	if a.Target != b.Target {
		return a.Target < b.Target
	}
	return a.LUN < b.LUN
}

// fromSysfs fills what sysfs knows about the device: nodes, type,
// INQUIRY strings, capacity of block devices, and the cached identity in
// *cached (vpd_pg80, vpd_pg83, wwid), kept for when the device cannot be
// asked.
func (s sysfs) fromSysfs(sd *scsiDevice, devRoot string, d *Device, cached *Identity) {
	dir := sd.dir
	d.Address = sd.addr
	if t := attrInt(filepath.Join(dir, "type")); t >= 0 && t <= int64(peripheralTypeMax) {
		d.Type = PeripheralType(t)
	} else {
		d.Type = TypeUnknown
		d.Problems = append(d.Problems, "sysfs: no device type")
	}
	d.Vendor = cleanASCII([]byte(attrOr(filepath.Join(dir, "vendor"))))
	d.Product = cleanASCII([]byte(attrOr(filepath.Join(dir, "model"))))
	d.Revision = cleanASCII([]byte(attrOr(filepath.Join(dir, "rev"))))
	if inq, err := ParseInquiry(binAttr(filepath.Join(dir, "inquiry"))); err == nil {
		d.Removable = inq.Removable
		if d.Vendor == "" && d.Product == "" {
			d.Vendor, d.Product, d.Revision = inq.Vendor, inq.Product, inq.Revision
		}
	}
	d.State = attrOr(filepath.Join(dir, "state"))
	if drv, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
		d.UpperDriver = filepath.Base(drv)
	}
	if n := entries(filepath.Join(dir, "scsi_generic")); len(n) > 0 {
		d.SG = filepath.Join(devRoot, n[0])
	}
	if n := entries(filepath.Join(dir, "block")); len(n) > 0 {
		sd.block = n[0]
		d.Block = filepath.Join(devRoot, n[0])
		bdir := filepath.Join(dir, "block", n[0])
		if attrOr(filepath.Join(bdir, "removable")) == "1" {
			d.Removable = true
		}
		// The block layer's size is in 512-byte sectors. sr reports a
		// size before it has looked at the medium, so it is trusted for
		// disks only.
		sectors := attrInt(filepath.Join(bdir, "size"))
		lbs := attrInt(filepath.Join(bdir, "queue", "logical_block_size"))
		if sectors > 0 && lbs >= 512 && (d.Type == TypeDisk || d.Type == TypeZBC || d.Type == TypeRBC) {
			d.BlockSize = uint32(lbs)
			d.Blocks = uint64(sectors) * 512 / uint64(lbs)
			d.SizeBytes = uint64(sectors) * 512
		}
	}
	if n := entries(filepath.Join(dir, "scsi_tape")); len(n) > 0 {
		// st0, st0a, st0l, st0m, nst0, ...: prefer the non-rewinding node.
		best := ""
		for _, x := range n {
			if strings.HasPrefix(x, "nst") && strings.TrimLeft(x[3:], "0123456789") == "" {
				best = x
			}
		}
		if best == "" {
			for _, x := range n {
				if strings.HasPrefix(x, "st") && strings.TrimLeft(x[2:], "0123456789") == "" {
					best = x
				}
			}
		}
		if best != "" {
			d.Tape = filepath.Join(devRoot, best)
		}
	}
	if serial, err := ParseUnitSerial(binAttr(filepath.Join(dir, "vpd_pg80"))); err == nil || serial != "" {
		cached.Serial = serial
	}
	if ds, _ := ParseDeviceIdentification(binAttr(filepath.Join(dir, "vpd_pg83"))); len(ds) > 0 {
		cached.Designators = ds
		cached.WWN = PreferredWWN(ds)
	}
	if cached.WWN == "" {
		// wwid is unreadable (EINVAL, ENXIO) for devices without one.
		if w, err := attr(filepath.Join(dir, "wwid")); err == nil && w != "" {
			cached.WWN = cleanASCII([]byte(w))
		}
	}
	if cached.Serial != "" || cached.WWN != "" || len(cached.Designators) > 0 {
		cached.Source = "sysfs"
	}
}

var (
	rePCI      = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	reUSBIface = regexp.MustCompile(`^[0-9]+-[0-9.]+:[0-9]+\.[0-9]+$`)
	reUSBDev   = regexp.MustCompile(`^[0-9]+-[0-9.]+$`)
	reATA      = regexp.MustCompile(`^ata[0-9]+$`)
	reHost     = regexp.MustCompile(`^host[0-9]+$`)
)

// hostDriverKinds maps SCSI host drivers (proc_name) to their transport
// when sysfs has no transport class objects (RAID HBAs such as
// megaraid_sas, para-virtual HBAs, pseudo devices).
var hostDriverKinds = map[string]TransportKind{
	"megaraid_sas": TransportSAS, "mpt3sas": TransportSAS, "mpt2sas": TransportSAS,
	"mptsas": TransportSAS, "hisi_sas_v3_hw": TransportSAS, "pm80xx": TransportSAS,
	"aic94xx": TransportSAS, "isci": TransportSAS, "mvsas": TransportSAS, "smartpqi": TransportSAS,
	"aacraid": TransportSAS, "hpsa": TransportSAS, "mpi3mr": TransportSAS,
	"qla2xxx": TransportFC, "lpfc": TransportFC, "bfa": TransportFC, "qedf": TransportFC,
	"fnic": TransportFC, "zfcp": TransportFC, "fcoe": TransportFC,
	"iscsi_tcp": TransportISCSI, "ib_iser": TransportISCSI, "bnx2i": TransportISCSI,
	"cxgb4i": TransportISCSI, "cxgb3i": TransportISCSI, "qedi": TransportISCSI, "be2iscsi": TransportISCSI,
	"qla4xxx":     TransportISCSI,
	"usb-storage": TransportUSB, "uas": TransportUSB,
	"virtio_scsi": TransportVirtual, "hv_storvsc": TransportVirtual, "vmw_pvscsi": TransportVirtual,
	"xen-scsifront": TransportVirtual, "xenscsi": TransportVirtual,
	"scsi_debug": TransportPseudo, "tcm_loopback": TransportPseudo,
	"ib_srp":    TransportSRP,
	"sym53c8xx": TransportSPI, "aic7xxx": TransportSPI, "aic79xx": TransportSPI, "mptspi": TransportSPI,
}

// transport works out how the device is attached from its sysfs path
// and the transport classes.
func (s sysfs) transport(sd *scsiDevice, d *Device) {
	t := &d.Transport
	comps := strings.Split(s.rel(sd.dir), "/")
	hostIdx := -1
	for i, c := range comps {
		if reHost.MatchString(c) {
			hostIdx = i
		}
	}
	host := fmt.Sprintf("host%d", sd.addr.Host)
	t.HostDriver = attrOr(s.path("class", "scsi_host", host, "proc_name"))
	if hostIdx < 0 {
		hostIdx = len(comps)
	}
	for i := hostIdx - 1; i >= 0; i-- {
		if rePCI.MatchString(comps[i]) {
			t.HostPath = comps[i]
			break
		}
	}
	t.Kind = hostDriverKinds[t.HostDriver]

	// Transport class objects on the path win over the driver's name.
	for i, c := range comps {
		switch {
		case strings.HasPrefix(c, "session") && i > hostIdx:
			t.Kind = TransportISCSI
			t.Session = c
			s.iscsi(c, t)
		case strings.HasPrefix(c, "rport-") && i > hostIdx:
			t.Kind = TransportFC
			rp := s.path("class", "fc_remote_ports", c)
			t.NodeName = attrOr(filepath.Join(rp, "node_name"))
			t.PortName = attrOr(filepath.Join(rp, "port_name"))
			t.PortID = attrOr(filepath.Join(rp, "port_id"))
			fh := s.path("class", "fc_host", host)
			t.HostNodeName = attrOr(filepath.Join(fh, "node_name"))
			t.HostPortName = attrOr(filepath.Join(fh, "port_name"))
		case strings.HasPrefix(c, "end_device-") && i > hostIdx:
			t.Kind = TransportSAS
			if a := attrOr(s.path("class", "sas_device", c, "sas_address")); a != "" {
				t.SASAddress = a
			}
		case reATA.MatchString(c) && i < hostIdx:
			t.Kind = TransportATA
			t.ATAPort = c
		case reUSBIface.MatchString(c) && i == hostIdx-1:
			t.Kind = TransportUSB
			s.usb(strings.Join(comps[:i+1], "/"), t)
		}
	}
	if t.Kind == TransportSAS && t.SASAddress == "" {
		// mpt3sas and others export it on the device itself.
		t.SASAddress = attrOr(filepath.Join(sd.dir, "sas_address"))
	}
	if t.Kind == TransportUnknown {
		if _, err := os.Stat(s.path("class", "spi_transport",
			fmt.Sprintf("target%d:%d:%d", sd.addr.Host, sd.addr.Channel, sd.addr.Target))); err == nil {
			t.Kind = TransportSPI
		}
	}
	d.Path = s.busPath(comps, hostIdx, sd.addr, t)
}

// usb reads the USB device and interface above a USB mass storage host.
func (s sysfs) usb(ifaceRel string, t *Transport) {
	iface := s.path(ifaceRel)
	t.HostPath = filepath.Base(iface)
	if drv, err := os.Readlink(filepath.Join(iface, "driver")); err == nil {
		t.USBDriver = filepath.Base(drv)
	}
	dev := filepath.Dir(iface)
	if !reUSBDev.MatchString(filepath.Base(dev)) {
		return
	}
	t.USBPath = filepath.Base(dev)
	t.USBVendorID = attrOr(filepath.Join(dev, "idVendor"))
	t.USBProductID = attrOr(filepath.Join(dev, "idProduct"))
	t.USBSerial = cleanASCII([]byte(attrOr(filepath.Join(dev, "serial"))))
	t.USBManufacturer = cleanASCII([]byte(attrOr(filepath.Join(dev, "manufacturer"))))
	t.USBProduct = cleanASCII([]byte(attrOr(filepath.Join(dev, "product"))))
}

// iscsi reads the iSCSI session and its first connection.
func (s sysfs) iscsi(session string, t *Transport) {
	sd := s.path("class", "iscsi_session", session)
	t.TargetName = cleanASCII([]byte(attrOr(filepath.Join(sd, "targetname"))))
	t.TPGT = attrOr(filepath.Join(sd, "tpgt"))
	id := strings.TrimPrefix(session, "session")
	for _, c := range entries(s.path("class", "iscsi_connection")) {
		if !strings.HasPrefix(c, "connection"+id+":") {
			continue
		}
		cd := s.path("class", "iscsi_connection", c)
		addr := attrOr(filepath.Join(cd, "persistent_address"))
		port := attrOr(filepath.Join(cd, "persistent_port"))
		if addr == "" {
			addr = attrOr(filepath.Join(cd, "address"))
			port = attrOr(filepath.Join(cd, "port"))
		}
		if addr != "" {
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]"
			}
			t.Portal = addr
			if port != "" {
				t.Portal += ":" + port
			}
		}
		break
	}
}

// busPath builds a path name in the style of udev's by-path links, which
// survives sg/sd renumbering as long as the hardware stays in its slot.
func (s sysfs) busPath(comps []string, hostIdx int, a sgio.HCTL, t *Transport) string {
	lun := strconv.FormatUint(a.LUN, 10)
	scsi := fmt.Sprintf("scsi-0:%d:%d:%s", a.Channel, a.Target, lun)
	prefix := ""
	if t.HostPath != "" && rePCI.MatchString(t.HostPath) {
		prefix = "pci-" + t.HostPath
	}
	switch t.Kind {
	case TransportISCSI:
		if t.TargetName != "" {
			return "ip-" + t.Portal + "-iscsi-" + t.TargetName + "-lun-" + lun
		}
	case TransportFC:
		if t.PortName != "" {
			return join(prefix, "fc-"+t.PortName+"-lun-"+lun)
		}
	case TransportSAS:
		if t.SASAddress != "" {
			return sasPath(t, a.LUN)
		}
	case TransportUSB:
		pci := ""
		for i := hostIdx - 1; i >= 0; i-- {
			if rePCI.MatchString(comps[i]) {
				pci = "pci-" + comps[i]
				break
			}
		}
		if t.HostPath != "" {
			// "2-1:1.0" -> "usb-0:1:1.0" as udev writes it.
			port := t.HostPath
			if i := strings.IndexByte(port, '-'); i >= 0 {
				port = port[i+1:]
			}
			return join(pci, "usb-0:"+port+"-"+scsi)
		}
	}
	if prefix == "" && hostIdx > 0 && hostIdx <= len(comps) {
		// Pseudo and platform hosts: name the host's parent ("adapter0").
		prefix = comps[hostIdx-1]
	}
	return join(prefix, scsi)
}

// sasPath is the by-path name of a SAS device: "pci-X-sas-ADDR-lun-N".
func sasPath(t *Transport, lun uint64) string {
	prefix := ""
	if rePCI.MatchString(t.HostPath) {
		prefix = "pci-" + t.HostPath
	}
	return join(prefix, "sas-"+t.SASAddress+"-lun-"+strconv.FormatUint(lun, 10))
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "-" + b
}

// blockNames returns the device's block device and its partitions with
// their dev numbers ("8:0"), under the block directory of dir.
func blockNames(dir, block string) map[string]string {
	names := map[string]string{}
	if block == "" {
		return names
	}
	bdir := filepath.Join(dir, "block", block)
	names[block] = attrOr(filepath.Join(bdir, "dev"))
	for _, n := range entries(bdir) {
		if _, err := os.Stat(filepath.Join(bdir, n, "partition")); err == nil {
			names[n] = attrOr(filepath.Join(bdir, n, "dev"))
		}
	}
	return names
}

// holders lists what holds the device or its partitions (md, dm, ...).
func (s sysfs) holders(dir, block string) []Use {
	var uses []Use
	if block == "" {
		return nil
	}
	bdir := filepath.Join(dir, "block", block)
	check := func(name, hdir string) {
		for _, h := range entries(hdir) {
			what := h
			if dm := attrOr(s.path("class", "block", h, "dm", "name")); dm != "" {
				what += " (" + dm + ")"
			} else if lvl := attrOr(s.path("class", "block", h, "md", "level")); lvl != "" {
				what += " (" + lvl + ")"
			}
			uses = append(uses, Use{Kind: UseHolder, Block: name, What: what})
		}
	}
	check(block, filepath.Join(bdir, "holders"))
	for _, n := range entries(bdir) {
		if _, err := os.Stat(filepath.Join(bdir, n, "partition")); err == nil {
			check(n, filepath.Join(bdir, n, "holders"))
		}
	}
	return uses
}

// links maps the targets of the symlinks in dir (by-id, by-path) to the
// links, by target base name.
func links(dir string) map[string][]string {
	m := map[string][]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return m
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue
		}
		b := filepath.Base(target)
		m[b] = append(m[b], p)
	}
	return m
}
