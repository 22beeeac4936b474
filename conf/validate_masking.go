package conf

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/sanbridge/sanbridge/iscsi"
)

// member is one entry of an initiators list, kept for the checks across
// groups.
type member struct {
	group   string
	value   string // normalized name or lower-case pattern
	pattern bool
	rng     hcl.Range
}

// listElem is one element of a list of strings.
type listElem struct {
	value string
	null  bool
	rng   hcl.Range // the element's own range when the list is a literal
}

// stringList evaluates an attribute that is a list of strings. Each
// element carries its own range when the expression is a literal list,
// else the whole expression's.
func (r *resolver) stringList(expr hcl.Expression, name, what string) ([]listElem, attrState) {
	v, st := r.value(expr, name, cty.List(cty.String), what)
	if st != attrOK {
		return nil, st
	}
	var exprs []hcl.Expression
	if es, diags := hcl.ExprList(expr); !diags.HasErrors() && len(es) == v.LengthInt() {
		exprs = es
	}
	out := make([]listElem, 0, v.LengthInt())
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		e := listElem{null: ev.IsNull(), rng: expr.Range()}
		if exprs != nil {
			e.rng = exprs[i].Range()
		}
		if !e.null {
			e.value = ev.AsString()
		}
		out = append(out, e)
	}
	return out, attrOK
}

// initiatorGroups resolves the initiator_group blocks and checks that no
// initiator can belong to two groups.
func (r *resolver) initiatorGroups(raws []*rawGroup) {
	byName := map[string]hcl.Range{}
	var members []member
	for _, rg := range raws {
		if rg == nil {
			continue
		}
		g := InitiatorGroup{Name: rg.Name, DeclRange: rg.DefRange}
		r.declName(byName, "initiator group", "targets refer to them in view blocks", rg.Name, rg.NameRange, rg.DefRange)
		elems, st := r.stringList(rg.Initiators, "initiators", "a list of iSCSI names and name patterns")
		if st == attrBad {
			r.incomplete[rg.Name] = true
		}
		seen := map[string]hcl.Range{}
		for _, e := range elems {
			m, ok := r.groupMember(e)
			if !ok {
				r.incomplete[rg.Name] = true
				continue
			}
			if prev, dup := seen[m.value]; dup {
				r.errorf(e.rng, "Duplicate initiator",
					"%q is already listed at %s. Names are compared in lower case; remove one.", m.value, prev)
				continue
			}
			seen[m.value] = e.rng
			m.group = rg.Name
			if m.pattern {
				g.Patterns = append(g.Patterns, m.value)
			} else {
				g.Initiators = append(g.Initiators, m.value)
			}
			members = append(members, m)
		}
		r.cfg.InitiatorGroups = append(r.cfg.InitiatorGroups, g)
	}
	r.checkMembership(members)
}

// groupMember resolves one entry of an initiators list: an exact iSCSI
// name (normalized) or a pattern with '*' (lower-cased).
func (r *resolver) groupMember(e listElem) (member, bool) {
	if e.null {
		r.errorf(e.rng, "Invalid initiator name", "initiators lists iSCSI names and name patterns; null is not one.")
		return member{}, false
	}
	if !strings.Contains(e.value, "*") {
		norm, err := iscsi.NormalizeName(e.value)
		if err != nil {
			r.errorf(e.rng, "Invalid initiator name",
				"%v. Use the initiator's name exactly as it reports it (on Linux: /etc/iscsi/initiatorname.iscsi), or a pattern with '*' such as \"iqn.1998-01.com.vmware:*\".", err)
			return member{}, false
		}
		return member{value: norm, rng: e.rng}, true
	}
	p, msg := normalizePattern(e.value)
	if msg != "" {
		r.errorf(e.rng, "Invalid initiator pattern", "%s", msg)
		return member{}, false
	}
	return member{value: p, pattern: true, rng: e.rng}, true
}

// normalizePattern lower-cases an initiator name pattern and checks it;
// it returns what is wrong, or "".
func normalizePattern(s string) (string, string) {
	const how = `A pattern is an iSCSI name in which '*' stands for any run of characters, for example "iqn.1998-01.com.vmware:*"`
	if len(s) > MaxPattern {
		return "", fmt.Sprintf("%s; this one is %d bytes, and names are at most %d.", how, len(s), MaxPattern)
	}
	p := strings.ToLower(s)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '*') {
			return "", fmt.Sprintf("%s; %q at offset %d is not allowed: patterns contain only letters, digits, '-', '.', ':' and '*' (there is no '?' and no [...]).", how, rune(c), i)
		}
	}
	lit, _, _ := strings.Cut(p, "*")
	for _, kind := range []string{"iqn.", "eui.", "naa."} {
		if strings.HasPrefix(lit, kind) || strings.HasPrefix(kind, lit) {
			return p, ""
		}
	}
	return "", fmt.Sprintf("%s; %q matches no iSCSI name, since names start with \"iqn.\", \"eui.\" or \"naa.\". Write the initiator's name, not its host name.", how, s)
}

