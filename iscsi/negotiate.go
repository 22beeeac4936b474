package iscsi

import (
	"strconv"
	"strings"
)

// Operational key negotiation (RFC 7143 6.2 and 13). The target never
// offers a negotiable key of its own: it answers what the initiator offers
// and declares MaxRecvDataSegmentLength, TargetAlias and
// TargetPortalGroupTag. Every key the initiator does not negotiate keeps
// its RFC default (DefaultParams).

// Key names of RFC 7143 13 (and RFC 7144, RFC 7145 for the ones noted).
const (
	keyHeaderDigest        = "HeaderDigest"
	keyDataDigest          = "DataDigest"
	keyMaxConnections      = "MaxConnections"
	keySendTargets         = "SendTargets"
	keyTargetName          = "TargetName"
	keyInitiatorName       = "InitiatorName"
	keyTargetAlias         = "TargetAlias"
	keyInitiatorAlias      = "InitiatorAlias"
	keyTargetAddress       = "TargetAddress"
	keyTargetPortalGroup   = "TargetPortalGroupTag"
	keyInitialR2T          = "InitialR2T"
	keyImmediateData       = "ImmediateData"
	keyMaxRecvDSL          = "MaxRecvDataSegmentLength"
	keyMaxBurstLength      = "MaxBurstLength"
	keyFirstBurstLength    = "FirstBurstLength"
	keyDefaultTime2Wait    = "DefaultTime2Wait"
	keyDefaultTime2Retain  = "DefaultTime2Retain"
	keyMaxOutstandingR2T   = "MaxOutstandingR2T"
	keyDataPDUInOrder      = "DataPDUInOrder"
	keyDataSequenceInOrder = "DataSequenceInOrder"
	keyErrorRecoveryLevel  = "ErrorRecoveryLevel"
	keySessionType         = "SessionType"
	keyTaskReporting       = "TaskReporting"
	keyProtocolLevel       = "iSCSIProtocolLevel" // RFC 7144
	keyAuthMethod          = "AuthMethod"
	keyCHAPA               = "CHAP_A"
	keyCHAPI               = "CHAP_I"
	keyCHAPC               = "CHAP_C"
	keyCHAPN               = "CHAP_N"
	keyCHAPR               = "CHAP_R"
	// Obsolete marker keys (RFC 7143 13.25 lists them as obsoleted).
	keyIFMarker  = "IFMarker"
	keyOFMarker  = "OFMarker"
	keyIFMarkInt = "IFMarkInt"
	keyOFMarkInt = "OFMarkInt"
	// iSER keys (RFC 7145), irrelevant since RDMAExtensions=No.
	keyRDMAExtensions   = "RDMAExtensions"
	keyInitiatorRecvDSL = "InitiatorRecvDataSegmentLength"
	keyTargetRecvDSL    = "TargetRecvDataSegmentLength"
)

// Value ranges of RFC 7143 13.
const (
	minDataSegment = 512
	maxTime2       = 3600
	maxR2TOrConns  = 65535
	// protocolLevel is the iSCSIProtocolLevel of RFC 7143 (RFC 7144 2.1).
	protocolLevel = 1
	// digestCRC32C is the digest name.
	digestCRC32C = "CRC32C"
	// taskReportingRFC3720 is the only TaskReporting value we implement.
	taskReportingRFC3720 = "RFC3720"
)

// isLoginOnlyKey reports whether key is a key RFC 7143 defines that may
// only be sent during login (Use: IO or LO, or a security key).
func isLoginOnlyKey(key string) bool {
	switch key {
	case keyHeaderDigest, keyDataDigest, keyMaxConnections, keyTargetName,
		keyInitiatorName, keyInitialR2T, keyImmediateData, keyMaxBurstLength,
		keyFirstBurstLength, keyDefaultTime2Wait, keyDefaultTime2Retain,
		keyMaxOutstandingR2T, keyDataPDUInOrder, keyDataSequenceInOrder,
		keyErrorRecoveryLevel, keySessionType, keyTaskReporting, keyProtocolLevel,
		keyAuthMethod, keyCHAPA, keyCHAPI, keyCHAPC, keyCHAPN, keyCHAPR,
		keyIFMarker, keyOFMarker, keyIFMarkInt, keyOFMarkInt,
		keyRDMAExtensions, keyInitiatorRecvDSL, keyTargetRecvDSL:
		return true
	}
	return false
}

