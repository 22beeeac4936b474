// Package bridge wires the gateway together: it turns a configuration and
// the devices it names into iSCSI targets and LUNs, runs the server, and
// owns the lifecycle of everything it opened.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/rs/zerolog"

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

	mu        sync.Mutex
	listeners []net.Listener
}

// Options tune a Bridge beyond its configuration.
type Options struct {
	// Log receives the gateway's logs.
	Log zerolog.Logger
	// Preferences override the iSCSI negotiation offers (zero: defaults).
	Preferences iscsi.Preferences
}

// New opens every device the configuration names and builds the server.
// On error, whatever was opened is closed again.
func New(cfg *conf.Config, opts Options) (*Bridge, error) {
	b := &Bridge{log: opts.Log, cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			b.closeDevices()
		}
	}()
	groupOf := make(map[string]uint16, len(cfg.Portals))
	var portals []iscsi.Portal
	for _, p := range cfg.Portals {
		groupOf[p.Name] = p.Group
		portals = append(portals, iscsi.Portal{Listen: p.Listen, Advertise: p.Advertise, Group: p.Group})
	}
	inv := newInventory(b.log)
	var targets iscsi.StaticTargets
	for i := range cfg.Targets {
		ct := &cfg.Targets[i]
		var lus []*passthrough.LU
		var maxBurst uint32
		for _, l := range ct.LUNs {
			dev, err := openLUN(&l, inv, b.log)
			if err != nil {
				where := l.DeclRange
				switch {
				case l.Emulated != nil && l.Emulated.File != "":
					where = l.Emulated.FileRange
				case l.Device != nil:
					where = l.Device.DeclRange
				}
				return nil, fmt.Errorf("%s: target %s LUN %d: %w", where.String(), ct.Name, l.ID, err)
			}
			b.devices = append(b.devices, dev)
			lus = append(lus, passthrough.NewLU(l.ID, dev))
			// The largest burst the target negotiates must fit every
			// device's transfer limit, so large commands don't fail.
			if m := dev.Limits().MaxTransferBytes; m > 0 && (maxBurst == 0 || uint32(m) < maxBurst) {
				maxBurst = uint32(m)
			}
			if l.Device != nil {
				b.log.Info().Str("target", ct.Name).Uint64("lun", l.ID).Int("max_transfer", dev.Limits().MaxTransferBytes).Msg("pass-through device opened")
			}
		}
		h, err := passthrough.NewTarget(lus, b.log.With().Str("target", ct.Name).Logger())
		if err != nil {
			return nil, err
		}
		t := &iscsi.Target{Name: ct.Name, Alias: ct.Alias, Handler: h, Access: accessFunc(ct), MaxBurstLength: maxBurst}
		for _, pn := range ct.Portals {
			t.Groups = append(t.Groups, groupOf[pn])
		}
		targets = append(targets, t)
	}
	icfg := iscsi.Config{
		Portals:     portals,
		Targets:     targets,
		Preferences: opts.Preferences,
		Log:         b.log,
	}
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

// openLUN opens the backend of one LUN.
func openLUN(l *conf.LUN, inv *inventory, log zerolog.Logger) (sgio.Device, error) {
	switch {
	case l.Device != nil:
		return openDevice(l.Device, inv, log)
	case l.Emulated != nil:
		e := l.Emulated
		return emul.New(emul.Config{
			SizeBytes: e.SizeBytes,
			BlockSize: e.BlockSize,
			File:      e.File,
			ReadOnly:  e.ReadOnly,
			Vendor:    e.Vendor,
			Product:   e.Product,
			Revision:  e.Revision,
			Serial:    e.Serial,
		})
	}
	return nil, errors.New("no backend configured")
}

// accessFunc builds the target's ACL and CHAP policy: with initiator
// blocks only those may log in, each with its own CHAP or the target's.
func accessFunc(ct *conf.Target) func(string) iscsi.Access {
	targetCHAP := chapSecret(ct.CHAP)
	if len(ct.Initiators) == 0 {
		return func(string) iscsi.Access { return iscsi.Access{Allowed: true, CHAP: targetCHAP} }
	}
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
		c, ok := acl[norm]
		if !ok {
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
