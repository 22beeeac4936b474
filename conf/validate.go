package conf

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"
	"github.com/zclconf/go-cty/cty"

	"github.com/sanbridge/sanbridge/iscsi"
)

// resolver turns a decoded rawFile into a Config, collecting diagnostics.
type resolver struct {
	checker
	// body is the file body, for diagnostics about missing blocks.
	body hcl.Body
	cfg  Config
	// listen holds each portal's parsed listen address (invalid ones are
	// absent), by index in cfg.Portals.
	listen map[int]netip.AddrPort
	// secrets records every CHAP secret for the cross-direction check.
	secrets []chapSecret
	// serials maps an emulated serial to where it was first set.
	serials map[string]hcl.Range
	// identities maps what a backend selects (a device's wwn, serial or
	// path, an emulated disk's file) to where it was first selected.
	identities map[string]hcl.Range
	// backendUses counts the lun blocks that reference each named backend.
	backendUses map[string]int
	// groupViews counts the views of each initiator group.
	groupViews map[string]int
	// incomplete marks the groups whose initiators list had errors, so
	// that no warning guesses at what they would have matched.
	incomplete map[string]bool
}

// chapSecret is one secret seen in a chap block.
type chapSecret struct {
	value  string
	mutual bool // authenticates the target (mutual_secret)
	rng    hcl.Range
	block  hcl.Range // the chap block's DefRange
}

// resolve validates raw and returns the resolved Config; the Config is
// meaningful only when r.diags has no errors.
func (r *resolver) resolve(raw *rawFile) *Config {
	r.listen = map[int]netip.AddrPort{}
	r.serials = map[string]hcl.Range{}
	r.identities = map[string]hcl.Range{}
	r.backendUses = map[string]int{}
	r.groupViews = map[string]int{}
	r.incomplete = map[string]bool{}
	r.logLevel(raw.LogLevel)
	r.portals(raw.Portals)
	// Groups and named backends first: targets refer to them wherever
	// they are in the file.
	r.initiatorGroups(raw.Groups)
	r.namedBackends(raw.Backends)
	if raw.Discovery != nil {
		r.cfg.Discovery = &Discovery{DeclRange: raw.Discovery.DefRange}
		if raw.Discovery.CHAP != nil {
			r.cfg.Discovery.CHAP = r.chap(raw.Discovery.CHAP)
		}
	}
	targets := map[string]hcl.Range{}
	for _, rt := range raw.Targets {
		if rt == nil {
			continue
		}
		t := r.target(rt)
		if t.Name != "" {
			if prev, dup := targets[t.Name]; dup {
				r.errorf(rt.NameRange, "Duplicate target",
					"A target named %q is already defined at %s. Target names are compared in lower case; give each target its own name.", t.Name, prev)
			} else {
				targets[t.Name] = rt.DefRange
			}
		}
		r.cfg.Targets = append(r.cfg.Targets, t)
	}
	r.crossCheckSecrets()
	r.clusterSettings(raw)
	r.serviceSettings(raw)
	r.limits(raw.Limits)
	r.autoExports(raw.Auto)
	r.admin(raw.Admin)
	if len(raw.Portals) == 0 {
		r.errorf(r.body.MissingItemRange(), "Missing portal block",
			`The configuration has no portal, so nothing would listen. Add one, for example: portal "lo" { listen = "127.0.0.1:3260" }`)
	}
	if len(raw.Targets) == 0 && len(raw.Auto) == 0 {
		r.warnf(r.body.MissingItemRange(), "No targets",
			`The configuration exports no target; initiators will find nothing. Add a target block with at least one lun.`)
	}
	r.warnings()
	r.maskingWarnings()
	return &r.cfg
}

// logLevel resolves log_level.
func (r *resolver) logLevel(expr hcl.Expression) {
	r.cfg.LogLevel = zerolog.InfoLevel
	s, st := r.str(expr, "log_level")
	if st != attrOK {
		return
	}
	switch strings.ToLower(s) {
	case "trace":
		r.cfg.LogLevel = zerolog.TraceLevel
	case "debug":
		r.cfg.LogLevel = zerolog.DebugLevel
	case "info":
		r.cfg.LogLevel = zerolog.InfoLevel
	case "warn":
		r.cfg.LogLevel = zerolog.WarnLevel
	case "error":
		r.cfg.LogLevel = zerolog.ErrorLevel
	default:
		r.errorf(expr.Range(), "Unknown log level",
			`log_level must be one of "trace", "debug", "info", "warn" or "error"; it is %q.`, s)
	}
}

