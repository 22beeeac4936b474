package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// A reload applies a new configuration to the running gateway:
//
//  1. build: everything the new configuration runs, reusing every logical
//     unit whose backend did not change (same data, reservations, nexuses)
//     and every target whose portal groups did not change; new devices
//     and files are opened, new portals bound. Any error here (a device
//     that is not there, a port taken) undoes the build: nothing changed.
//  2. commit: the engine sees the new targets, portals and discovery
//     CHAP at once; each kept target gets its new views (a nexus whose
//     view changed gets REPORTED LUNS DATA HAS CHANGED on each LUN it
//     sees, passthrough.Target.SetViews), a removed target's nexuses see
//     nothing; sessions that lost their access (target or portal gone,
//     initiator no longer allowed or with other CHAP credentials) are
//     asked to log out (Async Message, ended after DefaultTime2Wait);
//     portals no longer configured close, and so do backends no longer
//     used. Sessions not affected go on as they were.
//
// What only a restart can change (the cluster block, the limits, the
// metrics and admin listeners, the log level) is reported as such in the
// result and left as it was.

// ReloadResult is what the last reload did.
type ReloadResult struct {
	// Time is when it ended; OK whether it applied.
	Time time.Time `json:"time"`
	OK   bool      `json:"ok"`
	// Error is why it did not apply (with file:line where there is one).
	Error string `json:"error,omitempty"`
	// Summary says what runs now; Changes what the reload changed;
	// Restart what it could not change without a restart.
	Summary string   `json:"summary"`
	Changes []string `json:"changes,omitempty"`
	Restart []string `json:"restart_needed,omitempty"`
	// LoggedOut counts the sessions asked to log out.
	LoggedOut int `json:"logged_out,omitempty"`
}

// errNoLoader is returned by ReloadFile without Options.Load.
var errNoLoader = errors.New("reload: this gateway was started without a configuration file to read again")

// ReloadFile reads the configuration again (Options.Load) and applies it
// (Reload), within Options.AroundReload; it returns the result, which
// LastReload returns too.
func (b *Bridge) ReloadFile() ReloadResult {
	var res ReloadResult
	run := func() error {
		if b.opts.Load == nil {
			res = b.failed(errNoLoader)
			return errNoLoader
		}
		cfg, err := b.opts.Load()
		if err != nil {
			res = b.failed(err)
			return err
		}
		res = b.Reload(cfg)
		if !res.OK {
			return errors.New(res.Error)
		}
		return nil
	}
	if b.opts.AroundReload != nil {
		_ = b.opts.AroundReload(run)
	} else {
		_ = run()
	}
	return res
}

// failed records a reload that did not get as far as Reload.
func (b *Bridge) failed(err error) ReloadResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = ReloadResult{Time: time.Now(), Error: err.Error(), Summary: b.last.Summary}
	b.log.Error().Err(err).Msg("reload failed; the running configuration is unchanged")
	if b.opts.Metrics != nil {
		b.opts.Metrics.Reloaded(err, time.Now())
	}
	return b.last
}

// LastReload returns what the last reload did (at the start: the first
// load).
func (b *Bridge) LastReload() ReloadResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Reload applies cfg, a validated configuration, to the running gateway.
func (b *Bridge) Reload(cfg *conf.Config) ReloadResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.applyLocked(cfg, nil)
	if err != nil {
		b.last = ReloadResult{Time: time.Now(), Error: err.Error(), Summary: b.last.Summary}
		b.log.Error().Err(err).Msg("reload failed; the running configuration is unchanged")
	} else {
		b.last = res
		b.log.Info().Str("summary", res.Summary).Strs("changes", res.Changes).Strs("restart_needed", res.Restart).
			Int("logged_out", res.LoggedOut).Msg("configuration reloaded")
	}
	if b.opts.Metrics != nil {
		b.opts.Metrics.Reloaded(err, time.Now())
	}
	return b.last
}

