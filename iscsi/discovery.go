package iscsi

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// Text requests in full feature phase (RFC 7143 11.10, 11.11) and the
// SendTargets discovery of RFC 7143 Appendix C. A SendTargets response
// lists each target followed by its portals:
//
//	TargetName=iqn.2024-01.com.example:disk1\0
//	TargetAddress=192.0.2.10:3260,1\0
//	TargetAddress=[2001:db8::10]:3260,2\0
//
// Requests continued with the C bit are collected (the target answers
// each continued PDU with an empty response carrying a Target Transfer
// Tag), and responses longer than the initiator's
// MaxRecvDataSegmentLength are split the same way: the initiator asks for
// each next part with an empty Text Request carrying our tag.

// textError is a Text Request the connection must answer with a Reject
// PDU (RFC 7143 11.17) carrying Reason.
type textError struct {
	Reason RejectReason
	msg    string
}

// Error implements error.
func (e *textError) Error() string {
	return fmt.Sprintf("iscsi: text request rejected (%s): %s", e.Reason, e.msg)
}

func rejectText(reason RejectReason, format string, args ...any) *textError {
	return &textError{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// textConfig is the environment of one connection's text requests.
type textConfig struct {
	// Config is the server configuration (Portals, Targets).
	Config *Config
	// Portal is the portal the connection arrived on; nil when unknown.
	Portal *Portal
	// Local is the connection's local address: the TargetAddress of a
	// portal that has no Advertise address and listens on a wildcard.
	Local net.Addr
	// Discovery is true for a discovery session.
	Discovery bool
	// Initiator is the normalized initiator name.
	Initiator string
	// Target is the session's target (normal sessions).
	Target *Target
	// MaxXmit is the initiator's MaxRecvDataSegmentLength.
	MaxXmit uint32
	Log     zerolog.Logger
	// Stats, when not nil, counts refused requests.
	Stats *limitCounters
}

// maxKeys is the most keys one request sequence may carry.
func (t *textSession) maxKeys() int {
	if t.cfg.Config != nil && t.cfg.Config.Limits.MaxTextKeys > 0 {
		return t.cfg.Config.Limits.MaxTextKeys
	}
	return defaultMaxTextKeys
}

// textSession answers one connection's Text Requests. It is used by the
// connection's reader goroutine only.
type textSession struct {
	cfg     textConfig
	maxXmit uint32

	// active is true while a negotiation (itt) is open.
	active bool
	itt    uint32
	// ttt is the tag of our last response that expects a follow-up.
	ttt     uint32
	nextTTT uint32
	in      []byte
	out     []byte
	seen    map[string]struct{}
	// pendingXmit is a MaxRecvDataSegmentLength the initiator declared
	// in the open negotiation; it applies once the negotiation ends.
	pendingXmit uint32
}

// newTextSession returns the text request handler of one connection.
func newTextSession(c textConfig) *textSession {
	t := &textSession{cfg: c, maxXmit: c.MaxXmit, nextTTT: 1}
	if t.maxXmit == 0 {
		t.maxXmit = defaultMaxRecvDSL
	}
	return t
}

// xmitLimit returns the initiator's current MaxRecvDataSegmentLength:
// the value from login, or the one it declared in a text negotiation
// that has completed. The connection must apply it to the PDUs it sends
// after the Text Response that completed the negotiation (RFC 7143
// 13.12: MaxRecvDataSegmentLength may be declared in full feature phase).
func (t *textSession) xmitLimit() uint32 { return t.maxXmit }

// reset forgets the open negotiation.
func (t *textSession) reset() {
	t.active = false
	t.in = t.in[:0]
	t.out = nil
	t.seen = nil
	t.pendingXmit = 0
}

// newTag returns a fresh Target Transfer Tag.
func (t *textSession) newTag() uint32 {
	tag := t.nextTTT
	t.nextTTT++
	if t.nextTTT == reservedTag {
		t.nextTTT = 1
	}
	t.ttt = tag
	return tag
}

// handle answers one Text Request (header decoded, data its data
// segment). The response's sequence numbers (StatSN, ExpCmdSN, MaxCmdSN)
// are left for the connection to fill. A non-nil error is a *textError:
// the connection answers with a Reject PDU carrying its reason and the
// request's header.
func (t *textSession) handle(req *TextRequest, data []byte) (*TextResponse, error) {
	// RFC 7143 11.10.2: "A Text Request with the C bit set to 1 MUST
	// have the F bit set to 0."
	if req.Continue && req.Final {
		t.reset()
		return nil, rejectText(RejectProtocolError, "text request with both C and F bits")
	}
	if req.TTT == reservedTag {
		// RFC 7143 11.11.4: "When the target receives a Text Request with
		// the Target Transfer Tag set to the reserved value of 0xffffffff,
		// it resets its internal information (resets state) associated
		// with the given Initiator Task Tag (restarts the negotiation)."
		// One negotiation at a time per connection: a new ITT replaces
		// the old one too.
		t.reset()
		t.active = true
		t.itt = req.ITT
		t.seen = make(map[string]struct{})
	} else if !t.active || req.ITT != t.itt || req.TTT != t.ttt {
		t.reset()
		return nil, rejectText(RejectInvalidPDUField, "Target Transfer Tag %#x does not continue a negotiation", req.TTT)
	}
	resp := &TextResponse{ITT: req.ITT, LUN: req.LUN, TTT: reservedTag}
	if len(t.out) > 0 {
		if len(data) > 0 || req.Continue {
			t.reset()
			return nil, rejectText(RejectProtocolError, "new text while the target's response is continued")
		}
		return t.respond(req, resp), nil
	}
	if len(t.in)+len(data) > textSeqMaxLen {
		t.reset()
		return nil, rejectText(RejectOutOfResources, "more than %d bytes of text", textSeqMaxLen)
	}
	t.in = append(t.in, data...)
	if req.Continue {
		// More text follows; ask for it with our tag.
		resp.TTT = t.newTag()
		return resp, nil
	}
	pairs, err := parseText(t.in)
	t.in = t.in[:0]
	if err != nil {
		t.reset()
		return nil, rejectText(RejectProtocolError, "%v", err)
	}
	if max := t.maxKeys(); len(pairs) > max {
		t.reset()
		if t.cfg.Stats != nil {
			t.cfg.Stats.textKeysRefused.Add(1)
		}
		return nil, rejectText(RejectOutOfResources, "%d keys in one request, at most %d", len(pairs), max)
	}
	out, terr := t.answer(pairs)
	if terr != nil {
		t.reset()
		return nil, terr
	}
	t.out = out
	return t.respond(req, resp), nil
}

// respond fills resp with the next part of the answer.
func (t *textSession) respond(req *TextRequest, resp *TextResponse) *TextResponse {
	n := min(len(t.out), int(t.maxXmit))
	resp.Data = t.out[:n:n]
	t.out = t.out[n:]
	if len(t.out) > 0 {
		// RFC 7143 11.11.2: C=1, the text continues; 11.11.4: the
		// initiator asks for it with our tag.
		resp.Continue = true
		resp.TTT = t.newTag()
		return resp
	}
	t.out = nil
	if !req.Final {
		// RFC 7143 11.11.1: F=1 only answers a request with F=1; the
		// initiator has more to say, under our tag.
		resp.TTT = t.newTag()
		return resp
	}
	resp.Final = true
	if t.pendingXmit != 0 {
		t.maxXmit = t.pendingXmit
	}
	t.reset()
	return resp
}

// answer answers the keys of one complete request.
func (t *textSession) answer(pairs []textPair) ([]byte, *textError) {
	var out []byte
	for _, p := range pairs {
		if _, dup := t.seen[p.Key]; dup {
			// RFC 7143 6.2: a key may not be renegotiated within one
			// negotiation.
			return nil, rejectText(RejectProtocolError, "key %s sent twice", textQuote(p.Key))
		}
		t.seen[p.Key] = struct{}{}
		if isAnswerValue(p.Value) {
			continue
		}
		switch {
		case p.Key == keySendTargets:
			out = t.sendTargets(out, p.Value)
		case p.Key == keyMaxRecvDSL:
			// RFC 7143 13.12, "Use: ALL": the initiator may declare a new
			// receive limit in full feature phase.
			v, ok := parseTextNumber(p.Value)
			if !ok || v < minDataSegment || v > uint64(maxDataSegment) {
				out = appendTextPair(out, p.Key, textReject)
				continue
			}
			t.pendingXmit = uint32(v)
		case p.Key == keyInitiatorAlias:
			// RFC 7143 13.6, "Use: ALL": a declaration needing no answer.
		case isTargetOnlyKey(p.Key), isLoginOnlyKey(p.Key):
			// Keys that cannot be (re)negotiated in full feature phase.
			out = appendTextPair(out, p.Key, textReject)
		default:
			out = appendTextPair(out, p.Key, textNotUnderstood)
		}
	}
	if t.cfg.Log.GetLevel() <= zerolog.DebugLevel {
		t.cfg.Log.Debug().Strs("keys", loggableKeys(pairs)).Int("answer_bytes", len(out)).Msg("text request")
	}
	return out, nil
}

// sendTargets appends the answer to SendTargets=value (RFC 7143
// Appendix C). A discovery session lists every target the initiator may
// log in to ("All") or the one named; a normal session lists only its
// own target, whatever the value ("All" is not defined there, but
// initiators send it and expect their target back). Targets the
// initiator may not see are left out, so an unknown and a forbidden name
// look the same: an empty answer.
func (t *textSession) sendTargets(out []byte, value string) []byte {
	var name string
	switch value {
	case "All":
	case "":
		if t.cfg.Discovery {
			return out
		}
	default:
		n, err := NormalizeName(value)
		if err != nil {
			return appendTextPair(out, keySendTargets, textReject)
		}
		name = n
	}
	if !t.cfg.Discovery {
		if t.cfg.Target == nil || name != "" && name != t.cfg.Target.Name {
			return out
		}
		return t.appendTarget(out, t.cfg.Target)
	}
	if t.cfg.Config == nil || t.cfg.Config.Targets == nil {
		return out
	}
	if name != "" {
		tg, ok := t.cfg.Config.Targets.Target(name)
		if !ok || !tg.access(t.cfg.Initiator).Allowed {
			return out
		}
		return t.appendTarget(out, tg)
	}
	for _, tg := range t.cfg.Config.Targets.All() {
		if tg.access(t.cfg.Initiator).Allowed {
			out = t.appendTarget(out, tg)
		}
	}
	return out
}

// appendTarget appends TargetName and the target's TargetAddresses. A
// target reachable through no portal is left out: the initiator could
// not log in to it.
func (t *textSession) appendTarget(out []byte, tg *Target) []byte {
	var portals []Portal
	if t.cfg.Config != nil {
		portals = t.cfg.Config.portals()
	}
	if len(portals) == 0 && t.cfg.Portal != nil {
		portals = []Portal{*t.cfg.Portal}
	}
	var addrs []string
	for i := range portals {
		p := &portals[i]
		if !tg.onGroup(p.Group) {
			continue
		}
		a, ok := t.portalAddress(p)
		if !ok {
			continue
		}
		tpgt := p.Group
		if tpgt == 0 {
			tpgt = 1
		}
		a += "," + strconv.Itoa(int(tpgt))
		dup := false
		for _, b := range addrs {
			dup = dup || a == b
		}
		if !dup {
			addrs = append(addrs, a)
		}
	}
	if len(portals) == 0 {
		// No portal configured at all: the address the initiator used.
		if a, ok := t.localAddress(""); ok {
			addrs = append(addrs, a+",1")
		}
	}
	if len(addrs) == 0 {
		return out
	}
	out = appendTextPair(out, keyTargetName, tg.Name)
	for _, a := range addrs {
		// RFC 7143 13.8: TargetAddress=domainname[:port][,portal-group-tag],
		// IPv6 addresses in brackets.
		out = appendTextPair(out, keyTargetAddress, a)
	}
	return out
}

// portalAddress returns the host:port to advertise for p.
func (t *textSession) portalAddress(p *Portal) (string, bool) {
	lhost, lport, lerr := net.SplitHostPort(p.Listen)
	if p.Advertise != "" {
		if h, port, err := net.SplitHostPort(p.Advertise); err == nil {
			return net.JoinHostPort(stripZone(h), port), true
		}
		// A bare host: the listening port.
		if lerr != nil {
			return "", false
		}
		return net.JoinHostPort(stripZone(strings.Trim(p.Advertise, "[]")), lport), true
	}
	own := t.cfg.Portal != nil && t.cfg.Portal.Listen == p.Listen && t.cfg.Portal.Group == p.Group
	if own {
		// The connection came in through this portal: the address it
		// reached is the one to use.
		if a, ok := t.localAddress(""); ok {
			return a, true
		}
	}
	if lerr != nil {
		return "", false
	}
	if !isWildcardHost(lhost) {
		return net.JoinHostPort(stripZone(lhost), lport), true
	}
	// A wildcard listener elsewhere: our local host, its port.
	return t.localAddress(lport)
}

// localAddress returns the connection's local address, with port
// replaced when port is not empty.
func (t *textSession) localAddress(port string) (string, bool) {
	if t.cfg.Local == nil {
		return "", false
	}
	h, p, err := net.SplitHostPort(t.cfg.Local.String())
	if err != nil {
		return "", false
	}
	if port != "" {
		p = port
	}
	if ap, err := netip.ParseAddr(stripZone(h)); err == nil {
		// An IPv4 connection on a dual-stack socket reports ::ffff:a.b.c.d.
		h = ap.Unmap().String()
	}
	return net.JoinHostPort(stripZone(h), p), true
}

// isWildcardHost reports whether a listen host means "every address".
func isWildcardHost(h string) bool {
	if h == "" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsUnspecified()
}

// stripZone removes an IPv6 zone ("%eth0"), which means nothing to
// another host.
func stripZone(h string) string {
	if i := strings.IndexByte(h, '%'); i >= 0 {
		return h[:i]
	}
	return h
}
