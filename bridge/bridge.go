// Package bridge wires the gateway together: it turns a configuration and
// the devices it names into iSCSI targets and LUNs, runs the server, and
// owns the lifecycle of everything it opened.
//
// Every backend of the configuration is one passthrough.LU, however many
// LUN maps (targets, views) use it, so that its data, reservations and
// unit attentions are the same whichever LUN number an initiator reaches
// it through. Each target's views come from the configuration's masking
// (conf.Config.GroupOf, conf.Target.ViewFor).
//
// Everything is live: a reload (Reload, ReloadFile) builds what the new
// configuration runs, reusing every logical unit and target it does not
// change, and commits the difference (state.go, reload.go); devices come
// and go under their logical units (hotdev.go, watch.go); auto_export
// blocks follow the inventory (autoexport.go); Serve ends with a graceful
// stop (stop.go). Status and the admin endpoint show it (status.go,
// admin.go).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge/cluster"
	"github.com/sanbridge/sanbridge/bridge/metrics"
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
)

// Bridge is a running gateway: the devices it opened and the server that
// exports them.
type Bridge struct {
	log      zerolog.Logger
	opts     Options
	store    passthrough.PRStore
	node     *cluster.Node // nil unless clustered (clustered.go)
	inv      *inventory
	openSG   sgOpener
	srv      *iscsi.Server
	set      targetSet
	book     *lunBook      // auto-exported LUN numbers (autoexport.go)
	sessions *sessionCount // live sessions, for the graceful stop (stop.go)

	// mu serializes what changes the running state: reloads, device
	// reconciliation, the stop.
	mu        sync.Mutex
	cfg       *conf.Config // the configuration file's, as last applied
	gen       *generation
	listeners map[string]*portalListener // by listen address
	last      ReloadResult
	known     map[string]bool // identities of the devices seen (arrival/removal counts)
	stopping  bool
	serveErr  chan error // a listener that failed on its own

	rescan chan struct{} // asks the device watcher for a rescan now
	seen   atomic.Bool   // the device watcher runs
}

// Options tune a Bridge beyond its configuration.
type Options struct {
	// Log receives the gateway's logs.
	Log zerolog.Logger
	// Preferences override the iSCSI negotiation offers (zero: defaults).
	Preferences iscsi.Preferences
	// StateDir is the directory that keeps the persistent reservations
	// registered with APTPL, so that they survive a restart, and the LUN
	// numbers of auto-exported devices. Empty keeps both in memory only.
	StateDir string
	// Metrics, when set, receives the gateway's counters (commands per
	// LUN and initiator, sessions, logins, devices, reloads).
	Metrics *metrics.Registry
	// Load reads and validates the configuration again, for ReloadFile
	// (SIGHUP, sanbridge reload); nil refuses those.
	Load func() (*conf.Config, error)
	// AroundReload, when set, wraps every reload (systemd's RELOADING=1
	// and READY=1).
	AroundReload func(reload func() error) error
	// Applied, when set, is called after the running configuration
	// changed (at Listen, after a reload, after devices changed what
	// auto-export exports) with the effective configuration and the
	// portals' bound addresses, in the portals' order (the iSNS
	// registration follows it).
	Applied func(cfg *conf.Config, bound []netip.AddrPort)
	// WatchDevices makes Serve follow device arrivals and removals
	// (kernel uevents, and a rescan every RescanInterval).
	WatchDevices bool
	// RescanInterval is how often the inventory is scanned again while
	// WatchDevices; default 30 s.
	RescanInterval time.Duration
	// DrainTimeout bounds the graceful stop: how long sessions asked to
	// log out have to finish their commands and go; default 15 s.
	DrainTimeout time.Duration
}

// New opens every device the configuration maps and builds the server.
// On error, whatever was opened is closed again.
func New(cfg *conf.Config, opts Options) (*Bridge, error) {
	b := &Bridge{log: opts.Log, cfg: cfg, opts: opts, listeners: map[string]*portalListener{},
		known: map[string]bool{}, serveErr: make(chan error, 1), rescan: make(chan struct{}, 1), openSG: openSGDevice,
		sessions: newSessionCount()}
	b.inv = newInventory(b.log)
	return b.start(cfg)
}