// applyLocked builds and commits the generation of the file's cfg with
// the inventory devs (nil: scan again). b.mu is held.
func (b *Bridge) applyLocked(cfg *conf.Config, devs []discover.Device) (ReloadResult, error) {
	if b.stopping || b.srv == nil {
		return ReloadResult{}, errors.New("the gateway is stopping")
	}
	if devs == nil {
		b.inv.refresh()
	}
	restart := restartOnly(b.cfg, cfg)
	if b.cfg.Cluster != nil || cfg.Cluster != nil {
		if !reflect.DeepEqual(stripRanges(b.cfg.Cluster), stripRanges(cfg.Cluster)) {
			return ReloadResult{}, fmt.Errorf("%s: the cluster block changed: restart sanbridge to apply it (the gateway would leave and join the cluster)", clusterRange(cfg))
		}
	}
	eff, err := b.effective(cfg, devs)
	if err != nil {
		return ReloadResult{}, err
	}
	prev := b.gen
	g, err := b.build(eff, prev)
	if err != nil {
		return ReloadResult{}, err
	}
	// New portals are bound before anything is committed, so that a port
	// already taken leaves everything as it was.
	var fresh []iscsi.Portal
	for _, p := range g.portals {
		if old := b.listeners[p.Listen]; old == nil || old.p.Group != p.Group {
			fresh = append(fresh, p)
		}
	}
	var bound []*portalListener
	if len(b.listeners) > 0 {
		var same []*portalListener // changed group: rebound after the old one closes
		var newAddr []iscsi.Portal
		for _, p := range fresh {
			if b.listeners[p.Listen] != nil {
				same = append(same, &portalListener{p: p})
			} else {
				newAddr = append(newAddr, p)
			}
		}
		if bound, err = b.bind(context.Background(), newAddr); err != nil {
			b.undoBuild(g, prev)
			return ReloadResult{}, err
		}
		bound = append(bound, same...)
	}
	res := ReloadResult{Time: time.Now(), OK: true, Summary: summarize(g), Restart: restart}
	res.Changes = describeChanges(prev, g)
	res.LoggedOut = b.commitLocked(g, prev, bound)
	b.cfg = cfg
	if err := b.book.save(); err != nil {
		b.log.Warn().Err(err).Msg("saving the auto-exported LUN numbers")
	}
	b.noteDevices()
	b.applied()
	return res, nil
}

// undoBuild closes what the build of g opened that prev does not use.
func (b *Bridge) undoBuild(g, prev *generation) {
	for name, ls := range g.lus {
		if prev == nil || !prev.uses(ls) {
			if err := ls.dev.Close(); err != nil {
				b.log.Warn().Err(err).Str("backend", name).Msg("closing device")
			}
		}
	}
}

// uses reports whether g holds ls.
func (g *generation) uses(ls *luState) bool {
	for _, o := range g.lus {
		if o == ls {
			return true
		}
	}
	return false
}

// commitLocked makes g the running generation (see the top of this
// file) and returns how many sessions it asked to log out. bound are the
// listeners of g's new portals (without a listener: to bind once the old
// one at the same address is closed). b.mu is held.
func (b *Bridge) commitLocked(g, prev *generation, bound []*portalListener) int {
	for _, ts := range g.order {
		if ts.reused {
			if n, err := ts.pt.SetViews(ts.registry, ts.views); err != nil {
				b.log.Error().Err(err).Str("target", ts.conf.Name).Msg("setting views")
			} else if n > 0 {
				b.log.Info().Str("target", ts.conf.Name).Int("nexuses", n).Msg("views changed: REPORTED LUNS DATA HAS CHANGED")
			}
		}
	}
	for name, ts := range prev.targets {
		if nt := g.targets[name]; nt == nil || nt.pt != ts.pt {
			// Its sessions are asked to log out below; meanwhile they
			// see no LUN.
			if _, err := ts.pt.SetViews(nil, passthrough.Everyone(passthrough.View{})); err != nil {
				b.log.Error().Err(err).Str("target", name).Msg("emptying views")
			}
		}
	}
	b.gen = g
	b.set.store(g)

	// Portals.
	want := map[string]iscsi.Portal{}
	for _, p := range g.portals {
		want[p.Listen] = p
	}
	for addr, pl := range b.listeners {
		if p, ok := want[addr]; !ok || p.Group != pl.p.Group {
			pl.closing.Store(true)
			pl.l.Close()
			delete(b.listeners, addr)
			b.log.Info().Str("portal", addr).Msg("portal closed")
		}
	}
	for _, pl := range bound {
		if pl.l == nil {
			ls, err := b.bind(context.Background(), []iscsi.Portal{pl.p})
			if err != nil {
				b.log.Error().Err(err).Msg("rebinding a portal with a new group")
				continue
			}
			pl = ls[0]
		}
		b.listeners[pl.p.Listen] = pl
		b.serveListener(pl)
	}

	// Sessions that lost access.
	n := b.srv.RequestLogout(func(d iscsi.SessionDetail) bool {
		why := lostAccess(d, g, prev)
		if why != "" {
			b.log.Info().Str("initiator", d.Nexus.InitiatorName).Stringer("isid", d.Nexus.ISID).
				Str("target", d.Nexus.TargetName).Str("why", why).Msg("session lost its access: asking it to log out")
		}
		return why != ""
	})

	// Backends no longer used.
	for name, ls := range prev.lus {
		if !g.uses(ls) {
			if err := ls.dev.Close(); err != nil {
				b.log.Warn().Err(err).Str("backend", name).Msg("closing device")
			}
		}
	}
	return n
}

