// Package bridge wires the gateway together: it turns a configuration and
// the devices it names into iSCSI targets and LUNs, runs the server, and
// owns the lifecycle of everything it opened.
//
// Every backend of the configuration is one passthrough.LU, however many
// LUN maps (targets, views) use it, so that its data, reservations and
// unit attentions are the same whichever LUN number an initiator reaches
// it through. Each target's views come from the configuration's masking
// (conf.Config.GroupOf, conf.Target.ViewFor).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge/cluster"
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
)

// Bridge is a running gateway: the devices it opened and the server that
// exports them.
type Bridge struct {
	log     zerolog.Logger
	cfg     *conf.Config
	srv     *iscsi.Server
	devices []sgio.Device
	targets []*passthrough.Target
	node    *cluster.Node // nil unless clustered (clustered.go)

	mu        sync.Mutex
	listeners []net.Listener
}

// Options tune a Bridge beyond its configuration.
type Options struct {
	// Log receives the gateway's logs.
	Log zerolog.Logger
	// Preferences override the iSCSI negotiation offers (zero: defaults).
	Preferences iscsi.Preferences
	// StateDir is the directory that keeps the persistent reservations
	// registered with APTPL, so that they survive a restart. Empty keeps
	// every persistent reservation in memory only.
	StateDir string
}