// checkMembership reports initiators that could belong to two groups: an
// exact name listed in two groups, or patterns of two groups that some
// name matches. An exact name in one group and a pattern in another that
// matches it are fine: the exact name wins.
func (r *resolver) checkMembership(members []member) {
	exact := map[string]member{}
	var patterns []member
	for _, m := range members {
		if !m.pattern {
			if o, dup := exact[m.value]; dup && o.group != m.group {
				r.errorf(m.rng, "Initiator in two groups",
					"%q is already in group %q (%s); an initiator belongs to at most one group. Remove it from one of them.", m.value, o.group, o.rng)
			} else if !dup {
				exact[m.value] = m
			}
			continue
		}
		for _, o := range patterns {
			if o.group == m.group {
				continue
			}
			if name, ok := patternsOverlap(o.value, m.value); ok {
				r.errorf(m.rng, "Overlapping initiator patterns",
					"Pattern %q and pattern %q of group %q (%s) both match %q, and an initiator belongs to at most one group. Make the patterns disjoint, or list the initiators that should be in this group by their exact names (an exact name beats any pattern).", m.value, o.value, o.group, o.rng, name)
			}
		}
		patterns = append(patterns, m)
	}
}

// namedBackends resolves the top-level backend blocks.
func (r *resolver) namedBackends(raws []*rawBackend) {
	byName := map[string]hcl.Range{}
	for _, rb := range raws {
		if rb == nil {
			continue
		}
		b := Backend{Name: rb.Name, DeclRange: rb.DefRange}
		if !r.declName(byName, "backend", `luns refer to them with backend = "name"`, rb.Name, rb.NameRange, rb.DefRange) && isIdent(rb.Name) {
			continue // a second definition of the name: only the first is resolved
		}
		defs := r.blockDefinitions(rb.Emulated, rb.Device, &b.Emulated, &b.Device)
		if len(defs) == 0 {
			r.errorf(rb.DefRange, "Missing backend definition",
				`A backend block holds exactly one emulated or device block, for example backend "shelf1" { device { wwn = "naa.5000c50015ea71a0" } }.`)
		}
		r.firstDefinition(defs, "Multiple backend definitions",
			"This backend already has a definition at %s; a backend is exactly one emulated or device block. Remove one of them, or define a second backend.")
		r.cfg.Backends = append(r.cfg.Backends, b)
	}
}

// definition is one block or attribute that defines a backend.
type definition struct {
	rng     hcl.Range
	resolve func()
}

// blockDefinitions returns the emulated and device blocks as definitions
// that resolve into *emu or *dev.
func (r *resolver) blockDefinitions(emus []*rawEmulated, devs []*rawDevice, emu **Emulated, dev **Device) []definition {
	var defs []definition
	for _, re := range emus {
		if re != nil {
			defs = append(defs, definition{re.DefRange, func() { *emu = r.emulated(re) }})
		}
	}
	for _, rd := range devs {
		if rd != nil {
			defs = append(defs, definition{rd.DefRange, func() { *dev = r.device(rd) }})
		}
	}
	return defs
}

// firstDefinition resolves the first of defs in file order and reports
// each other one with summary and detail (whose one %s is the first
// definition's range): a lun or backend block has exactly one.
func (r *resolver) firstDefinition(defs []definition, summary, detail string) {
	if len(defs) == 0 {
		return
	}
	first := 0
	for i, d := range defs {
		if d.rng.Start.Byte < defs[first].rng.Start.Byte {
			first = i
		}
	}
	defs[first].resolve()
	for i, d := range defs {
		if i != first {
			r.errorf(d.rng, summary, detail, defs[first].rng)
		}
	}
}

// useIdentity records that a backend selects a device or file by key
// ("wwn", "serial", "path", "file") and reports a second backend with the
// same identity: each device or backing file is one logical unit, defined
// once.
func (r *resolver) useIdentity(kind, value string, rng hcl.Range) {
	k := kind + "\x00" + value
	prev, dup := r.identities[k]
	if !dup {
		r.identities[k] = rng
		return
	}
	if kind == "file" {
		r.errorf(rng, "Backing file used twice",
			"File %q already backs the emulated disk at %s; two disks over one file would overwrite each other's data. To show one disk through several LUNs, define it once in a backend block (backend \"name\" { emulated { ... } }) and write backend = \"name\" in every lun that maps it.", value, prev)
		return
	}
	r.errorf(rng, "Device used twice",
		"The device block at %s already selects %s %q; a device is one logical unit however many LUNs map it. Define it once in a backend block (backend \"name\" { device { ... } }) and write backend = \"name\" in every lun that maps it.", prev, kind, value)
}

