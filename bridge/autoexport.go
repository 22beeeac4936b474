package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// Auto-export (conf.AutoExport) turns the inventory into LUNs: the
// effective configuration is the file's plus one LUN (or one target) per
// device an auto_export block selects. It is computed again at every
// reload and every device change, and applied like a reload, so a device
// that appears is exported at once; one that goes keeps its LUN (its
// logical unit answers NOT READY) until it is back.

// autoPrefix starts the backend name of an auto-exported device:
// "auto/<block>/<identity>".
const autoPrefix = "auto/"

// autoBlock returns the auto_export block a backend comes from, "" when
// the file defines it.
func autoBlock(_ *conf.Config, backend string) string {
	rest, ok := strings.CutPrefix(backend, autoPrefix)
	if !ok {
		return ""
	}
	block, _, _ := strings.Cut(rest, "/")
	return block
}

// effective returns the configuration the gateway runs for the file's
// cfg: cfg itself without auto_export blocks, else a copy with the
// devices they select. devs is the inventory (nil: scan it).
func (b *Bridge) effective(cfg *conf.Config, devs []discover.Device) (*conf.Config, error) {
	if len(cfg.AutoExports) == 0 {
		return cfg, nil
	}
	if devs == nil {
		var err error
		if devs, err = b.inv.devices(); err != nil {
			return nil, fmt.Errorf("%s: auto_export: scanning devices: %w", cfg.AutoExports[0].DeclRange, err)
		}
	}
	eff := *cfg
	eff.Targets = slices.Clone(cfg.Targets)
	eff.Backends = slices.Clone(cfg.Backends)
	// Devices the file maps itself are not auto-exported.
	explicit := map[string]bool{}
	for _, be := range cfg.Backends {
		if be.Device != nil && be.Device.USB == nil {
			if d, err := resolveDevice(be.Device, devs); err == nil {
				explicit[identityOf(d)] = true
			}
		}
	}
	own := map[string]bool{}
	for _, t := range cfg.Targets {
		own[t.Name] = true
	}
	// Devices exported before and gone now keep their LUN.
	var prevLUNs map[string]conf.LUN
	if b.gen != nil {
		prevLUNs = map[string]conf.LUN{}
		for _, t := range b.gen.cfg.Targets {
			for _, l := range t.LUNs {
				if ls := b.gen.lus[l.Backend]; ls != nil && ls.auto != "" && ls.hot != nil {
					if st, _, _, _, _ := ls.hot.where(); st == devGone {
						prevLUNs[l.Backend] = l
					}
				}
			}
		}
	}
	claimed := map[string]bool{}
	for i := range cfg.AutoExports {
		a := &cfg.AutoExports[i]
		type pick struct {
			id  string
			d   *discover.Device
			lun conf.LUN // for a gone device
		}
		var picks []pick
		for j := range devs {
			d := &devs[j]
			id := identityOf(d)
			if explicit[id] || claimed[id] || d.SG == "" || !a.Matches(d) || !exportable(a, d, own) {
				continue
			}
			claimed[id] = true
			picks = append(picks, pick{id: id, d: d})
		}
		for backend, l := range prevLUNs {
			if autoBlock(cfg, backend) != a.Name {
				continue
			}
			id := strings.TrimPrefix(backend, autoPrefix+a.Name+"/")
			if !claimed[id] && !explicit[id] {
				claimed[id] = true
				picks = append(picks, pick{id: id, lun: l})
			}
		}
		slices.SortFunc(picks, func(x, y pick) int { return strings.Compare(x.id, y.id) })
		for _, p := range picks {
			backend := autoPrefix + a.Name + "/" + p.id
			l := p.lun
			if p.d != nil {
				l = conf.LUN{Backend: backend, ReadOnly: a.ReadOnly, Device: autoSelector(a, p.d), DeclRange: a.DeclRange}
			}
			eff.Backends = append(eff.Backends, conf.Backend{Name: backend, Device: l.Device, DeclRange: a.DeclRange})
			if a.PerDevice {
				l.ID = 0
				alias := a.Alias
				if alias == "" && p.d != nil {
					alias = strings.TrimSpace(strings.TrimSpace(p.d.Vendor) + " " + strings.TrimSpace(p.d.Product))
				}
				eff.Targets = append(eff.Targets, conf.Target{Name: a.Target + "." + targetSuffix(p.id), Alias: alias,
					Portals: a.Portals, LUNs: []conf.LUN{l}, DeclRange: a.DeclRange})
				continue
			}
			t := autoTarget(&eff, a)
			taken := func(n uint64) bool { return t.LUN(n) != nil }
			l.ID = b.book.lun(a.Name, p.id, taken)
			if l.ID > conf.MaxLUN {
				b.log.Warn().Str("auto_export", a.Name).Str("device", p.id).Msg("no LUN number left: device not exported")
				eff.Backends = eff.Backends[:len(eff.Backends)-1]
				continue
			}
			t.LUNs = append(t.LUNs, l)
		}
	}
	return &eff, nil
}

