package bridge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge/cluster"
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
)

// What the gateway runs is one generation: built from a configuration
// (the file plus the devices auto-export adds), reusing what the previous
// generation had that did not change, and committed as a whole. A reload
// or a device change builds the next one; New builds the first.

// generation is everything one configuration runs.
type generation struct {
	cfg     *conf.Config            // the effective configuration
	targets map[string]*targetState // by name
	order   []*targetState          // in file order
	lus     map[string]*luState     // by backend name
	portals []iscsi.Portal
	dchap   *iscsi.CHAPSecret // discovery CHAP
}

// luState is one opened backend.
type luState struct {
	backend string
	fp      string // fingerprint: what must not change for it to be reused
	key     string // identity key (persistent reservations)
	lu      *passthrough.LU
	dev     sgio.Device
	hot     *hotDevice // the device of a pass-through LU of a local SCSI device
	auto    string     // the auto_export block that made it, "" for the file's own
}

// targetState is one target: the engine's view (it, replaced every
// generation) and the pass-through handler (pt, kept while the target's
// portal groups stay the same).
type targetState struct {
	conf     *conf.Target
	groups   []uint16          // portal group tags it is reachable through, sorted
	portIdx  map[uint16]uint16 // group -> index of its relative target port
	ports    map[uint16]uint16 // group -> relative target port identifier
	pt       *passthrough.Target
	h        *handler
	it       *iscsi.Target
	registry []*passthrough.LU
	views    passthrough.ViewFunc
	reused   bool // pt comes from the previous generation
}

// builder builds a generation.
type builder struct {
	b      *Bridge
	cfg    *conf.Config
	prev   *generation
	reuse  map[string]*luState // the previous generation's backends by fingerprint
	g      *generation
	opened []*luState // opened by this build (closed again if it fails)
}

// build builds the generation of cfg, reusing what prev (nil at the
// start) has that cfg does not change. Nothing it opens is visible
// before commit; on error, what it opened is closed again.
func (b *Bridge) build(cfg *conf.Config, prev *generation) (*generation, error) {
	bl := &builder{b: b, cfg: cfg, prev: prev, reuse: map[string]*luState{},
		g: &generation{cfg: cfg, targets: map[string]*targetState{}, lus: map[string]*luState{}}}
	if prev != nil {
		for _, ls := range prev.lus {
			bl.reuse[ls.fp] = ls
		}
	}
	if err := bl.targets(); err != nil {
		bl.undo()
		return nil, err
	}
	if cfg.Discovery != nil && cfg.Discovery.CHAP != nil {
		bl.g.dchap = chapSecret(cfg.Discovery.CHAP)
	}
	return bl.g, nil
}

// undo closes what a failed build opened.
func (bl *builder) undo() {
	for _, ls := range bl.opened {
		if err := ls.dev.Close(); err != nil {
			bl.b.log.Warn().Err(err).Str("backend", ls.backend).Msg("closing device")
		}
	}
	bl.opened = nil
}