// lostAccess says why a session may not go on under g ("" when it may).
func lostAccess(d iscsi.SessionDetail, g, prev *generation) string {
	if d.Discovery {
		if old := prev.dchap; !sameCHAP(old, g.dchap) {
			return "discovery CHAP changed"
		}
		return ""
	}
	ts := g.targets[d.Nexus.TargetName]
	if ts == nil {
		return "target removed"
	}
	if old := prev.targets[d.Nexus.TargetName]; old == nil || old.pt != ts.pt {
		return "target's portal groups changed"
	}
	if !slices.ContainsFunc(g.portals, func(p iscsi.Portal) bool { return p.Listen == d.Portal.Listen && p.Group == d.Portal.Group }) {
		return "portal removed or regrouped"
	}
	if len(ts.groups) > 0 && !slices.Contains(ts.groups, d.Portal.Group) {
		return "target no longer on this portal group"
	}
	acc := ts.it.Access(d.Nexus.InitiatorName)
	if !acc.Allowed {
		return "initiator no longer allowed (access list or empty view)"
	}
	if old := prev.targets[d.Nexus.TargetName]; old != nil && !sameCHAP(old.it.Access(d.Nexus.InitiatorName).CHAP, acc.CHAP) {
		return "CHAP credentials changed"
	}
	return ""
}

// restartOnly lists what differs between a and b that a reload does not
// apply.
func restartOnly(a, b *conf.Config) []string {
	var out []string
	if !reflect.DeepEqual(stripRanges(&a.Limits), stripRanges(&b.Limits)) {
		out = append(out, "limits")
	}
	if a.ISNS != nil || b.ISNS != nil {
		// The registration follows a reload (a new entity_id too); the
		// client itself does not.
		isnsOf := func(c *conf.Config) any {
			if c.ISNS == nil {
				return nil
			}
			return [3]any{c.ISNS.Server, c.ISNS.ESIListen, c.ISNS.ESIInterval}
		}
		if !reflect.DeepEqual(isnsOf(a), isnsOf(b)) {
			out = append(out, "isns")
		}
	}
	if !reflect.DeepEqual(stripRanges(a.Metrics), stripRanges(b.Metrics)) {
		out = append(out, "metrics")
	}
	if !reflect.DeepEqual(stripRanges(a.Admin), stripRanges(b.Admin)) {
		out = append(out, "admin")
	}
	if a.LogLevel != b.LogLevel {
		out = append(out, "log_level")
	}
	return out
}

// stripRanges returns v without its source ranges, for comparisons: a
// block moved in the file is the same block.
func stripRanges[T any](v *T) any {
	if v == nil {
		return nil
	}
	c := *v
	rv := reflect.ValueOf(&c).Elem()
	for i := 0; i < rv.NumField(); i++ {
		if f := rv.Field(i); strings.HasSuffix(rv.Type().Field(i).Name, "Range") && f.CanSet() {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return c
}

func clusterRange(cfg *conf.Config) string {
	if cfg.Cluster != nil {
		return cfg.Cluster.DeclRange.String()
	}
	return "cluster"
}

// summarize says what a generation runs.
func summarize(g *generation) string {
	luns := 0
	for _, ts := range g.order {
		luns += len(ts.conf.LUNs)
		for _, v := range ts.conf.Views {
			luns += len(v.LUNs)
		}
	}
	return fmt.Sprintf("%d portal(s), %d target(s), %d LUN(s), %d backend(s)", len(g.portals), len(g.order), luns, len(g.lus))
}

// describeChanges lists what differs between two generations.
func describeChanges(prev, g *generation) []string {
	var out []string
	for _, ts := range g.order {
		switch old := prev.targets[ts.conf.Name]; {
		case old == nil:
			out = append(out, "target added: "+ts.conf.Name)
		case old.pt != ts.pt:
			out = append(out, "target rebuilt (portal groups): "+ts.conf.Name)
		case !reflect.DeepEqual(mapsOf(old.conf), mapsOf(ts.conf)):
			out = append(out, "views changed: "+ts.conf.Name)
		}
	}
	for _, ts := range prev.order {
		if g.targets[ts.conf.Name] == nil {
			out = append(out, "target removed: "+ts.conf.Name)
		}
	}
	for name, ls := range g.lus {
		if !prev.uses(ls) {
			out = append(out, "backend opened: "+name)
		}
	}
	for name, ls := range prev.lus {
		if !g.uses(ls) {
			out = append(out, "backend closed: "+name)
		}
	}
	old := map[string]iscsi.Portal{}
	for _, p := range prev.portals {
		old[p.Listen] = p
	}
	for _, p := range g.portals {
		if o, ok := old[p.Listen]; !ok {
			out = append(out, "portal added: "+p.Listen)
		} else if o != p {
			out = append(out, "portal changed: "+p.Listen)
		}
		delete(old, p.Listen)
	}
	for addr := range old {
		out = append(out, "portal removed: "+addr)
	}
	slices.Sort(out)
	return out
}

// mapsOf lists a target's LUN maps as map ("" for the default one, else
// the group) -> LUN number -> backend and access.
func mapsOf(t *conf.Target) map[string]map[uint64]string {
	out := map[string]map[uint64]string{}
	add := func(name string, luns []conf.LUN) {
		m := make(map[uint64]string, len(luns))
		for _, l := range luns {
			m[l.ID] = fmt.Sprintf("%s ro=%v", l.Backend, l.ReadOnly)
		}
		out[name] = m
	}
	add("", t.LUNs)
	for _, v := range t.Views {
		add("view "+v.Group, v.LUNs)
	}
	return out
}