// exportable applies an auto_export block's exclusions: devices in use,
// devices that are themselves iSCSI LUNs (unless asked for), and never a
// LUN of this gateway's own targets seen through a local initiator.
func exportable(a *conf.AutoExport, d *discover.Device, own map[string]bool) bool {
	if d.Transport.Kind == discover.TransportISCSI {
		if own[d.Transport.TargetName] || strings.HasPrefix(d.Transport.TargetName, a.Target) {
			return false
		}
		return a.IncludeISCSI
	}
	if len(d.InUse) > 0 && !a.IncludeInUse {
		return false
	}
	return true
}

// autoSelector selects device d for a LUN of block a: by WWN, else
// serial, else its sg node (a device without either has no identity
// that survives its sg node, only its bus path, which identityOf uses).
func autoSelector(a *conf.AutoExport, d *discover.Device) *conf.Device {
	sel := &conf.Device{AllowInUse: a.IncludeInUse || a.IncludeISCSI, ReadOnly: a.ReadOnly, DeclRange: a.DeclRange}
	switch {
	case d.Identity.WWN != "":
		sel.WWN = d.Identity.WWN
	case d.Identity.Serial != "":
		sel.Serial = d.Identity.Serial
		sel.Path = d.SG // serial numbers are unique per vendor and product only
	default:
		sel.Path = d.SG
	}
	return sel
}

// autoTarget returns the target of eff that block a adds LUNs to,
// adding it when the file has none of that name. Its LUN slice is a copy
// (the file's configuration is not changed).
func autoTarget(eff *conf.Config, a *conf.AutoExport) *conf.Target {
	for i := range eff.Targets {
		if t := &eff.Targets[i]; t.Name == a.Target {
			t.LUNs = slices.Clip(t.LUNs) // appends copy
			return t
		}
	}
	eff.Targets = append(eff.Targets, conf.Target{Name: a.Target, Alias: a.Alias, Portals: a.Portals, LUNs: []conf.LUN{}, DeclRange: a.DeclRange})
	return &eff.Targets[len(eff.Targets)-1]
}

// targetSuffix makes an identity into the tail of a per-device target's
// iSCSI name: lower case, [a-z0-9.-] only, at most 64 bytes.
func targetSuffix(id string) string {
	_, v, ok := strings.Cut(id, ":")
	if !ok {
		v = id
	}
	var sb strings.Builder
	dash := false
	for _, c := range strings.ToLower(v) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.':
			sb.WriteRune(c)
			dash = false
		default:
			if !dash && sb.Len() > 0 {
				sb.WriteByte('-')
				dash = true
			}
		}
		if sb.Len() >= 64 {
			break
		}
	}
	return strings.TrimRight(sb.String(), "-.")
}

// lunBook keeps the LUN number of every auto-exported device, per block
// and device identity, in <state-dir>/auto-export.json (or in memory).
type lunBook struct {
	path string // "" keeps the book in memory

	mu     sync.Mutex
	blocks map[string]map[string]uint64
	dirty  bool
}

type lunBookFile struct {
	Version int                          `json:"version"`
	Blocks  map[string]map[string]uint64 `json:"blocks"`
}

func newLUNBook(stateDir string) *lunBook {
	bk := &lunBook{blocks: map[string]map[string]uint64{}}
	if stateDir != "" {
		bk.path = filepath.Join(stateDir, "auto-export.json")
	}
	return bk
}

// load reads the book; a missing file is an empty book.
func (bk *lunBook) load() error {
	if bk.path == "" {
		return nil
	}
	b, err := os.ReadFile(bk.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auto-exported LUN numbers: %w", err)
	}
	var f lunBookFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("auto-exported LUN numbers: %s: %w (move the file away to number the devices anew)", bk.path, err)
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for blk, m := range f.Blocks {
		bk.blocks[blk] = m
	}
	return nil
}

// lun returns the LUN number of device id in block: the one it had,
// unless taken reports it used (by the file's own LUNs, which win), else
// the lowest number neither taken nor another device's. The result is
// conf.MaxLUN+1 when none is left.
func (bk *lunBook) lun(block, id string, taken func(uint64) bool) uint64 {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	m := bk.blocks[block]
	if m == nil {
		m = map[string]uint64{}
		bk.blocks[block] = m
	}
	if n, ok := m[id]; ok && !taken(n) {
		return n
	}
	others := make(map[uint64]bool, len(m))
	for oid, n := range m {
		if oid != id {
			others[n] = true
		}
	}
	n := uint64(0)
	for ; n <= conf.MaxLUN && (taken(n) || others[n]); n++ {
	}
	if n <= conf.MaxLUN {
		m[id] = n
		bk.dirty = true
	}
	return n
}

// save writes the book if it changed: a temporary file, fsync, rename,
// fsync of the directory.
func (bk *lunBook) save() error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if bk.path == "" || !bk.dirty {
		return nil
	}
	b, err := json.MarshalIndent(lunBookFile{Version: 1, Blocks: bk.blocks}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(bk.path, append(b, '\n')); err != nil {
		return err
	}
	bk.dirty = false
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either
// the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("writing %s: sync of the directory: %w", path, err)
		}
	}
	return nil
}