func (bl *builder) targets() error {
	cfg, g := bl.cfg, bl.g
	groupOf := make(map[string]uint16, len(cfg.Portals))
	var allGroups []uint16
	for _, p := range cfg.Portals {
		groupOf[p.Name] = p.Group
		g.portals = append(g.portals, iscsi.Portal{Listen: p.Listen, Advertise: p.Advertise, Group: p.Group})
		if !slices.Contains(allGroups, p.Group) {
			allGroups = append(allGroups, p.Group)
		}
	}
	slices.Sort(allGroups)
	// Relative target port identifiers: one per target and portal group,
	// unique across the gateway (a logical unit may be reached through
	// several targets). The first generation numbers them in the file's
	// order; a target that stays keeps its own, and a new one takes
	// numbers no other target uses.
	used := map[uint16]bool{}
	type plan struct {
		ct     *conf.Target
		groups []uint16
		prev   *targetState
	}
	plans := make([]plan, 0, len(cfg.Targets))
	for i := range cfg.Targets {
		ct := &cfg.Targets[i]
		var groups []uint16
		for _, pn := range ct.Portals {
			if gr := groupOf[pn]; !slices.Contains(groups, gr) {
				groups = append(groups, gr)
			}
		}
		slices.Sort(groups)
		p := plan{ct: ct, groups: groups}
		if bl.prev != nil {
			if pt := bl.prev.targets[ct.Name]; pt != nil && slices.Equal(pt.groups, groups) {
				p.prev = pt
				for _, idx := range pt.portIdx {
					used[idx] = true
				}
			}
		}
		plans = append(plans, p)
	}
	next := uint16(1)
	for _, p := range plans {
		ts := &targetState{conf: p.ct, groups: p.groups}
		eff := p.groups
		if len(eff) == 0 {
			eff = allGroups
		}
		if p.prev != nil {
			ts.portIdx, ts.ports, ts.pt, ts.h, ts.reused = p.prev.portIdx, p.prev.ports, p.prev.pt, p.prev.h, true
		} else {
			ts.portIdx = make(map[uint16]uint16, len(eff))
			ts.ports = make(map[uint16]uint16, len(eff))
			for _, gr := range eff {
				for used[next] {
					next++
				}
				used[next] = true
				ts.portIdx[gr] = next
				ts.ports[gr] = relPort(bl.cfg, next)
				bl.b.addClusterPort(p.ct.Name, gr, ts.ports[gr])
			}
		}
		if err := bl.target(ts); err != nil {
			return err
		}
		g.targets[p.ct.Name] = ts
		g.order = append(g.order, ts)
	}
	return nil
}

// target builds one target's views, handler and engine target.
func (bl *builder) target(ts *targetState) error {
	ct := ts.conf
	views := make(map[string]passthrough.View, 1+len(ct.Views))
	mapView := func(group string, luns []conf.LUN) error {
		maps := make([]passthrough.Mapping, 0, len(luns))
		for j := range luns {
			l := &luns[j]
			ls, err := bl.open(ct, l)
			if err != nil {
				return err
			}
			maps = append(maps, passthrough.Mapping{LUN: l.ID, LU: ls.lu, ReadOnly: l.ReadOnly})
			if !slices.Contains(ts.registry, ls.lu) {
				ts.registry = append(ts.registry, ls.lu)
			}
		}
		v, err := passthrough.NewView(maps...)
		if err != nil {
			return fmt.Errorf("%s: target %s: %w", ct.DeclRange.String(), ct.Name, err)
		}
		views[group] = v
		return nil
	}
	if err := mapView("", ct.LUNs); err != nil {
		return err
	}
	for j := range ct.Views {
		if err := mapView(ct.Views[j].Group, ct.Views[j].LUNs); err != nil {
			return err
		}
	}
	ts.views = viewFunc(bl.cfg, views)
	if ts.pt == nil {
		pt, err := passthrough.NewTarget(passthrough.TargetConfig{
			Name:  ct.Name,
			Ports: ts.ports,
			LUs:   ts.registry,
			Views: ts.views,
			Log:   bl.b.log.With().Str("target", ct.Name).Logger(),
		})
		if err != nil {
			return err
		}
		ts.pt = pt
		ts.h = newHandler(pt, bl.b.opts.Metrics, bl.b.log)
	}
	t := &iscsi.Target{Name: ct.Name, Alias: ct.Alias, Groups: ts.groups, Handler: ts.h}
	t.Access = accessFunc(ct, ts.views)
	// The largest burst the target negotiates must fit every device's
	// transfer limit, so large commands don't fail.
	for _, lu := range ts.registry {
		if m := lu.Device().Limits().MaxTransferBytes; m > 0 && (t.MaxBurstLength == 0 || uint32(m) < t.MaxBurstLength) {
			t.MaxBurstLength = uint32(m)
		}
	}
	ts.it = t
	return nil
}