// isTargetOnlyKey reports whether only a target may send key (RFC 7143 13
// "Senders: Target").
func isTargetOnlyKey(key string) bool {
	switch key {
	case keyTargetAlias, keyTargetAddress, keyTargetPortalGroup:
		return true
	}
	return false
}

// effectivePreferences fills the zero numeric fields of p from
// DefaultPreferences and brings every value into its RFC 7143 range, so
// that the target never answers with a value it may not send.
func effectivePreferences(p Preferences) Preferences {
	d := DefaultPreferences()
	if p.MaxRecvDataSegmentLength == 0 {
		p.MaxRecvDataSegmentLength = d.MaxRecvDataSegmentLength
	}
	if p.MaxBurstLength == 0 {
		p.MaxBurstLength = d.MaxBurstLength
	}
	if p.FirstBurstLength == 0 {
		p.FirstBurstLength = d.FirstBurstLength
	}
	if p.MaxOutstandingR2T == 0 {
		p.MaxOutstandingR2T = d.MaxOutstandingR2T
	}
	if p.MaxConnections == 0 {
		p.MaxConnections = d.MaxConnections
	}
	p.MaxRecvDataSegmentLength = clamp32(p.MaxRecvDataSegmentLength, minDataSegment, maxDataSegment)
	p.MaxBurstLength = clamp32(p.MaxBurstLength, minDataSegment, maxDataSegment)
	p.FirstBurstLength = clamp32(p.FirstBurstLength, minDataSegment, p.MaxBurstLength)
	p.MaxOutstandingR2T = clamp32(p.MaxOutstandingR2T, 1, maxR2TOrConns)
	p.DefaultTime2Wait = min(p.DefaultTime2Wait, maxTime2)
	p.DefaultTime2Retain = min(p.DefaultTime2Retain, maxTime2)
	return p
}

func clamp32(v, lo, hi uint32) uint32 { return max(lo, min(v, hi)) }

// negotiator holds the operational parameters of one login as the
// initiator's offers are answered.
type negotiator struct {
	prefs     Preferences
	discovery bool
	// burstCap is the target's MaxBurstLength cap (0: none).
	burstCap uint32
	params   Params
	// declaredXmit records that the initiator declared its
	// MaxRecvDataSegmentLength.
	declaredXmit bool
}

func newNegotiator(prefs Preferences, discovery bool, t *Target) negotiator {
	n := negotiator{prefs: prefs, discovery: discovery, params: DefaultParams()}
	if t != nil && t.MaxBurstLength != 0 {
		n.burstCap = max(t.MaxBurstLength, minDataSegment)
	}
	return n
}

// negotiationFailure is a key whose value makes the negotiation fail as
// a whole (the login fails with an initiator error).
type negotiationFailure struct{ reason string }

func (e *negotiationFailure) Error() string { return e.reason }