// portals resolves the portal blocks.
func (r *resolver) portals(raws []*rawPortal) {
	byName := map[string]hcl.Range{}
	for _, rp := range raws {
		if rp == nil {
			continue
		}
		p := Portal{Name: rp.Name, DeclRange: rp.DefRange, Group: DefaultGroup}
		r.declName(byName, "portal", "targets refer to them in portals = [...]", rp.Name, rp.NameRange, rp.DefRange)

		listen, st := r.str(rp.Listen, "listen")
		var ap netip.AddrPort
		listenOK := false
		switch st {
		case attrAbsent:
			r.errorf(rp.DefRange, "Missing listen address",
				`Add listen = "IP:port" to the portal, for example listen = "127.0.0.1:3260", "0.0.0.0:3260" or "[::]:3260".`)
		case attrOK:
			p.ListenRange = rp.Listen.Range()
			var err error
			ap, err = netip.ParseAddrPort(listen)
			if err != nil {
				r.errorf(rp.Listen.Range(), "Invalid listen address",
					`listen must be an IP address and a port, such as "127.0.0.1:3260", "0.0.0.0:3260" or "[::]:3260" (IPv6 in brackets; host names are not resolved): %v.`, err)
			} else {
				listenOK = true
				p.Listen = ap.String()
			}
		}

		adv, st := r.str(rp.Advertise, "advertise")
		switch st {
		case attrOK:
			if msg := checkAdvertise(adv); msg != "" {
				r.errorf(rp.Advertise.Range(), "Invalid advertise address", "%s", msg)
			} else {
				p.Advertise = adv
			}
		case attrAbsent:
			if listenOK && !ap.Addr().IsUnspecified() && ap.Port() != 0 {
				p.Advertise = p.Listen
			}
		}

		if g, st := r.integer(rp.Group, "group", 1, 65535); st == attrOK {
			p.Group = uint16(g)
		}

		idx := len(r.cfg.Portals)
		if listenOK {
			r.checkListenConflict(idx, ap, rp.Listen.Range())
			r.listen[idx] = ap
		}
		r.cfg.Portals = append(r.cfg.Portals, p)
	}
}

// checkListenConflict reports a portal whose listen address equals or
// overlaps an earlier portal's: the second bind would fail.
func (r *resolver) checkListenConflict(idx int, ap netip.AddrPort, rng hcl.Range) {
	if ap.Port() == 0 {
		return
	}
	for j := 0; j < idx; j++ {
		prev, ok := r.listen[j]
		if !ok || prev.Port() != ap.Port() {
			continue
		}
		pp := &r.cfg.Portals[j]
		if prev == ap {
			r.errorf(rng, "Duplicate listen address",
				"Portal %q already listens on %s (%s). Two sockets cannot bind the same address; remove one portal or change its port.", pp.Name, prev, pp.ListenRange)
			return
		}
		if listenOverlaps(prev.Addr(), ap.Addr()) {
			r.errorf(rng, "Overlapping listen address",
				"Portal %q listens on %s (%s), which already covers %s on port %d, so this bind would fail. Use a different port, or listen on specific addresses only.", pp.Name, prev, pp.ListenRange, ap.Addr(), ap.Port())
			return
		}
	}
}

// listenOverlaps reports whether two different addresses on the same port
// conflict: 0.0.0.0 covers every IPv4 address, and [::] (dual-stack, as Go
// listens on it) covers every address.
func listenOverlaps(a, b netip.Addr) bool {
	covers := func(wild, other netip.Addr) bool {
		if !wild.IsUnspecified() {
			return false
		}
		if wild.Is6() {
			return true
		}
		return other.Is4() || other.Is4In6()
	}
	return covers(a, b) || covers(b, a)
}

// checkAdvertise validates an advertise value and returns what is wrong,
// or "".
func checkAdvertise(s string) string {
	const how = `advertise is the host:port initiators should connect to, such as "192.0.2.10:3260", "[2001:db8::10]:3260" or "san.example.com:3260"`
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%s: %v.", how, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Sprintf("%s; the port %q is not a number from 1 to 65535.", how, port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return fmt.Sprintf("%s; %s is not an address anyone can connect to. Remove advertise to advertise the address each connection arrived on.", how, host)
		}
		return ""
	}
	if !isDNSName(host) {
		return fmt.Sprintf("%s; %q is neither an IP address nor a DNS name.", how, host)
	}
	return ""
}