// open returns the logical unit of l's backend: the one this build
// already has, the previous generation's when its fingerprint is the
// same, or a new one. Errors name the LUN and where in the file the
// backend is.
func (bl *builder) open(ct *conf.Target, l *conf.LUN) (*luState, error) {
	if ls, ok := bl.g.lus[l.Backend]; ok {
		return ls, nil
	}
	fp := fingerprint(bl.cfg, l)
	if ls, ok := bl.reuse[fp]; ok {
		delete(bl.reuse, fp) // one backend each
		bl.g.lus[l.Backend] = ls
		return ls, nil
	}
	o := &opener{log: bl.b.log, inv: bl.b.inv, store: bl.b.store, cfg: bl.cfg, node: bl.b.node, openSG: bl.b.openSG}
	ls, err := o.open(ct, l)
	if err != nil {
		return nil, err
	}
	ls.fp = fp
	ls.auto = autoBlock(bl.cfg, l.Backend)
	if ls.hot != nil {
		ls.hot.lost = bl.b.deviceLost
	}
	bl.opened = append(bl.opened, ls)
	bl.g.lus[l.Backend] = ls
	return ls, nil
}

// fingerprint is what identifies a backend across generations: its
// settings, and for a memory disk its name too (two memory disks alike
// are still two). A backend whose fingerprint is unchanged keeps its
// logical unit, with its data, reservations and sessions.
func fingerprint(cfg *conf.Config, l *conf.LUN) string {
	shared := false
	if be := cfg.Backend(l.Backend); be != nil {
		shared = be.Shared
	}
	var spec any
	prefix := ""
	switch {
	case autoBlock(cfg, l.Backend) != "":
		// An auto-exported device is its identity (in the name); its
		// selector may name an sg node that changes.
		return fmt.Sprintf("auto %s read_only=%v allow_in_use=%v", l.Backend, l.Device.ReadOnly, l.Device.AllowInUse)
	case l.Device != nil:
		spec, prefix = l.Device, "device"
	case l.Emulated != nil && l.Emulated.File == "":
		spec, prefix = l.Emulated, "memory:"+l.Backend
	default:
		spec, prefix = l.Emulated, "file"
	}
	b, err := json.Marshal(spec)
	if err != nil {
		// Plain structs of strings and numbers always marshal; never
		// reuse what cannot be compared.
		return "unique:" + l.Backend + ":" + err.Error()
	}
	return fmt.Sprintf("%s shared=%v %s", prefix, shared, b)
}

// viewFunc resolves an initiator's view of one target from the views
// built for its default map ("") and its groups, as conf.Target.ViewFor
// does.
func viewFunc(cfg *conf.Config, views map[string]passthrough.View) passthrough.ViewFunc {
	return func(initiator string) passthrough.View {
		if g, ok := cfg.GroupOf(initiator); ok {
			if v, ok := views[g]; ok {
				return v
			}
		}
		return views[""]
	}
}

// opener opens one backend as a logical unit.
type opener struct {
	log    zerolog.Logger
	inv    *inventory
	store  passthrough.PRStore
	cfg    *conf.Config
	node   *cluster.Node // the cluster of shared backends, or nil
	openSG sgOpener
}