// negotiate answers one operational key the initiator offered. respond is
// false for a declaration that needs no answer. A non-nil error fails the
// login (initiator error).
func (n *negotiator) negotiate(key, value string) (answer string, respond bool, err error) {
	if isAnswerValue(value) {
		// An answer to an offer we never made: nothing to negotiate.
		return "", false, nil
	}
	if strings.HasPrefix(key, "X-") || strings.HasPrefix(key, "X#") {
		// RFC 7143 13.22/6.2: extension keys we do not implement.
		return textNotUnderstood, true, nil
	}
	if n.discovery && irrelevantInDiscovery(key) {
		// RFC 7143 13: "Irrelevant when: SessionType=Discovery".
		return textIrrelevant, true, nil
	}
	if len(value) > textValueMaxLen {
		return textReject, true, nil
	}
	p := &n.params
	switch key {
	case keyHeaderDigest:
		v, ok := n.digest(value, n.prefs.HeaderDigest)
		if ok {
			p.HeaderDigest = v == digestCRC32C
		}
		return v, true, nil
	case keyDataDigest:
		v, ok := n.digest(value, n.prefs.DataDigest)
		if ok {
			p.DataDigest = v == digestCRC32C
		}
		return v, true, nil
	case keyMaxConnections:
		return answerNumber(value, 1, maxR2TOrConns, func(v uint64) uint64 {
			r := min(v, uint64(n.prefs.MaxConnections))
			p.MaxConnections = uint16(r)
			return r
		})
	case keyInitialR2T:
		// RFC 7143 13.10: result function OR.
		return answerBool(value, func(v bool) bool {
			p.InitialR2T = v || n.prefs.InitialR2T
			return p.InitialR2T
		})
	case keyImmediateData:
		// RFC 7143 13.11: result function AND.
		return answerBool(value, func(v bool) bool {
			p.ImmediateData = v && n.prefs.ImmediateData
			return p.ImmediateData
		})
	case keyDataPDUInOrder:
		// RFC 7143 13.18: OR. The target wants in-order data PDUs.
		return answerBool(value, func(bool) bool { p.DataPDUInOrder = true; return true })
	case keyDataSequenceInOrder:
		// RFC 7143 13.19: OR. The target wants in-order sequences.
		return answerBool(value, func(bool) bool { p.DataSequenceInOrder = true; return true })
	case keyMaxBurstLength:
		return answerNumber(value, minDataSegment, uint64(maxDataSegment), func(v uint64) uint64 {
			r := min(v, uint64(n.prefs.MaxBurstLength))
			if n.burstCap != 0 {
				r = min(r, uint64(n.burstCap))
			}
			p.MaxBurstLength = uint32(r)
			return r
		})
	case keyFirstBurstLength:
		// RFC 7143 13.14: "Irrelevant when: ( InitialR2T=Yes and
		// ImmediateData=No )". The caller negotiates this key after
		// every other key of the same request so that the values it
		// depends on are known.
		if p.InitialR2T && !p.ImmediateData {
			return textIrrelevant, true, nil
		}
		return answerNumber(value, minDataSegment, uint64(maxDataSegment), func(v uint64) uint64 {
			// "FirstBurstLength MUST NOT exceed MaxBurstLength."
			r := min(v, uint64(n.prefs.FirstBurstLength), uint64(p.MaxBurstLength))
			p.FirstBurstLength = uint32(r)
			return r
		})
	case keyDefaultTime2Wait:
		// RFC 7143 13.15: result function Maximum.
		return answerNumber(value, 0, maxTime2, func(v uint64) uint64 {
			r := max(v, uint64(n.prefs.DefaultTime2Wait))
			p.DefaultTime2Wait = uint16(r)
			return r
		})
	case keyDefaultTime2Retain:
		// RFC 7143 13.16: result function Minimum.
		return answerNumber(value, 0, maxTime2, func(v uint64) uint64 {
			r := min(v, uint64(n.prefs.DefaultTime2Retain))
			p.DefaultTime2Retain = uint16(r)
			return r
		})
	case keyMaxOutstandingR2T:
		return answerNumber(value, 1, maxR2TOrConns, func(v uint64) uint64 {
			r := min(v, uint64(n.prefs.MaxOutstandingR2T))
			p.MaxOutstandingR2T = uint32(r)
			return r
		})
	case keyErrorRecoveryLevel:
		// RFC 7143 13.20: Minimum; this target implements level 0 only.
		return answerNumber(value, 0, 2, func(uint64) uint64 {
			p.ErrorRecoveryLevel = 0
			return 0
		})
	case keyMaxRecvDSL:
		// RFC 7143 13.12: declarative, 512 to 2**24-1. The initiator's
		// receive limit is the largest segment we may send. A bad value
		// cannot be answered with Reject: our own declaration of the same
		// key may share the response.
		v, ok := parseTextNumber(value)
		if !ok || v < minDataSegment || v > uint64(maxDataSegment) {
			return "", false, &negotiationFailure{reason: "invalid MaxRecvDataSegmentLength " + textQuote(value)}
		}
		p.MaxXmitDataSegmentLength = uint32(v)
		n.declaredXmit = true
		return "", false, nil
	case keyTaskReporting:
		// RFC 7143 13.23: list; only the RFC 3720 semantics are offered.
		items, ok := parseTextList(value)
		if !ok {
			return textReject, true, nil
		}
		for _, it := range items {
			if it == taskReportingRFC3720 {
				return taskReportingRFC3720, true, nil
			}
		}
		return textReject, true, nil
	case keyProtocolLevel:
		// RFC 7144 2.1: 0 to 31, result function Minimum.
		return answerNumber(value, 0, 31, func(v uint64) uint64 { return min(v, protocolLevel) })
	case keyIFMarker, keyOFMarker:
		// RFC 7143 13.25: markers are obsolete; a responder "SHOULD
		// respond with the constant 'Reject' value. The implementation
		// MAY alternatively respond with a 'No' value." "No" is what
		// RFC 3720 initiators that offer IFMarker=No expect to read.
		if _, ok := parseTextBool(value); !ok {
			return textReject, true, nil
		}
		return textNo, true, nil
	case keyIFMarkInt, keyOFMarkInt:
		// RFC 7143 13.25: "MUST respond with the constant 'Reject'".
		return textReject, true, nil
	case keyRDMAExtensions:
		// RFC 7145: result function AND; no RDMA here.
		return answerBool(value, func(bool) bool { return false })
	case keyInitiatorRecvDSL, keyTargetRecvDSL:
		// RFC 7145: "Irrelevant when: RDMAExtensions=No".
		return textIrrelevant, true, nil
	}
	return textNotUnderstood, true, nil
}