// lunMap resolves the lun blocks of a target's default map or of a view.
// prefix starts the keys of inline backends ("<target>/" or
// "<target>/view/<group>/"); where names the map in messages.
func (r *resolver) lunMap(raws []*rawLUN, prefix, where string) []LUN {
	var out []LUN
	ids := map[uint64]hcl.Range{}
	backends := map[string]hcl.Range{}
	for _, rl := range raws {
		if rl == nil {
			continue
		}
		l := r.lun(rl, prefix)
		if l.ID <= MaxLUN {
			if prev, dup := ids[l.ID]; dup {
				r.errorf(rl.IDRange, "Duplicate LUN",
					"LUN %d is already defined at %s. Each LUN id may appear once %s.", l.ID, prev, where)
			} else {
				ids[l.ID] = rl.DefRange
			}
		}
		if present(rl.Backend) && l.Backend != "" {
			if prev, dup := backends[l.Backend]; dup {
				r.warnf(rl.Backend.Range(), "Backend mapped twice",
					"Backend %q is already mapped at %s %s, so the same initiators see one logical unit at two LUN numbers, which multipath software may take for two paths or two disks. Map it once %s.", l.Backend, prev, where, where)
			} else {
				backends[l.Backend] = rl.DefRange
			}
		}
		out = append(out, l)
	}
	return out
}

// views resolves a target's view blocks.
func (r *resolver) views(t *Target, raws []*rawView) {
	seen := map[string]hcl.Range{}
	for _, rv := range raws {
		if rv == nil {
			continue
		}
		v := View{Group: rv.Group, DeclRange: rv.DefRange}
		if r.cfg.InitiatorGroup(rv.Group) == nil {
			var names []string
			for _, g := range r.cfg.InitiatorGroups {
				names = append(names, g.Name)
			}
			r.errorf(rv.GroupRange, "Unknown initiator group",
				"No initiator_group named %q is defined; defined groups: %s. A view's label is the group that sees it.", rv.Group, quoteList(names))
		} else if prev, dup := seen[rv.Group]; dup {
			r.errorf(rv.GroupRange, "Duplicate view",
				"Group %q already has a view in this target at %s; a group sees one map per target. Merge the two views.", rv.Group, prev)
		} else {
			seen[rv.Group] = rv.DefRange
			r.groupViews[rv.Group]++
		}
		v.LUNs = r.lunMap(rv.LUNs, t.Name+"/view/"+rv.Group+"/", "in this view")
		t.Views = append(t.Views, v)
	}
}

// maskingWarnings reports groups and backends that do nothing, and views
// that no initiator allowed into their target can see.
func (r *resolver) maskingWarnings() {
	for _, g := range r.cfg.InitiatorGroups {
		if !isIdent(g.Name) || r.incomplete[g.Name] {
			continue
		}
		if len(g.Initiators) == 0 && len(g.Patterns) == 0 {
			r.warnf(g.DeclRange, "Empty initiator group",
				`The group lists no initiator, so its views apply to nobody. Add initiators = ["iqn...", "iqn.1998-01.com.vmware:*"], or remove the group.`)
		}
		if r.groupViews[g.Name] == 0 {
			r.warnf(g.DeclRange, "Unused initiator group",
				"No target has a view for group %q, so its members see every target's default map, like initiators in no group. Add view %q { ... } to a target, or remove the group.", g.Name, g.Name)
		}
	}
	for _, b := range r.cfg.Backends {
		if !b.Inline && r.backendUses[b.Name] == 0 && isIdent(b.Name) {
			r.warnf(b.DeclRange, "Unused backend",
				"No lun maps backend %q, so it is not exported. Map it with backend = %q in a lun block, or remove it.", b.Name, b.Name)
		}
	}
	for i := range r.cfg.Targets {
		t := &r.cfg.Targets[i]
		if t.Open() {
			continue
		}
		for _, v := range t.Views {
			reachable := false
			for _, in := range t.Initiators {
				if g, ok := r.cfg.GroupOf(in.Name); ok && g == v.Group {
					reachable = true
					break
				}
			}
			if !reachable && r.cfg.InitiatorGroup(v.Group) != nil && !r.incomplete[v.Group] {
				r.warnf(v.DeclRange, "View unreachable",
					"Only the initiators in this target's initiator blocks may log in, and none of them is in group %q, so nobody sees this view. Add an initiator block for a member of the group, or remove the view.", v.Group)
			}
		}
	}
}