// isDNSName reports whether s is a syntactically valid DNS host name.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// declName checks the label of a named block (a portal, initiator group
// or backend): an identifier (use says where it is referred to), unique
// among the blocks of its kind (seen). It reports whether the name is
// valid and new.
func (r *resolver) declName(seen map[string]hcl.Range, kind, use, name string, nameRng, def hcl.Range) bool {
	if !isIdent(name) {
		r.errorf(nameRng, "Invalid "+kind+" name",
			"%s names are made of letters, digits, '_' and '-' and start with a letter (it is %q); %s.", strings.ToUpper(kind[:1])+kind[1:], name, use)
		return false
	}
	if prev, dup := seen[name]; dup {
		r.errorf(nameRng, "Duplicate "+kind,
			"A %s named %q is already defined at %s. Give each %s its own name.", kind, name, prev, kind)
		return false
	}
	seen[name] = def
	return true
}

// isIdent reports whether s is a portal name: a letter, then letters,
// digits, '_' and '-'.
func isIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return false
		}
		if !letter && !(c >= '0' && c <= '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// chap resolves a chap block; nil when it is unusable.
func (r *resolver) chap(rc *rawCHAP) *CHAP {
	c := &CHAP{DeclRange: rc.DefRange}
	if !present(rc.Username) && !present(rc.Secret) && (present(rc.MutualUsername) || present(rc.MutualSecret)) {
		r.errorf(rc.DefRange, "Mutual CHAP without one-way CHAP",
			"Mutual CHAP authenticates the target after the initiator has authenticated; set username and secret (the initiator's credentials) as well as mutual_username and mutual_secret.")
		return nil
	}
	ok := true
	c.Username, ok = r.chapName(rc.Username, "username", rc.DefRange, ok)
	c.Secret, ok = r.chapSecret(rc.Secret, "secret", rc.DefRange, ok)
	mu, ms := present(rc.MutualUsername), present(rc.MutualSecret)
	switch {
	case mu && !ms:
		r.errorf(rc.DefRange, "Incomplete mutual CHAP", "mutual_username is set but mutual_secret is not; set both for mutual CHAP, or neither.")
		ok = false
	case ms && !mu:
		r.errorf(rc.DefRange, "Incomplete mutual CHAP", "mutual_secret is set but mutual_username is not; set both for mutual CHAP, or neither.")
		ok = false
	case mu && ms:
		c.MutualUsername, ok = r.chapName(rc.MutualUsername, "mutual_username", rc.DefRange, ok)
		c.MutualSecret, ok = r.chapSecret(rc.MutualSecret, "mutual_secret", rc.DefRange, ok)
	}
	if c.Secret != "" {
		r.secrets = append(r.secrets, chapSecret{value: c.Secret, rng: rc.Secret.Range(), block: rc.DefRange})
	}
	if c.MutualSecret != "" {
		r.secrets = append(r.secrets, chapSecret{value: c.MutualSecret, mutual: true, rng: rc.MutualSecret.Range(), block: rc.DefRange})
		if c.MutualSecret == c.Secret {
			r.errorf(rc.MutualSecret.Range(), "Mutual CHAP secret equals secret",
				"RFC 7143 12.1.3 forbids using the same CHAP secret to authenticate both the initiator and the target; choose a different mutual_secret.")
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return c
}

// chapName resolves a CHAP user name (CHAP_N, RFC 7143 12.1.3).
func (r *resolver) chapName(expr hcl.Expression, name string, block hcl.Range, ok bool) (string, bool) {
	s, st := r.str(expr, name)
	switch st {
	case attrAbsent:
		r.errorf(block, "Missing CHAP "+name, "Add %s = \"...\" to the chap block: the name sent as CHAP_N.", name)
		return "", false
	case attrBad:
		return "", false
	}
	if msg := checkText(s, 1, MaxTextValue); msg != "" {
		r.errorf(expr.Range(), "Invalid CHAP "+name, "%s %s.", name, msg)
		return "", false
	}
	return s, ok
}

// chapSecret resolves a CHAP secret. The messages never quote the secret.
func (r *resolver) chapSecret(expr hcl.Expression, name string, block hcl.Range, ok bool) (string, bool) {
	s, st := r.str(expr, name)
	switch st {
	case attrAbsent:
		r.errorf(block, "Missing CHAP "+name, "Add %s = \"...\" to the chap block: a random string of %d to %d bytes.", name, MinCHAPSecret, 16)
		return "", false
	case attrBad:
		return "", false
	}
	switch {
	case len(s) < MinCHAPSecret:
		r.errorf(expr.Range(), "CHAP secret too short",
			"This %s is %d bytes; secrets shorter than %d bytes (96 bits, RFC 7143 12.1.3) are refused at config time. Use a random secret of %d to 16 characters (some initiators accept no more than 16).", name, len(s), MinCHAPSecret, MinCHAPSecret)
		return "", false
	case len(s) > MaxCHAPSecret:
		r.errorf(expr.Range(), "CHAP secret too long",
			"This %s is %d bytes; secrets longer than %d bytes are refused at config time. Use a random secret of %d to 16 characters.", name, len(s), MaxCHAPSecret, MinCHAPSecret)
		return "", false
	}
	if msg := checkText(s, 0, MaxCHAPSecret); msg != "" {
		r.errorf(expr.Range(), "Invalid CHAP "+name, "This %s contains a control character; use printable characters only.", name)
		return "", false
	}
	return s, ok
}

// crossCheckSecrets enforces RFC 7143 12.1.3 across blocks: a secret that
// authenticates initiators must not authenticate the target anywhere.
func (r *resolver) crossCheckSecrets() {
	for _, m := range r.secrets {
		if !m.mutual {
			continue
		}
		for _, o := range r.secrets {
			if o.mutual || o.value != m.value || o.block == m.block {
				continue
			}
			r.errorf(m.rng, "CHAP secret used in both directions",
				"This mutual_secret equals the secret at %s, which authenticates an initiator. RFC 7143 12.1.3 forbids configuring a secret for both initiator and target authentication; choose a different mutual_secret.", o.rng)
			break
		}
	}
}

// checkText validates free text (aliases, CHAP names): valid UTF-8,
// no control characters, length in bytes within [lo, hi]. It returns what
// is wrong, or "".
func checkText(s string, lo, hi int) string {
	switch {
	case len(s) < lo:
		return "must not be empty"
	case len(s) > hi:
		return fmt.Sprintf("is %d bytes; at most %d are allowed", len(s), hi)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Sprintf("contains the control character %q", c)
		}
	}
	return ""
}

// target resolves one target block.
func (r *resolver) target(rt *rawTarget) Target {
	t := Target{DeclRange: rt.DefRange}
	if norm, err := iscsi.NormalizeName(rt.Name); err != nil {
		r.errorf(rt.NameRange, "Invalid target name",
			"%v. Target names look like iqn.2026-11.com.example:disk1: \"iqn.\", the year and month your organization owned the domain, the domain reversed, and optionally ':' and any suffix.", err)
	} else {
		t.Name = norm
	}
	if alias, st := r.str(rt.Alias, "alias"); st == attrOK {
		if msg := checkText(alias, 0, MaxTextValue); msg != "" {
			r.errorf(rt.Alias.Range(), "Invalid alias", "The alias (TargetAlias) %s.", msg)
		} else {
			t.Alias = alias
		}
	}
	t.Portals = r.targetPortals(rt)
	if rt.CHAP != nil {
		t.CHAP = r.chap(rt.CHAP)
	}

	inits := map[string]hcl.Range{}
	for _, ri := range rt.Initiators {
		if ri == nil {
			continue
		}
		in := Initiator{DeclRange: ri.DefRange}
		if norm, err := iscsi.NormalizeName(ri.Name); err != nil {
			r.errorf(ri.NameRange, "Invalid initiator name",
				"%v. Use the initiator's name exactly as it reports it (on Linux: /etc/iscsi/initiatorname.iscsi).", err)
		} else if prev, dup := inits[norm]; dup {
			r.errorf(ri.NameRange, "Duplicate initiator",
				"Initiator %q is already listed at %s. Names are compared in lower case; remove one of the blocks.", norm, prev)
		} else {
			inits[norm] = ri.DefRange
			in.Name = norm
		}
		if ri.CHAP != nil {
			in.CHAP = r.chap(ri.CHAP)
		}
		t.Initiators = append(t.Initiators, in)
	}

	t.LUNs = r.lunMap(rt.LUNs, t.Name+"/", "in this target's default map")
	r.views(&t, rt.Views)
	return t
}

// targetPortals resolves a target's portals list (default: every portal)
// and checks that it names whole portal groups.
func (r *resolver) targetPortals(rt *rawTarget) []string {
	all := make([]string, 0, len(r.cfg.Portals))
	for _, p := range r.cfg.Portals {
		all = append(all, p.Name)
	}
	elems, st := r.stringList(rt.Portals, "portals", "a list of portal names")
	if st == attrAbsent {
		return all
	}
	if st == attrBad {
		return nil
	}
	rng := rt.Portals.Range()
	if len(elems) == 0 {
		r.errorf(rng, "Empty portals list", "A target with no portal is unreachable. Remove portals to use every portal, or name at least one.")
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range elems {
		erng := e.rng
		if e.null {
			r.errorf(erng, "Unknown portal", "portals must list portal names; null is not one.")
			continue
		}
		name := e.value
		switch {
		case seen[name]:
			r.errorf(erng, "Duplicate portal in list", "Portal %q is listed twice; remove one.", name)
			continue
		case r.cfg.Portal(name) == nil:
			r.errorf(erng, "Unknown portal", "No portal named %q is defined; defined portals: %s.", name, quoteList(all))
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	// A target is reachable through whole portal groups (RFC 7143 4.4.1),
	// so its list must contain every portal of each group it touches.
	for _, name := range out {
		g := r.cfg.Portal(name).Group
		for _, p := range r.cfg.Portals {
			if p.Group == g && !seen[p.Name] && isIdent(p.Name) {
				r.errorf(rng, "Incomplete portal group",
					"Portal %q is in portal group %d, and so is portal %q (%s); a target is reachable through whole portal groups. Add %q to portals, or give the portals different groups.", name, g, p.Name, p.DeclRange, p.Name)
				seen[p.Name] = true // report each missing portal once
			}
		}
	}
	return out
}

// quoteList renders names as "a", "b"; or "none".
func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// lun resolves one lun block. An invalid id is reported and returned as
// MaxLUN+1 so that it takes part in no duplicate check. An inline backend
// is added to the Config's backends under prefix + "lun/<id>".
func (r *resolver) lun(rl *rawLUN, prefix string) LUN {
	l := LUN{DeclRange: rl.DefRange, ID: MaxLUN + 1}
	id, err := strconv.ParseUint(rl.ID, 10, 64)
	switch {
	case err != nil && isDigits(rl.ID):
		r.errorf(rl.IDRange, "LUN id out of range", "LUN ids go from 0 to %d (single-level flat space addressing, SAM-5 4.7.7).", MaxLUN)
	case err != nil:
		r.errorf(rl.IDRange, "Invalid LUN id", `LUN ids are decimal numbers from 0 to %d written as a quoted label, for example lun "0" { ... }; it is %q.`, MaxLUN, rl.ID)
	case id > MaxLUN:
		r.errorf(rl.IDRange, "LUN id out of range", "LUN %d is above %d, the largest LUN sanbridge can address (single-level flat space addressing, SAM-5 4.7.7).", id, MaxLUN)
	default:
		l.ID = id
	}

	// The backend: a reference or one inline block; every kind counts
	// towards "exactly one", the first in the file is resolved and the
	// others are reported.
	inline := Backend{Name: prefix + "lun/" + strconv.FormatUint(l.ID, 10), Inline: true}
	if l.ID > MaxLUN {
		inline.Name = prefix + "lun/" + rl.ID
	}
	defs := r.blockDefinitions(rl.Emulated, rl.Device, &inline.Emulated, &inline.Device)
	for i := range defs {
		resolve, rng := defs[i].resolve, defs[i].rng
		defs[i].resolve = func() {
			resolve()
			inline.DeclRange = rng
			r.cfg.Backends = append(r.cfg.Backends, inline)
			l.Backend, l.Emulated, l.Device = inline.Name, inline.Emulated, inline.Device
		}
	}
	if present(rl.Backend) {
		defs = append(defs, definition{rl.Backend.Range(), func() { r.backendRef(&l, rl.Backend) }})
	}
	if len(defs) == 0 {
		r.errorf(rl.DefRange, "Missing LUN backend",
			`A lun needs exactly one backend: an emulated or device block, for example emulated { size = "64MiB" }, or backend = "name" naming a backend block.`)
	}
	r.firstDefinition(defs, "Multiple LUN backends",
		`This lun already has a backend at %s (an emulated or device block, or backend = "name"); a lun has exactly one. Remove one of them.`)

	if ro, st := r.boolean(rl.ReadOnly, "read_only"); st == attrOK {
		l.ReadOnly = ro
	}
	if b := r.cfg.Backend(l.Backend); b != nil && b.ReadOnly() {
		l.ReadOnly = true
	}
	return l
}

// backendRef resolves a lun's backend = "name" into l.
func (r *resolver) backendRef(l *LUN, expr hcl.Expression) {
	name, st := r.str(expr, "backend")
	if st != attrOK {
		return
	}
	b := r.cfg.Backend(name)
	if b == nil || b.Inline {
		var names []string
		for _, b := range r.cfg.Backends {
			if !b.Inline {
				names = append(names, b.Name)
			}
		}
		r.errorf(expr.Range(), "Unknown backend",
			`No backend block named %q is defined; defined backends: %s. Define it at the top level, for example backend %q { device { wwn = "naa.5000c50015ea71a0" } }.`, name, quoteList(names), name)
		return
	}
	r.backendUses[name]++
	l.Backend, l.Emulated, l.Device = b.Name, b.Emulated, b.Device
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// device resolves a device backend block.
func (r *resolver) device(rd *rawDevice) *Device {
	d := &Device{DeclRange: rd.DefRange}
	if w, st := r.str(rd.WWN, "wwn"); st == attrOK {
		w = strings.ToLower(strings.TrimSpace(w))
		if w == "" || strings.IndexByte(w, 0) >= 0 {
			r.errorf(rd.WWN.Range(), "Invalid wwn", `wwn is the designator sanbridge scan shows, for example "naa.5000c50015ea71a0"; it is %q.`, w)
		} else {
			d.WWN = w
		}
	}
	if s, st := r.str(rd.Serial, "serial"); st == attrOK {
		if strings.TrimSpace(s) == "" {
			r.errorf(rd.Serial.Range(), "Invalid serial", "serial is empty; give the unit serial number sanbridge scan shows.")
		} else {
			d.Serial = strings.TrimSpace(s)
		}
	}
	if p, st := r.str(rd.Path, "path"); st == attrOK {
		switch {
		case !filepath.IsAbs(p) || strings.IndexByte(p, 0) >= 0:
			r.errorf(rd.Path.Range(), "Invalid path", `path is an absolute device node or udev link such as "/dev/disk/by-path/pci-0000:00:04.0-scsi-0:2:0:0"; it is %q.`, p)
		default:
			d.Path = filepath.Clean(p)
			if strings.HasPrefix(d.Path, "/dev/sg") {
				r.warnf(rd.Path.Range(), "Unstable device path", "/dev/sgN numbers change when devices come and go; prefer wwn, serial or a /dev/disk/by-path link.")
			}
		}
	}
	if b, st := r.boolean(rd.AllowInUse, "allow_in_use"); st == attrOK {
		d.AllowInUse = b
	}
	if b, st := r.boolean(rd.ReadOnly, "read_only"); st == attrOK {
		d.ReadOnly = b
	}
	r.devicePolicy(d, rd)
	for _, id := range []struct{ kind, value string }{{"wwn", d.WWN}, {"serial", d.Serial}, {"path", d.Path}} {
		if id.value != "" {
			r.useIdentity(id.kind, id.value, rd.DefRange)
		}
	}
	scsi := present(rd.WWN) || present(rd.Serial) || present(rd.Path)
	for i, ru := range rd.USB {
		switch {
		case i > 0:
			r.errorf(ru.DefRange, "Duplicate usb block", "A device block holds one usb block; the first is at %s.", rd.USB[0].DefRange)
		case scsi:
			r.errorf(ru.DefRange, "Mixed device selectors", `A device block selects a SCSI device (wwn, serial, path) or a USB mass-storage device (usb { ... }), not both.`)
		default:
			d.USB = r.usb(ru)
		}
	}
	if !scsi && len(rd.USB) == 0 {
		r.errorf(rd.DefRange, "Missing device selector", `A device block selects the device with wwn, serial or path (as sanbridge scan shows them), for example device { wwn = "naa.5000c50015ea71a0" }, or a USB mass-storage device with usb { vid, pid, serial, path } (as sanbridge scan --usb shows them).`)
	}
	return d
}

var (
	reUSBID   = regexp.MustCompile(`^(0x)?[0-9a-fA-F]{1,4}$`)
	reUSBPath = regexp.MustCompile(`^[1-9][0-9]{0,2}-[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,6}(:[1-9][0-9]{0,2}\.[0-9]{1,3})?$`)
)

// usb resolves the usb block of a device block.
func (r *resolver) usb(ru *rawUSB) *USB {
	u := &USB{DeclRange: ru.DefRange}
	bad := false
	for _, id := range []struct {
		expr hcl.Expression
		name string
		dst  *string
	}{{ru.VID, "vid", &u.VendorID}, {ru.PID, "pid", &u.ProductID}} {
		v, st := r.str(id.expr, id.name)
		bad = bad || st == attrBad
		if st != attrOK {
			continue
		}
		if !reUSBID.MatchString(v) {
			bad = true
			r.errorf(id.expr.Range(), "Invalid "+id.name, `%s is the 16-bit USB ID in hex as sanbridge scan --usb shows it, for example "46f4"; it is %q.`, id.name, v)
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 16)
		*id.dst = fmt.Sprintf("%04x", n)
	}
	if s, st := r.str(ru.Serial, "serial"); st != attrAbsent {
		if strings.TrimSpace(s) == "" {
			bad = true
			if st == attrOK {
				r.errorf(ru.Serial.Range(), "Invalid serial", "serial is empty; give the USB serial number sanbridge scan --usb shows, or leave it out.")
			}
		} else {
			u.Serial = strings.TrimSpace(s)
		}
	}
	if p, st := r.str(ru.Path, "path"); st != attrAbsent {
		if !reUSBPath.MatchString(p) {
			bad = true
			if st == attrOK {
				r.errorf(ru.Path.Range(), "Invalid path", `path is a USB bus path as sanbridge scan --usb shows it: the interface ("2-1:1.0") or the device ("2-1", "1-1.4"); it is %q.`, p)
			}
		} else {
			u.Path = p
		}
	}
	if n, st := r.integer(ru.LUN, "lun", 0, 15); st == attrOK {
		u.LUN = int(n)
	} else {
		bad = bad || st == attrBad
	}
	if !present(ru.VID) && !present(ru.PID) && !present(ru.Serial) && !present(ru.Path) {
		r.errorf(ru.DefRange, "Missing usb selector", `A usb block selects the device with vid, pid, serial or path (as sanbridge scan --usb shows them), for example usb { vid = "0781" pid = "5567" serial = "4C530001230913117134" }.`)
		return u
	}
	if !bad {
		r.useIdentity("usb", u.Identity(), ru.DefRange)
	}
	return u
}

// emulated resolves an emulated backend block.
func (r *resolver) emulated(re *rawEmulated) *Emulated {
	e := &Emulated{DeclRange: re.DefRange, BlockSize: DefaultBlockSize}
	if bs, st := r.integer(re.BlockSize, "block_size", 0, 1<<20); st == attrOK {
		if bs != 512 && bs != 4096 {
			r.errorf(re.BlockSize.Range(), "Invalid block_size", "block_size must be 512 or 4096; it is %d.", bs)
		} else {
			e.BlockSize = int(bs)
		}
	}

	v, st := r.value(re.Size, "size", cty.DynamicPseudoType, "a number or a string")
	switch st {
	case attrAbsent:
		r.errorf(re.DefRange, "Missing size", `Add the disk's capacity, for example size = "64MiB". `+sizeSyntax+".")
	case attrOK:
		n, err := sizeValue(v)
		switch {
		case err != nil:
			r.errorf(re.Size.Range(), "Invalid size", "%v. %s.", err, sizeSyntax)
		case n == 0:
			r.errorf(re.Size.Range(), "Zero size", "An emulated disk needs at least one block; set size to a positive multiple of block_size (%d).", e.BlockSize)
		case n%int64(e.BlockSize) != 0:
			down := n - n%int64(e.BlockSize)
			up := down + int64(e.BlockSize)
			hint := sizeHint(up)
			if down > 0 {
				hint = sizeHint(down) + " or " + hint
			}
			r.errorf(re.Size.Range(), "Size not a multiple of block size",
				"size is %d bytes, which is not a multiple of block_size %d; use %s.", n, e.BlockSize, hint)
		default:
			e.SizeBytes = n
		}
	}

	if f, st := r.str(re.File, "file"); st == attrOK {
		e.FileRange = re.File.Range()
		switch {
		case f == "":
			r.errorf(re.File.Range(), "Invalid file", "file is empty; remove it for a memory-backed disk, or give an absolute path.")
		case strings.IndexByte(f, 0) >= 0:
			r.errorf(re.File.Range(), "Invalid file", "file contains a NUL byte.")
		case !filepath.IsAbs(f):
			r.errorf(re.File.Range(), "Relative file path",
				"file must be an absolute path such as /var/lib/sanbridge/disk0.img, so that it does not depend on the directory sanbridge starts in; it is %q.", f)
		default:
			e.File = filepath.Clean(f)
			r.useIdentity("file", e.File, re.File.Range())
		}
	}
	if ro, st := r.boolean(re.ReadOnly, "read_only"); st == attrOK {
		e.ReadOnly = ro
	}
	e.Vendor = r.inquiryText(re.Vendor, "vendor", 8, "T10 VENDOR IDENTIFICATION (SPC-4 6.6.2)", true)
	e.Product = r.inquiryText(re.Product, "product", 16, "PRODUCT IDENTIFICATION (SPC-4 6.6.2)", true)
	e.Revision = r.inquiryText(re.Revision, "revision", 4, "PRODUCT REVISION LEVEL (SPC-4 6.6.2)", true)
	e.Serial = r.inquiryText(re.Serial, "serial", MaxSerial, "unit serial number (VPD page 80h, SPC-4 7.8.17)", false)
	if e.Serial != "" {
		if prev, dup := r.serials[e.Serial]; dup {
			r.errorf(re.Serial.Range(), "Duplicate serial",
				"Serial %q is already used at %s. Multipath software treats LUNs with the same serial as one device and would mix their data; give each LUN its own serial.", e.Serial, prev)
		} else {
			r.serials[e.Serial] = re.Serial.Range()
		}
	}
	return e
}

// inquiryText resolves an INQUIRY identification string: printable ASCII
// of at most max bytes; spaces only where spaces is set.
func (r *resolver) inquiryText(expr hcl.Expression, name string, max int, field string, spaces bool) string {
	s, st := r.str(expr, name)
	if st != attrOK {
		return ""
	}
	lo := byte(0x20)
	allowed := "printable ASCII (letters, digits, punctuation, spaces)"
	if !spaces {
		lo = 0x21
		allowed = "printable ASCII without spaces"
	}
	switch {
	case s == "":
		r.errorf(expr.Range(), "Invalid "+name, "%s is empty; remove it to use the default.", name)
		return ""
	case len(s) > max:
		r.errorf(expr.Range(), "Invalid "+name, "%s is %d bytes; the %s holds at most %d.", name, len(s), field, max)
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < lo || s[i] > 0x7e {
			r.errorf(expr.Range(), "Invalid "+name, "%s must be %s; byte %d is 0x%02x.", name, allowed, i, s[i])
			return ""
		}
	}
	return s
}

// warnings adds the warnings that need the whole resolved configuration.
func (r *resolver) warnings() {
	for i := range r.cfg.Targets {
		t := &r.cfg.Targets[i]
		empty := len(t.LUNs) == 0
		for _, v := range t.Views {
			empty = empty && len(v.LUNs) == 0
		}
		if empty {
			r.warnf(t.DeclRange, "Target has no LUNs", `Initiators that log in will find no disk. Add a lun block, for example lun "0" { emulated { size = "64MiB" } }.`)
		}
		if t.Open() {
			r.warnf(t.DeclRange, "Open target",
				"The target has no initiator blocks, so every initiator that reaches a portal may log in and see it in discovery. Add initiator blocks to allow only those initiators.")
		}
		unauth := t.CHAP == nil
		if unauth && !t.Open() {
			unauth = false
			for _, in := range t.Initiators {
				if in.CHAP == nil {
					unauth = true
				}
			}
		}
		if !unauth {
			continue
		}
		for _, name := range t.Portals {
			idx := -1
			for j := range r.cfg.Portals {
				if r.cfg.Portals[j].Name == name {
					idx = j
					break
				}
			}
			ap, ok := r.listen[idx]
			if !ok || ap.Addr().IsLoopback() {
				continue
			}
			r.warnf(t.DeclRange, "No CHAP on a non-loopback portal",
				"The target is reachable through portal %q on %s, and initiators may log in without authentication. Add a chap block to the target (or to each initiator).", name, ap)
			break
		}
	}
}