// open opens l's backend; errors name the LUN and where in the file the
// backend is.
func (o *opener) open(ct *conf.Target, l *conf.LUN) (*luState, error) {
	dev, key, err := openLUN(l, o.inv, o.openSG, o.log)
	if err == nil {
		var lu *passthrough.LU
		policy, depth := luPolicy(l.Device) // policy.go
		lu, err = passthrough.NewLU(context.Background(), passthrough.LUConfig{
			Name: l.Backend, Key: key, Device: dev, PRStore: o.storeFor(l.Backend),
			Log: o.log.With().Str("lu", l.Backend).Logger(), Policy: policy, QueueDepth: depth,
		})
		if err == nil {
			o.share(l.Backend, lu)
			o.setGeometry(lu, l.Device) // limits.go
			if l.Device != nil {
				o.log.Info().Str("target", ct.Name).Uint64("lun", l.ID).Str("backend", l.Backend).Str("key", key).
					Int("max_transfer", dev.Limits().MaxTransferBytes).Msg("pass-through device opened")
			}
			ls := &luState{backend: l.Backend, key: key, lu: lu, dev: dev}
			ls.hot, _ = dev.(*hotDevice)
			return ls, nil
		}
		dev.Close()
	}
	where := l.DeclRange
	switch {
	case l.Emulated != nil && l.Emulated.File != "":
		where = l.Emulated.FileRange
	case l.Device != nil:
		where = l.Device.DeclRange
	}
	return nil, fmt.Errorf("%s: target %s LUN %d: %w", where.String(), ct.Name, l.ID, err)
}

// openLUN opens the backend of one LUN and returns its identity key: the
// device's WWN or serial number when it has one, else the backend's
// name in the configuration (stable for an unchanged file).
func openLUN(l *conf.LUN, inv *inventory, openSG sgOpener, log zerolog.Logger) (sgio.Device, string, error) {
	switch {
	case l.Device != nil:
		return openDevice(l.Device, l.Backend, inv, openSG, log)
	case l.Emulated != nil:
		e := l.Emulated
		d, err := emul.New(emul.Config{
			SizeBytes: e.SizeBytes,
			BlockSize: e.BlockSize,
			File:      e.File,
			ReadOnly:  e.ReadOnly,
			Vendor:    e.Vendor,
			Product:   e.Product,
			Revision:  e.Revision,
			Serial:    e.Serial,
		})
		if err != nil {
			return nil, "", err
		}
		return d, "emulated:" + l.Backend, nil
	}
	return nil, "", errors.New("no backend configured")
}

// accessFunc builds the target's access policy: with initiator blocks
// only those may log in, each with its own CHAP or the target's; and an
// initiator whose view of the target is empty may neither log in nor
// find the target in discovery.
func accessFunc(ct *conf.Target, views passthrough.ViewFunc) func(string) iscsi.Access {
	targetCHAP := chapSecret(ct.CHAP)
	acl := make(map[string]*iscsi.CHAPSecret, len(ct.Initiators))
	for _, in := range ct.Initiators {
		c := targetCHAP
		if in.CHAP != nil {
			c = chapSecret(in.CHAP)
		}
		acl[in.Name] = c
	}
	return func(name string) iscsi.Access {
		norm, err := iscsi.NormalizeName(name)
		if err != nil {
			return iscsi.Access{}
		}
		c := targetCHAP
		if len(acl) > 0 {
			var ok bool
			if c, ok = acl[norm]; !ok {
				return iscsi.Access{}
			}
		}
		if views(norm).Len() == 0 {
			return iscsi.Access{}
		}
		return iscsi.Access{Allowed: true, CHAP: c}
	}
}

func chapSecret(c *conf.CHAP) *iscsi.CHAPSecret {
	if c == nil {
		return nil
	}
	return &iscsi.CHAPSecret{Username: c.Username, Secret: c.Secret, MutualUsername: c.MutualUsername, MutualSecret: c.MutualSecret}
}

// sameCHAP reports whether two credentials are the same.
func sameCHAP(a, b *iscsi.CHAPSecret) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// targetsInOrder returns a generation's engine targets in file order.
func (g *generation) engineTargets() []*iscsi.Target {
	out := make([]*iscsi.Target, len(g.order))
	for i, ts := range g.order {
		out[i] = ts.it
	}
	return out
}

// sortedLUs returns the generation's backends by name.
func (g *generation) sortedLUs() []*luState {
	out := make([]*luState, 0, len(g.lus))
	for _, ls := range g.lus {
		out = append(out, ls)
	}
	slices.SortFunc(out, func(a, b *luState) int { return cmp.Compare(a.backend, b.backend) })
	return out
}