// start is New after the Bridge's fields are set (tests replace the
// inventory and the sg opener first).
func (b *Bridge) start(cfg *conf.Config) (*Bridge, error) {
	ok := false
	defer func() {
		if !ok {
			b.leaveCluster()
			b.closeDevices()
		}
	}()
	if b.opts.StateDir != "" {
		fs, err := passthrough.NewFileStore(b.opts.StateDir)
		if err != nil {
			return nil, err
		}
		b.store = fs
	}
	b.book = newLUNBook(b.opts.StateDir)
	if err := b.book.load(); err != nil {
		return nil, err
	}
	if err := joinCluster(cfg, b); err != nil {
		return nil, err
	}
	eff, err := b.effective(cfg, nil)
	if err != nil {
		return nil, err
	}
	g, err := b.build(eff, nil)
	if err != nil {
		return nil, err
	}
	b.gen = g
	b.noteDevices()
	if err := b.startCluster(); err != nil {
		return nil, err
	}
	b.set.store(g)
	icfg := iscsi.Config{
		Portals:     g.portals,
		Targets:     &b.set,
		Preferences: b.opts.Preferences,
		Log:         b.log,
		Hooks:       b.hooks(),
	}
	icfg.Limits, icfg.LoginTimeout = engineLimits(&cfg.Limits) // limits.go
	icfg.DiscoveryCHAP = g.dchap
	srv, err := iscsi.NewServer(icfg)
	if err != nil {
		return nil, err
	}
	b.srv = srv
	if r := b.opts.Metrics; r != nil {
		r.SetMemoryBudget(icfg.Limits.Memory, func() int64 {
			st := srv.LimitStats()
			return st.MemoryInFlight + st.MemoryCached
		})
		r.Loaded(time.Now())
	}
	if err := b.book.save(); err != nil {
		b.log.Warn().Err(err).Msg("saving the auto-exported LUN numbers")
	}
	b.last = ReloadResult{Time: time.Now(), OK: true, Summary: summarize(g)}
	ok = true
	return b, nil
}

// hooks connects the engine's events to the session count and the
// metrics.
func (b *Bridge) hooks() iscsi.Hooks {
	r := b.opts.Metrics
	h := iscsi.Hooks{
		SessionStarted: func(d iscsi.SessionDetail) {
			b.sessions.add(1)
			if r != nil && !d.Discovery {
				r.SessionStarted(d.Nexus.TargetName)
			}
		},
		SessionEnded: func(d iscsi.SessionDetail) {
			b.sessions.add(-1)
			if r != nil && !d.Discovery {
				r.SessionEnded(d.Nexus.TargetName)
			}
		},
	}
	if r != nil {
		h.LoginFailed = func(_ string, st iscsi.LoginStatus) { r.LoginFailed(st.String()) }
		h.CHAPFailed = r.CHAPFailed
	}
	return h
}

// portalListener is one portal's listening socket.
type portalListener struct {
	l       net.Listener
	p       iscsi.Portal // what the engine's connections see (stable address)
	closing atomic.Bool  // closed by a reload or the stop, not failed
}

// Listen opens the portals' sockets and returns their addresses (useful
// with port 0 in tests).
func (b *Bridge) Listen(ctx context.Context) ([]net.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.listeners) == 0 {
		ls, err := b.bind(ctx, b.gen.portals)
		if err != nil {
			return nil, err
		}
		for _, pl := range ls {
			b.listeners[pl.p.Listen] = pl
		}
	}
	addrs := make([]net.Addr, 0, len(b.gen.portals))
	for _, p := range b.gen.portals {
		addrs = append(addrs, b.listeners[p.Listen].l.Addr())
	}
	b.applied()
	return addrs, nil
}

// bind opens a listener for each portal; on error none stays open.
func (b *Bridge) bind(ctx context.Context, ps []iscsi.Portal) ([]*portalListener, error) {
	var lc net.ListenConfig
	var out []*portalListener
	for _, p := range ps {
		l, err := lc.Listen(ctx, listenNetwork(p.Listen), p.Listen)
		if err != nil {
			for _, o := range out {
				o.l.Close()
			}
			return nil, fmt.Errorf("listen on portal %s: %w", p.Listen, err)
		}
		out = append(out, &portalListener{l: l, p: p})
	}
	return out, nil
}

