package conf

import (
	"slices"
	"strings"

	"github.com/sanbridge/sanbridge/iscsi"
)

// LUN masking: which LUNs an initiator sees in a target.
//
//	initiator ──GroupOf──▶ group ("" for none) ──Target.ViewFor──▶ []LUN
//
// An initiator belongs to at most one group: a group that lists its exact
// name wins; otherwise the group with a pattern that matches it (validation
// rejects patterns of two groups that could match the same name, and an
// exact name in two groups). In a target, a group with a view sees exactly
// that view; an initiator in no group, or in a group without a view there,
// sees the target's default map (Target.LUNs). The resolution is a pure
// function of the Config: call it at every login and again after a reload.

// GroupOf returns the initiator group the iSCSI name belongs to (compared
// after normalization), and false when it is in none or the name is not a
// valid iSCSI name. An exact name in a group's initiators beats a pattern;
// among patterns the first matching group in file order wins (validation
// leaves at most one).
func (c *Config) GroupOf(initiator string) (string, bool) {
	norm, err := iscsi.NormalizeName(initiator)
	if err != nil {
		return "", false
	}
	for i := range c.InitiatorGroups {
		if slices.Contains(c.InitiatorGroups[i].Initiators, norm) {
			return c.InitiatorGroups[i].Name, true
		}
	}
	for i := range c.InitiatorGroups {
		for _, p := range c.InitiatorGroups[i].Patterns {
			if matchPattern(p, norm) {
				return c.InitiatorGroups[i].Name, true
			}
		}
	}
	return "", false
}

// InitiatorGroup returns the group with the given name, or nil.
func (c *Config) InitiatorGroup(name string) *InitiatorGroup {
	for i := range c.InitiatorGroups {
		if c.InitiatorGroups[i].Name == name {
			return &c.InitiatorGroups[i]
		}
	}
	return nil
}

// Backend returns the backend with the given [Backend.Name], or nil.
func (c *Config) Backend(name string) *Backend {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i]
		}
	}
	return nil
}

// LUNsFor returns the LUN map the named initiator sees in t: the view of
// its group when t has one, else t's default map. The slice belongs to the
// Config; do not modify it.
func (c *Config) LUNsFor(t *Target, initiator string) []LUN {
	g, _ := c.GroupOf(initiator)
	return t.ViewFor(g)
}

// View returns the target's view for the named group, or nil.
func (t *Target) View(group string) *View {
	for i := range t.Views {
		if t.Views[i].Group == group {
			return &t.Views[i]
		}
	}
	return nil
}

// ViewFor returns the LUN map the members of group see in t: the group's
// view when t has one, else the default map (t.LUNs), which is also what
// group "" (no group) sees. A view with no LUNs yields an empty map, not
// the default one. The slice belongs to the Config; do not modify it.
func (t *Target) ViewFor(group string) []LUN {
	if group != "" {
		if v := t.View(group); v != nil {
			return v.LUNs
		}
	}
	return t.LUNs
}

// Backends returns the distinct [Backend.Name]s that t maps in its default
// map and its views, in order of first use (default map first, then the
// views in file order).
func (t *Target) Backends() []string {
	var out []string
	add := func(luns []LUN) {
		for _, l := range luns {
			if !slices.Contains(out, l.Backend) {
				out = append(out, l.Backend)
			}
		}
	}
	add(t.LUNs)
	for _, v := range t.Views {
		add(v.LUNs)
	}
	return out
}

// matchPattern reports whether name matches pattern, in which '*' matches
// any run of characters (also none) and every other byte matches itself.
// Both are expected in lower case. The match backtracks only to the last
// star, so it takes O(len(pattern) * len(name)) at worst.
func matchPattern(pattern, name string) bool {
	p, n := 0, 0
	star, resume := -1, 0 // the last star seen, and where its run ends
	for p < len(pattern) || n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; {
			case c == '*':
				star, resume = p, n
				p++
				continue
			case n < len(name) && name[n] == c:
				p++
				n++
				continue
			}
		}
		if star < 0 || resume >= len(name) {
			return false
		}
		// Let the last star swallow one more byte and retry after it.
		resume++
		p, n = star+1, resume
	}
	return true
}

// patternsOverlap reports whether some name matches both patterns, and
// returns the shortest such name. It searches the product of the two
// patterns' automata breadth-first: state (i, j) means a common prefix
// has been matched by a[:i] and b[:j].
func patternsOverlap(a, b string) (string, bool) {
	// Quick answer for the usual case: the literal prefixes (or suffixes)
	// of the two differ, so no name can match both.
	if !samePrefix(literalPrefix(a), literalPrefix(b)) || !sameSuffix(literalSuffix(a), literalSuffix(b)) {
		return "", false
	}
	type state struct{ i, j int }
	type step struct {
		from state
		c    byte // the byte consumed, 0 for a move that consumes none
	}
	w := len(b) + 1
	prev := make([]*step, (len(a)+1)*w)
	idx := func(s state) int { return s.i*w + s.j }
	start, goal := state{0, 0}, state{len(a), len(b)}
	prev[idx(start)] = &step{from: start}
	queue := []state{start}
	visit := func(from, to state, c byte) {
		if prev[idx(to)] == nil {
			prev[idx(to)] = &step{from: from, c: c}
			queue = append(queue, to)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s == goal {
			var out []byte
			for s != start {
				st := prev[idx(s)]
				if st.c != 0 {
					out = append(out, st.c)
				}
				s = st.from
			}
			slices.Reverse(out)
			return string(out), true
		}
		aStar := s.i < len(a) && a[s.i] == '*'
		bStar := s.j < len(b) && b[s.j] == '*'
		aLit := s.i < len(a) && !aStar
		bLit := s.j < len(b) && !bStar
		if aStar {
			visit(s, state{s.i + 1, s.j}, 0) // the star matches nothing more
			if bLit {
				visit(s, state{s.i, s.j + 1}, b[s.j]) // the star eats b's byte
			}
		}
		if bStar {
			visit(s, state{s.i, s.j + 1}, 0)
			if aLit {
				visit(s, state{s.i + 1, s.j}, a[s.i])
			}
		}
		if aLit && bLit && a[s.i] == b[s.j] {
			visit(s, state{s.i + 1, s.j + 1}, a[s.i])
		}
	}
	return "", false
}

// literalPrefix returns the bytes of pattern before its first star (all
// of it when it has none).
func literalPrefix(pattern string) string {
	if i := strings.IndexByte(pattern, '*'); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// literalSuffix returns the bytes of pattern after its last star (all of
// it when it has none).
func literalSuffix(pattern string) string {
	return pattern[strings.LastIndexByte(pattern, '*')+1:]
}

// samePrefix reports whether neither of x and y contradicts the other at
// its start: the shorter is a prefix of the longer.
func samePrefix(x, y string) bool {
	n := min(len(x), len(y))
	return x[:n] == y[:n]
}

// sameSuffix reports whether the shorter of x and y is a suffix of the
// longer.
func sameSuffix(x, y string) bool {
	n := min(len(x), len(y))
	return x[len(x)-n:] == y[len(y)-n:]
}