// irrelevantInDiscovery lists the keys RFC 7143 13 marks "Irrelevant
// when: SessionType=Discovery".
func irrelevantInDiscovery(key string) bool {
	switch key {
	case keyMaxConnections, keyInitialR2T, keyImmediateData, keyMaxBurstLength,
		keyFirstBurstLength, keyMaxOutstandingR2T, keyDataPDUInOrder,
		keyDataSequenceInOrder, keyTaskReporting:
		return true
	}
	return false
}

// digest negotiates a digest list (RFC 7143 13.1): the first offered
// value we support; CRC32C only when allowed.
func (n *negotiator) digest(value string, allowCRC bool) (string, bool) {
	items, ok := parseTextList(value)
	if !ok {
		return textReject, false
	}
	for _, it := range items {
		switch {
		case it == textNone:
			return textNone, true
		case it == digestCRC32C && allowCRC:
			return digestCRC32C, true
		}
	}
	// RFC 7143 6.2.1: none of the values is acceptable.
	return textReject, false
}

// answerNumber answers a numerical key: Reject when the value is not a
// number in [lo, hi], else the result of f.
func answerNumber(value string, lo, hi uint64, f func(uint64) uint64) (string, bool, error) {
	v, ok := parseTextNumber(value)
	if !ok || v < lo || v > hi {
		return textReject, true, nil
	}
	return strconv.FormatUint(f(v), 10), true, nil
}

// answerBool answers a boolean key: Reject for anything but Yes or No,
// else the result of f.
func answerBool(value string, f func(bool) bool) (string, bool, error) {
	v, ok := parseTextBool(value)
	if !ok {
		return textReject, true, nil
	}
	return formatTextBool(f(v)), true, nil
}

// final returns the negotiated parameters with the target's declarations
// and the cross-key rules applied. declaredRecv is the
// MaxRecvDataSegmentLength the target declared (0 if it did not).
func (n *negotiator) final(declaredRecv uint32) Params {
	p := n.params
	if declaredRecv != 0 {
		p.MaxRecvDataSegmentLength = declaredRecv
	}
	// RFC 7143 13.14: "FirstBurstLength MUST NOT exceed MaxBurstLength";
	// the defaults (65536 and 262144) can collide with a negotiated
	// MaxBurstLength below 65536.
	p.FirstBurstLength = min(p.FirstBurstLength, p.MaxBurstLength)
	return p
}