// listenNetwork keeps an IPv4 portal IPv4-only: Go's "tcp" would bind
// 0.0.0.0 dual-stack, exposing the portal on IPv6 addresses too.
func listenNetwork(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		if ap.Addr().Is4() {
			return "tcp4"
		}
		return "tcp6"
	}
	return "tcp"
}

// serveListener serves one portal until its listener closes; a listener
// that fails on its own ends Serve.
func (b *Bridge) serveListener(pl *portalListener) {
	go func() {
		err := b.srv.Serve(pl.l, &pl.p)
		if pl.closing.Load() || errors.Is(err, iscsi.ErrServerClosed) {
			return
		}
		select {
		case b.serveErr <- fmt.Errorf("portal %s: %w", pl.p.Listen, err):
		default:
		}
	}()
}

// boundLocked returns the portals' bound addresses, in the portals'
// order. b.mu is held.
func (b *Bridge) boundLocked() []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range b.gen.portals {
		pl := b.listeners[p.Listen]
		if pl == nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(pl.l.Addr().String()); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// applied tells Options.Applied about the running configuration. b.mu is
// held.
func (b *Bridge) applied() {
	if b.opts.Applied != nil && len(b.listeners) > 0 {
		b.opts.Applied(b.gen.cfg, b.boundLocked())
	}
}

// Serve serves on the listeners opened by Listen (opening them if needed)
// until ctx is done or a listener fails, then stops gracefully (stop.go)
// and closes the devices.
func (b *Bridge) Serve(ctx context.Context) error {
	if _, err := b.Listen(ctx); err != nil {
		b.leaveCluster()
		b.closeDevices()
		return err
	}
	b.mu.Lock()
	for _, pl := range b.listeners {
		b.serveListener(pl)
	}
	b.mu.Unlock()
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	if b.opts.WatchDevices {
		go func() { defer close(watched); b.watchDevices(wctx) }()
	} else {
		close(watched)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-b.serveErr:
		b.log.Error().Err(err).Msg("a portal failed; stopping")
	}
	stopWatch()
	<-watched
	if serr := b.stop(); err == nil {
		err = serr
	}
	b.leaveCluster()
	b.closeDevices()
	return err
}

// Server returns the iSCSI server (for session listings).
func (b *Bridge) Server() *iscsi.Server { return b.srv }

// closeDevices closes every backend's device.
func (b *Bridge) closeDevices() {
	b.mu.Lock()
	g := b.gen
	b.gen = &generation{cfg: b.cfg, targets: map[string]*targetState{}, lus: map[string]*luState{}}
	b.mu.Unlock()
	if g == nil {
		return
	}
	for _, ls := range g.sortedLUs() {
		if err := ls.dev.Close(); err != nil {
			b.log.Warn().Err(err).Str("backend", ls.backend).Msg("closing device")
		}
	}
}

// targetSet is what the engine looks targets up in: the committed
// generation's targets, portals and discovery CHAP, swapped as a whole.
type targetSet struct {
	p atomic.Pointer[targetSnapshot]
}

type targetSnapshot struct {
	list    []*iscsi.Target
	byName  map[string]*iscsi.Target
	portals []iscsi.Portal
	dchap   *iscsi.CHAPSecret
}

// store publishes g's targets.
func (s *targetSet) store(g *generation) {
	snap := &targetSnapshot{list: g.engineTargets(), byName: make(map[string]*iscsi.Target, len(g.order)), portals: g.portals, dchap: g.dchap}
	for _, t := range snap.list {
		snap.byName[t.Name] = t
	}
	s.p.Store(snap)
}

// Target implements iscsi.Targets.
func (s *targetSet) Target(name string) (*iscsi.Target, bool) {
	t, ok := s.p.Load().byName[name]
	return t, ok
}

// All implements iscsi.Targets.
func (s *targetSet) All() []*iscsi.Target { return s.p.Load().list }

// Portals implements iscsi.PortalSet.
func (s *targetSet) Portals() []iscsi.Portal { return s.p.Load().portals }

// DiscoveryCHAP implements iscsi.DiscoveryAuth.
func (s *targetSet) DiscoveryCHAP() *iscsi.CHAPSecret { return s.p.Load().dchap }