// New opens every device the configuration maps and builds the server.
// On error, whatever was opened is closed again.
func New(cfg *conf.Config, opts Options) (*Bridge, error) {
	b := &Bridge{log: opts.Log, cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			b.leaveCluster()
			b.closeDevices()
		}
	}()
	var store passthrough.PRStore
	if opts.StateDir != "" {
		fs, err := passthrough.NewFileStore(opts.StateDir)
		if err != nil {
			return nil, err
		}
		store = fs
	}
	if err := joinCluster(cfg, b); err != nil {
		return nil, err
	}
	groupOf := make(map[string]uint16, len(cfg.Portals))
	var portals []iscsi.Portal
	var allGroups []uint16
	for _, p := range cfg.Portals {
		groupOf[p.Name] = p.Group
		portals = append(portals, iscsi.Portal{Listen: p.Listen, Advertise: p.Advertise, Group: p.Group})
		if !slices.Contains(allGroups, p.Group) {
			allGroups = append(allGroups, p.Group)
		}
	}
	o := &opener{log: b.log, inv: newInventory(b.log), store: store, lus: make(map[string]*passthrough.LU), cfg: cfg, node: b.node}
	var targets iscsi.StaticTargets
	// Relative target port identifiers: one per target and portal group,
	// numbered in the file's order, unique across the gateway (a logical
	// unit may be reached through several targets).
	nextPort := uint16(1)
	for i := range cfg.Targets {
		ct := &cfg.Targets[i]
		t := &iscsi.Target{Name: ct.Name, Alias: ct.Alias}
		for _, pn := range ct.Portals {
			t.Groups = append(t.Groups, groupOf[pn])
		}
		groups := t.Groups
		if len(groups) == 0 {
			groups = allGroups
		}
		ports := make(map[uint16]uint16, len(groups))
		for _, g := range groups {
			ports[g] = relPort(cfg, nextPort)
			b.addClusterPort(ct.Name, g, ports[g])
			nextPort++
		}
		views := make(map[string]passthrough.View, 1+len(ct.Views))
		var registry []*passthrough.LU
		mapView := func(group string, luns []conf.LUN) error {
			maps := make([]passthrough.Mapping, 0, len(luns))
			for j := range luns {
				l := &luns[j]
				lu, err := o.open(ct, l)
				if err != nil {
					return err
				}
				maps = append(maps, passthrough.Mapping{LUN: l.ID, LU: lu, ReadOnly: l.ReadOnly})
				if !slices.Contains(registry, lu) {
					registry = append(registry, lu)
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
			return nil, err
		}
		for j := range ct.Views {
			if err := mapView(ct.Views[j].Group, ct.Views[j].LUNs); err != nil {
				return nil, err
			}
		}
		viewOf := viewFunc(cfg, views)
		h, err := passthrough.NewTarget(passthrough.TargetConfig{
			Name:  ct.Name,
			Ports: ports,
			LUs:   registry,
			Views: viewOf,
			Log:   b.log.With().Str("target", ct.Name).Logger(),
		})
		if err != nil {
			return nil, err
		}
		b.targets = append(b.targets, h)
		t.Handler = h
		t.Access = accessFunc(ct, viewOf)
		// The largest burst the target negotiates must fit every
		// device's transfer limit, so large commands don't fail.
		for _, lu := range registry {
			if m := lu.Device().Limits().MaxTransferBytes; m > 0 && (t.MaxBurstLength == 0 || uint32(m) < t.MaxBurstLength) {
				t.MaxBurstLength = uint32(m)
			}
		}
		targets = append(targets, t)
	}
	b.devices = o.devices
	if err := b.startCluster(); err != nil {
		return nil, err
	}
	icfg := iscsi.Config{
		Portals:     portals,
		Targets:     targets,
		Preferences: opts.Preferences,
		Log:         b.log,
	}
	icfg.Limits, icfg.LoginTimeout = engineLimits(&cfg.Limits) // limits.go
	if cfg.Discovery != nil && cfg.Discovery.CHAP != nil {
		icfg.DiscoveryCHAP = chapSecret(cfg.Discovery.CHAP)
	}
	srv, err := iscsi.NewServer(icfg)
	if err != nil {
		return nil, err
	}
	b.srv = srv
	ok = true
	return b, nil
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

// opener opens each backend once, on first use, as one logical unit.
type opener struct {
	log     zerolog.Logger
	inv     *inventory
	store   passthrough.PRStore
	cfg     *conf.Config
	node    *cluster.Node              // the cluster of shared backends, or nil
	lus     map[string]*passthrough.LU // by conf.Backend.Name
	devices []sgio.Device
}

// open returns the logical unit of l's backend, opening it the first
// time; errors name the LUN and where in the file the backend is.
func (o *opener) open(ct *conf.Target, l *conf.LUN) (*passthrough.LU, error) {
	if lu, ok := o.lus[l.Backend]; ok {
		return lu, nil
	}
	dev, key, err := openLUN(l, o.inv, o.log)
	if err == nil {
		var lu *passthrough.LU
		policy, depth := luPolicy(l.Device) // policy.go
		lu, err = passthrough.NewLU(context.Background(), passthrough.LUConfig{
			Name: l.Backend, Key: key, Device: dev, PRStore: o.storeFor(l.Backend),
			Log: o.log.With().Str("lu", l.Backend).Logger(), Policy: policy, QueueDepth: depth,
		})
		if err == nil {
			o.devices = append(o.devices, dev)
			o.lus[l.Backend] = lu
			o.share(l.Backend, lu)
			o.setGeometry(lu, l.Device) // limits.go
			if l.Device != nil {
				o.log.Info().Str("target", ct.Name).Uint64("lun", l.ID).Str("backend", l.Backend).Str("key", key).
					Int("max_transfer", dev.Limits().MaxTransferBytes).Msg("pass-through device opened")
			}
			return lu, nil
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
func openLUN(l *conf.LUN, inv *inventory, log zerolog.Logger) (sgio.Device, string, error) {
	switch {
	case l.Device != nil:
		return openDevice(l.Device, l.Backend, inv, log)
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

// Listen opens the portals' sockets and returns their addresses (useful
// with port 0 in tests).
func (b *Bridge) Listen(ctx context.Context) ([]net.Addr, error) {
	ls, err := b.srv.Listen(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.listeners = ls
	b.mu.Unlock()
	addrs := make([]net.Addr, len(ls))
	for i, l := range ls {
		addrs[i] = l.Addr()
	}
	return addrs, nil
}

// Serve serves on the listeners opened by Listen (opening them if needed)
// until ctx is done, then shuts down gracefully and closes the devices.
func (b *Bridge) Serve(ctx context.Context) error {
	b.mu.Lock()
	ls := b.listeners
	b.mu.Unlock()
	if ls == nil {
		if _, err := b.Listen(ctx); err != nil {
			b.closeDevices()
			return err
		}
		b.mu.Lock()
		ls = b.listeners
		b.mu.Unlock()
	}
	err := b.srv.ServeListeners(ctx, ls)
	b.leaveCluster()
	b.closeDevices()
	return err
}

// Server returns the iSCSI server (for session listings).
func (b *Bridge) Server() *iscsi.Server { return b.srv }

func (b *Bridge) closeDevices() {
	for _, d := range b.devices {
		if err := d.Close(); err != nil {
			b.log.Warn().Err(err).Msg("closing device")
		}
	}
	b.devices = nil
}
