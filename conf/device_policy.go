package conf

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// devicePolicy resolves the per-device command policy settings of a
// device block: queue_depth, allow_opcodes, deny_opcodes, timeout and
// long_timeout.
func (r *resolver) devicePolicy(d *Device, rd *rawDevice) {
	if n, st := r.integer(rd.QueueDepth, "queue_depth", 1, MaxQueueDepth); st == attrOK {
		d.QueueDepth = int(n)
	}
	allowed := r.opcodes(rd.Allow, "allow_opcodes")
	denied := r.opcodes(rd.Deny, "deny_opcodes")
	for _, a := range allowed {
		if i := slices.IndexFunc(denied, func(x opcodeElem) bool { return x.op == a.op }); i >= 0 {
			r.errorf(a.rng, "Opcode allowed and denied", "Operation code 0x%02x is in allow_opcodes and in deny_opcodes (at %s); keep it in one of them.", a.op, denied[i].rng)
		}
	}
	for _, a := range allowed {
		d.AllowOpcodes = append(d.AllowOpcodes, a.op)
	}
	for _, x := range denied {
		d.DenyOpcodes = append(d.DenyOpcodes, x.op)
	}
	d.Timeout = r.commandTimeout(rd.Timeout, "timeout")
	d.LongTimeout = r.commandTimeout(rd.LongTime, "long_timeout")
}

// opcodeElem is one operation code of an opcode list and where it is.
type opcodeElem struct {
	op  int
	rng hcl.Range
}

// opcodes evaluates a list of operation codes: "0x04", "04h" or a whole
// number from 0 to 255. Duplicates are warned about and kept once.
func (r *resolver) opcodes(expr hcl.Expression, name string) []opcodeElem {
	elems, st := r.stringList(expr, name, `a list of operation codes such as ["0x04", "0x48"]`)
	if st != attrOK {
		return nil
	}
	var out []opcodeElem
	for _, e := range elems {
		if e.null {
			r.errorf(e.rng, "Invalid "+name, "%s holds a null; list operation codes such as \"0x04\".", name)
			continue
		}
		op, ok := parseOpcode(e.value)
		if !ok {
			r.errorf(e.rng, "Invalid "+name, `An operation code is "0x" and two hex digits ("0x04"), two hex digits and "h" ("04h"), or a number from 0 to 255; it is %q.`, e.value)
			continue
		}
		if i := slices.IndexFunc(out, func(x opcodeElem) bool { return x.op == op }); i >= 0 {
			r.warnf(e.rng, "Duplicate opcode", "Operation code 0x%02x is already listed at %s.", op, out[i].rng)
			continue
		}
		out = append(out, opcodeElem{op: op, rng: e.rng})
	}
	return out
}

// parseOpcode parses "0x04", "04h" or "4".
func parseOpcode(s string) (int, bool) {
	s = strings.TrimSpace(s)
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		s, base = s[2:], 16
	case strings.HasSuffix(s, "h") || strings.HasSuffix(s, "H"):
		s, base = s[:len(s)-1], 16
	}
	if s == "" || len(s) > 3 || base == 16 && len(s) > 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 8)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// commandTimeout evaluates a command timeout: a duration from 1 s to
// MaxCommandTimeout.
func (r *resolver) commandTimeout(expr hcl.Expression, name string) time.Duration {
	s, st := r.str(expr, name)
	if st != attrOK {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		r.errorf(expr.Range(), "Invalid "+name, `%s is a duration such as "90s", "30m" or "4h": %v.`, name, err)
	case d < time.Second || d > MaxCommandTimeout:
		r.errorf(expr.Range(), "Invalid "+name, "%s must be from 1s to %s; it is %s.", name, MaxCommandTimeout, d)
	default:
		return d
	}
	return 0
}
