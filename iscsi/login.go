package iscsi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// The login phase (RFC 7143 6.3, 11.12, 11.13): a sequence of Login
// Request/Response exchanges through the security stage (authentication)
// and the operational stage (parameter negotiation), ending when both
// sides agree to transit to the full feature phase:
//
//	CSG=Security    AuthMethod, CHAP_*            T=1 NSG=Operational
//	CSG=Operational HeaderDigest, MaxBurstLength  T=1 NSG=FullFeature
//
// The initiator may start in the operational stage when no authentication
// is required, and may go straight from the security stage to the full
// feature phase. One login value handles one connection's login; the
// connection feeds it each Login Request and sends what it returns.

// loginVersion is the only iSCSI version (RFC 7143 11.12.4: 0x00).
const loginVersion = 0

// LoginError is why a login failed. The connection sends a Login
// Response with Status and closes (RFC 7143 11.13.5: "If the Status-Class
// is not 0, the initiator and target MUST close the TCP connection").
// Reason is for logs: it never holds secrets.
type LoginError struct {
	Status LoginStatus
	Reason string
}

// Error implements error.
func (e *LoginError) Error() string {
	return fmt.Sprintf("iscsi: login failed with %s (%#04x): %s", e.Status, uint16(e.Status), e.Reason)
}

func loginFail(st LoginStatus, format string, args ...any) *LoginError {
	return &LoginError{Status: st, Reason: fmt.Sprintf(format, args...)}
}

// loginResult is what a successful login hands to the connection.
type loginResult struct {
	// Discovery is true for SessionType=Discovery.
	Discovery bool
	// InitiatorName is normalized (NormalizeName).
	InitiatorName  string
	InitiatorAlias string
	// Target is nil for discovery sessions.
	Target *Target
	ISID   ISID
	// TSIH is the TSIH the initiator asked for (0 = new session).
	TSIH uint16
	CID  uint16
	// Params are the negotiated parameters. Digests and the data segment
	// limits apply from the first PDU after the final Login Response.
	Params Params
	// ExpCmdSN is the CmdSN the first full feature phase command carries
	// (login requests are immediate and do not advance it).
	ExpCmdSN uint32
	// StatSN is the next StatSN to send on this connection after the
	// final Login Response.
	StatSN uint32
}

// loginConfig is the environment of one connection's login.
type loginConfig struct {
	// Config is the server configuration with defaults applied.
	Config *Config
	// Portal is the portal the connection arrived on (Group is the TPGT
	// to report). Nil means "no portal group": every target is reachable
	// and TPGT 1 is reported.
	Portal *Portal
	Log    zerolog.Logger
	// Local is the connection's local address (not used by the login
	// itself; kept for redirection).
	Local net.Addr
	// Commit is called once, when the initiator asks to enter the full
	// feature phase and everything checked out. It registers the session
	// (reinstating an old one with the same InitiatorName, ISID and
	// target) and returns the TSIH for the final response, or a failure
	// status to answer with instead. Nil accepts every login with TSIH 1
	// (tests).
	Commit func(r *loginResult) (tsih uint16, status LoginStatus)
	// rand supplies CHAP identifiers and challenges; nil is crypto/rand.
	rand io.Reader
	// Auth, when not nil, throttles CHAP failures of Source and the
	// initiator name; Stats, when not nil, counts what it does.
	Auth   *authThrottle
	Source netip.Prefix
	Stats  *limitCounters
}

// authMethod is the negotiated AuthMethod.
type authMethod uint8

// Authentication methods.
const (
	authUnset authMethod = iota
	authNone
	authCHAP
)

// String names the method as on the wire.
func (a authMethod) String() string {
	switch a {
	case authUnset:
		return "unset"
	case authNone:
		return "None"
	case authCHAP:
		return "CHAP"
	}
	return fmt.Sprintf("authMethod(%d)", uint8(a))
}

// login is the target's side of one connection's login phase.
type login struct {
	cfg    loginConfig
	log    zerolog.Logger
	prefs  Preferences
	window uint32

	started bool
	stage   Stage
	// skippedSecurity: the first request was in the operational stage.
	skippedSecurity bool
	isid            ISID
	tsih            uint16
	cid             uint16
	verMax, verMin  uint8
	// statSN is the StatSN of the next Login Response.
	statSN uint32

	// in accumulates the key data of a request continued with the C bit.
	in []byte
	// out is response key data not yet sent (our C bit).
	out []byte
	// outLimit is the largest response data segment.
	outLimit int

	// seen holds the keys the initiator sent during this login.
	seen map[string]struct{}
	// identity holds the first value of each identity key.
	identity map[string]string

	identified     bool
	discovery      bool
	initiator      string
	initiatorAlias string
	target         *Target
	creds          *CHAPSecret
	auth           authMethod
	chap           *chapAuth
	authenticated  bool

	neg          negotiator
	sentTPGT     bool
	declaredRecv uint32

	done   bool
	failed *LoginError
	res    loginResult

	// delay is how long the response to the current request waits
	// (throttled authentication); see takeDelay.
	delay time.Duration
}

// newLogin returns the login state machine of one connection.
func newLogin(cfg loginConfig) *login {
	if cfg.rand == nil {
		cfg.rand = rand.Reader
	}
	var prefs Preferences
	window := uint32(128)
	if cfg.Config != nil {
		prefs = cfg.Config.Preferences
		if cfg.Config.CmdWindow != 0 {
			window = cfg.Config.CmdWindow
		}
	}
	return &login{
		cfg:      cfg,
		log:      cfg.Log,
		prefs:    effectivePreferences(prefs),
		window:   window,
		outLimit: textLoginMaxSegment,
		seen:     make(map[string]struct{}),
		identity: make(map[string]string),
	}
}

// maxKeys is the most keys one request sequence may carry.
func (l *login) maxKeys() int {
	if l.cfg.Config != nil && l.cfg.Config.Limits.MaxTextKeys > 0 {
		return l.cfg.Config.Limits.MaxTextKeys
	}
	return defaultMaxTextKeys
}

// takeDelay returns how long the response handle just returned must
// wait before it is sent, and forgets it.
func (l *login) takeDelay() time.Duration {
	d := l.delay
	l.delay = 0
	return d
}

// result returns the outcome of a completed login, or nil before.
func (l *login) result() *loginResult {
	if !l.done {
		return nil
	}
	r := l.res
	return &r
}

// handle processes one Login Request (header decoded, data = its data
// segment) and returns the Login Response to send. done is true when this
// response completes the login: the caller sends it, then switches to the
// full feature phase with result(). A non-nil error (a *LoginError) means
// the login failed: resp is still the response to send, and the caller
// sends it and closes the connection.
func (l *login) handle(req *LoginRequest, data []byte) (resp *LoginResponse, done bool, err error) {
	if l.failed != nil {
		return l.failure(req, l.failed), false, l.failed
	}
	if l.done {
		return l.fail(req, loginFail(LoginInitiatorError, "login request after the login completed"))
	}
	if lerr := l.checkHeader(req); lerr != nil {
		return l.fail(req, lerr)
	}
	if len(l.out) > 0 {
		// RFC 7143 11.13.7: our previous response had C=1; the initiator
		// asks for the rest with an empty request.
		if len(data) > 0 || req.Continue {
			return l.fail(req, loginFail(LoginInitiatorError, "new key data while the target's response is continued"))
		}
		return l.respond(req)
	}
	if len(l.in)+len(data) > textSeqMaxLen {
		return l.fail(req, loginFail(LoginInitiatorError, "more than %d bytes of login key data", textSeqMaxLen))
	}
	l.in = append(l.in, data...)
	if req.Continue {
		// RFC 7143 11.12.2: the text continues in the next request; the
		// target answers with an empty response meanwhile.
		resp := l.base(req)
		l.statSN++
		return resp, false, nil
	}
	pairs, perr := parseText(l.in)
	l.in = l.in[:0]
	if perr != nil {
		return l.fail(req, loginFail(LoginInitiatorError, "%v", perr))
	}
	if max := l.maxKeys(); len(pairs) > max {
		if l.cfg.Stats != nil {
			l.cfg.Stats.textKeysRefused.Add(1)
		}
		return l.fail(req, loginFail(LoginInitiatorError, "%d keys in one request, at most %d", len(pairs), max))
	}
	out, lerr := l.process(req, pairs)
	if lerr != nil {
		return l.fail(req, lerr)
	}
	l.out = out
	return l.respond(req)
}

// checkHeader validates the login request header against the login so
// far and records the session identity from the first request.
func (l *login) checkHeader(req *LoginRequest) *LoginError {
	if !l.started {
		l.started = true
		l.isid, l.tsih, l.cid = req.ISID, req.TSIH, req.CID
		l.verMax, l.verMin = req.VersionMax, req.VersionMin
		l.stage = req.CSG
		// The first response starts this connection's StatSN (RFC 7143
		// 11.13.4); continuing from the initiator's ExpStatSN keeps a
		// restarted connection's numbering, and is as good as any value
		// for a new one.
		l.statSN = req.ExpStatSN
		// RFC 7143 11.12.4: the target must support a version in
		// [Version-min, Version-max]; only version 0 exists.
		if req.VersionMin > loginVersion || req.VersionMax < req.VersionMin {
			return loginFail(LoginUnsupportedVersion, "version range %d..%d does not include %d", req.VersionMin, req.VersionMax, loginVersion)
		}
		switch req.CSG {
		case StageSecurity:
		case StageOperational:
			l.skippedSecurity = true
		default:
			return loginFail(LoginInitiatorError, "first login request in stage %s", req.CSG)
		}
	} else {
		// RFC 7143 11.12.5: ISID, TSIH and CID identify the connection
		// being logged in; they cannot change within its login.
		if req.ISID != l.isid || req.TSIH != l.tsih || req.CID != l.cid {
			return loginFail(LoginInitiatorError, "ISID/TSIH/CID changed during login")
		}
		// RFC 7143 11.12.4: "All Login Requests within the Login Phase
		// MUST carry the same Version-max" (and Version-min).
		if req.VersionMax != l.verMax || req.VersionMin != l.verMin {
			return loginFail(LoginInitiatorError, "version range changed during login")
		}
		if req.CSG != l.stage {
			return loginFail(LoginInitiatorError, "request in stage %s, login is in stage %s", req.CSG, l.stage)
		}
	}
	// RFC 7143 11.12.2: "A Login Request with the C bit set to 1 MUST
	// have the T bit set to 0."
	if req.Continue && req.Transit {
		return loginFail(LoginInitiatorError, "login request with both C and T bits")
	}
	if req.Transit {
		// RFC 7143 11.12.3: the next stage must follow the current one;
		// from the operational stage only the full feature phase follows.
		ok := req.NSG == StageFullFeature || (req.CSG == StageSecurity && req.NSG == StageOperational)
		if !ok {
			return loginFail(LoginInitiatorError, "transit from %s to %s", req.CSG, req.NSG)
		}
	}
	return nil
}

// base returns a successful response to req without data, flags or stage
// change; it carries the current StatSN.
func (l *login) base(req *LoginRequest) *LoginResponse {
	r := &LoginResponse{
		CSG:           l.stage,
		VersionMax:    loginVersion,
		VersionActive: loginVersion,
		ISID:          req.ISID,
		TSIH:          req.TSIH,
		ITT:           req.ITT,
	}
	r.StatSN = l.statSN
	// Login requests are immediate (RFC 7143 11.12.7, "I" always 1): the
	// CmdSN they carry is the next one expected.
	r.ExpCmdSN = req.CmdSN
	r.MaxCmdSN = req.CmdSN + l.window - 1
	return r
}

// fail records lerr and returns the failure response.
func (l *login) fail(req *LoginRequest, lerr *LoginError) (*LoginResponse, bool, error) {
	l.failed = lerr
	// The connection logs the returned error; this adds the stage.
	l.log.Debug().Stringer("stage", l.stage).Stringer("status", lerr.Status).
		Str("reason", lerr.Reason).Msg("login rejected")
	return l.failure(req, lerr), false, lerr
}

// failure builds the response of a failed login: status only, no keys
// (RFC 7143 11.13.5), nothing revealing which check failed.
func (l *login) failure(req *LoginRequest, lerr *LoginError) *LoginResponse {
	r := l.base(req)
	r.CSG = req.CSG & 3
	r.Status = lerr.Status
	return r
}

// respond sends the next part of l.out and, once all is sent, decides
// whether to transit.
func (l *login) respond(req *LoginRequest) (*LoginResponse, bool, error) {
	resp := l.base(req)
	n := min(len(l.out), l.outLimit)
	resp.Data = l.out[:n:n]
	l.out = l.out[n:]
	if len(l.out) > 0 {
		// RFC 7143 11.13.7: "A Login Response with the C bit set to 1
		// MUST have the T bit set to 0."
		resp.Continue = true
		l.statSN++
		return resp, false, nil
	}
	l.out = nil
	transit, lerr := l.canTransit(req)
	if lerr != nil {
		return l.fail(req, lerr)
	}
	if !transit {
		l.statSN++
		return resp, false, nil
	}
	resp.Transit = true
	resp.NSG = req.NSG
	if req.NSG != StageFullFeature {
		l.stage = req.NSG
		l.statSN++
		return resp, false, nil
	}
	tsih, lerr := l.commit(req)
	if lerr != nil {
		return l.fail(req, lerr)
	}
	resp.TSIH = tsih
	l.statSN++
	l.res.StatSN = l.statSN
	l.done = true
	l.log.Debug().Str("initiator", l.initiator).Bool("discovery", l.discovery).
		Uint16("tsih", tsih).Msg("login complete")
	return resp, true, nil
}

// canTransit decides whether the target agrees to leave the current
// stage. RFC 7143 11.13.3: "the T bit MUST NOT be set to 1 if the T bit
// in the request was set to 0."
func (l *login) canTransit(req *LoginRequest) (bool, *LoginError) {
	if !req.Transit {
		return false, nil
	}
	if !l.identified {
		// Only possible when the first key set has not been seen,
		// which the C bit rules out (C=1 forbids T=1).
		return false, loginFail(LoginMissingParameter, "transit before the initiator identified itself")
	}
	if l.stage == StageSecurity && !l.authDone() {
		if l.chap != nil && l.chap.phase != chapDone {
			// The exchange is under way: our response asks for more.
			return false, nil
		}
		return false, loginFail(LoginAuthFailure, "initiator left the security stage without authenticating")
	}
	return true, nil
}

// authDone reports whether the security requirements are met.
func (l *login) authDone() bool {
	if l.creds == nil {
		return l.auth != authCHAP
	}
	return l.authenticated
}

// commit completes the result and registers the session.
func (l *login) commit(req *LoginRequest) (uint16, *LoginError) {
	if !l.authDone() {
		return 0, loginFail(LoginAuthFailure, "full feature phase requested without authentication")
	}
	l.res = loginResult{
		Discovery:      l.discovery,
		InitiatorName:  l.initiator,
		InitiatorAlias: l.initiatorAlias,
		Target:         l.target,
		ISID:           l.isid,
		TSIH:           l.tsih,
		CID:            l.cid,
		Params:         l.neg.final(l.declaredRecv),
		ExpCmdSN:       req.CmdSN,
	}
	if l.cfg.Commit == nil {
		tsih := l.tsih
		if tsih == 0 {
			tsih = 1
		}
		return tsih, nil
	}
	tsih, st := l.cfg.Commit(&l.res)
	if st != LoginSuccess {
		return 0, loginFail(st, "session registration refused")
	}
	if tsih == 0 {
		return 0, loginFail(LoginTargetError, "session registration returned TSIH 0")
	}
	return tsih, nil
}

// process handles one complete key set and returns the response text.
func (l *login) process(req *LoginRequest, pairs []textPair) ([]byte, *LoginError) {
	// Identity keys may be repeated with the same value (some initiators
	// resend them); every other key may be sent once per login:
	// RFC 7143 6.2: "An attempt to renegotiate/redeclare parameters not
	// specifically allowed MUST be detected by the initiator and target.
	// If such an attempt is detected by the target, the target MUST
	// respond with Login reject (initiator error)".
	for _, p := range pairs {
		switch p.Key {
		case keyInitiatorName, keyTargetName, keySessionType, keyInitiatorAlias:
			if prev, ok := l.identity[p.Key]; ok && prev != p.Value {
				return nil, loginFail(LoginInitiatorError, "%s changed during login", p.Key)
			}
			l.identity[p.Key] = p.Value
			continue
		}
		if isAnswerValue(p.Value) {
			continue
		}
		if _, dup := l.seen[p.Key]; dup {
			return nil, loginFail(LoginInitiatorError, "key %s sent twice", textQuote(p.Key))
		}
		l.seen[p.Key] = struct{}{}
	}
	var out []byte
	if !l.identified {
		if lerr := l.identify(); lerr != nil {
			return nil, lerr
		}
		if !l.discovery {
			// RFC 7143 13.9: the target reports its portal group tag in
			// the first Login Response of a normal session.
			out = appendTextPair(out, keyTargetPortalGroup, strconv.Itoa(int(l.tpgt())))
			if l.target.Alias != "" {
				out = appendTextPair(out, keyTargetAlias, l.target.Alias)
			}
			l.sentTPGT = true
		}
	}

	chapKeys := map[string]string{}
	operational := false
	var firstBurst *textPair
	for i := range pairs {
		p := &pairs[i]
		if isAnswerValue(p.Value) {
			// An answer to an offer the target never made: nothing to do.
			continue
		}
		switch p.Key {
		case keyInitiatorName, keyTargetName, keySessionType:
			continue
		case keyInitiatorAlias:
			l.initiatorAlias = strings.ToValidUTF8(p.Value, "?")
			continue
		case keyTargetAlias, keyTargetAddress, keyTargetPortalGroup:
			// RFC 7143 13: "Senders: Target".
			return nil, loginFail(LoginInitiatorError, "initiator sent target key %s", p.Key)
		case keySendTargets:
			// RFC 7143 13.3: SendTargets is used in full feature phase only.
			out = appendTextPair(out, p.Key, textReject)
			continue
		case keyAuthMethod:
			a, lerr := l.negotiateAuth(p.Value)
			if lerr != nil {
				return nil, lerr
			}
			out = appendTextPair(out, p.Key, a)
			continue
		case keyCHAPA, keyCHAPI, keyCHAPC, keyCHAPN, keyCHAPR:
			chapKeys[p.Key] = p.Value
			continue
		case keyFirstBurstLength:
			// Negotiated after MaxBurstLength, InitialR2T and
			// ImmediateData, which it depends on.
			firstBurst = p
			continue
		}
		operational = true
		a, respond, err := l.neg.negotiate(p.Key, p.Value)
		if err != nil {
			return nil, loginFail(LoginInitiatorError, "%v", err)
		}
		if respond {
			out = appendTextPair(out, p.Key, a)
		}
	}
	if firstBurst != nil {
		operational = true
		a, respond, err := l.neg.negotiate(firstBurst.Key, firstBurst.Value)
		if err != nil {
			return nil, loginFail(LoginInitiatorError, "%v", err)
		}
		if respond {
			out = appendTextPair(out, firstBurst.Key, a)
		}
	}
	if l.neg.declaredXmit {
		// The initiator's declaration also bounds our login responses.
		l.outLimit = int(min(l.neg.params.MaxXmitDataSegmentLength, textLoginMaxSegment))
	}

	if len(chapKeys) > 0 || l.chap != nil && l.chap.phase == chapWantAlgorithm {
		pairs, lerr := l.stepCHAP(chapKeys)
		if lerr != nil {
			return nil, lerr
		}
		for _, p := range pairs {
			out = appendTextPair(out, p.Key, p.Value)
		}
	}

	// RFC 7143 13.12: the target declares its MaxRecvDataSegmentLength;
	// it does so once operational keys are exchanged.
	if l.declaredRecv == 0 && (l.stage == StageOperational || operational) {
		l.declaredRecv = l.prefs.MaxRecvDataSegmentLength
		out = appendTextPair(out, keyMaxRecvDSL, strconv.FormatUint(uint64(l.declaredRecv), 10))
	}
	if l.log.GetLevel() <= zerolog.DebugLevel {
		l.log.Debug().Str("stage", l.stage.String()).Strs("keys", loggableKeys(pairs)).
			Strs("answers", loggableText(out)).Msg("login negotiation")
	}
	return out, nil
}

// tpgt returns the portal group tag of the connection's portal.
func (l *login) tpgt() uint16 {
	if l.cfg.Portal == nil || l.cfg.Portal.Group == 0 {
		return 1
	}
	return l.cfg.Portal.Group
}

// identify checks the identity keys of the first complete request.
func (l *login) identify() *LoginError {
	l.identified = true
	// RFC 7143 13.5: "The InitiatorName key ... MUST be provided by the
	// initiator of the TCP connection to the remote endpoint in the first
	// Login Request".
	name, ok := l.identity[keyInitiatorName]
	if !ok {
		return loginFail(LoginMissingParameter, "no InitiatorName in the first login request")
	}
	norm, err := NormalizeName(name)
	if err != nil {
		return loginFail(LoginInitiatorError, "InitiatorName: %v", err)
	}
	l.initiator = norm
	if a, ok := l.identity[keyInitiatorAlias]; ok {
		l.initiatorAlias = strings.ToValidUTF8(a, "?")
	}
	l.log = l.log.With().Str("initiator", norm).Str("isid", l.isid.String()).Logger()

	// RFC 7143 13.21: SessionType defaults to Normal.
	st, ok := l.identity[keySessionType]
	if !ok {
		st = "Normal"
		l.identity[keySessionType] = st
	}
	switch st {
	case "Discovery":
		l.discovery = true
	case "Normal":
	default:
		return loginFail(LoginSessionTypeUnsupported, "SessionType %s", textQuote(st))
	}
	var cfg Config
	if l.cfg.Config != nil {
		cfg = *l.cfg.Config
	}
	if l.discovery {
		// RFC 7143 13.4: TargetName is for normal sessions; a discovery
		// session ignores it.
		l.creds = cfg.discoveryCHAP()
	} else {
		// RFC 7143 13.4: "TargetName ... MUST be provided by the initiator
		// of the TCP connection to the remote endpoint in the first Login
		// Request if SessionType=Normal."
		tn, ok := l.identity[keyTargetName]
		if !ok {
			return loginFail(LoginMissingParameter, "no TargetName in the first login request of a normal session")
		}
		tnorm, err := NormalizeName(tn)
		if err != nil {
			return loginFail(LoginNotFound, "TargetName: %v", err)
		}
		var t *Target
		if cfg.Targets != nil {
			t, ok = cfg.Targets.Target(tnorm)
		}
		if t == nil || !ok {
			return loginFail(LoginNotFound, "no target %s", textQuote(tnorm))
		}
		if l.cfg.Portal != nil && !t.onGroup(l.cfg.Portal.Group) {
			return loginFail(LoginNotFound, "target %s is not on portal group %d", textQuote(tnorm), l.cfg.Portal.Group)
		}
		acc := t.access(norm)
		if !acc.Allowed {
			return loginFail(LoginAuthorizationFailure, "initiator may not access target %s", textQuote(tnorm))
		}
		l.target = t
		l.creds = acc.CHAP
		l.log = l.log.With().Str("target", tnorm).Logger()
	}
	if l.skippedSecurity && l.creds != nil {
		return loginFail(LoginAuthFailure, "security stage skipped but CHAP is required")
	}
	l.neg = newNegotiator(l.prefs, l.discovery, l.target)
	return nil
}

// negotiateAuth answers AuthMethod (RFC 7143 12): CHAP when credentials
// are configured (anything else fails the login), None otherwise.
func (l *login) negotiateAuth(value string) (string, *LoginError) {
	if l.stage != StageSecurity {
		return "", loginFail(LoginInitiatorError, "AuthMethod outside the security stage")
	}
	items, ok := parseTextList(value)
	if !ok {
		if l.creds != nil {
			return "", loginFail(LoginAuthFailure, "malformed AuthMethod %s", textQuote(value))
		}
		return textReject, nil
	}
	want := textNone
	if l.creds != nil {
		want = "CHAP"
	}
	for _, it := range items {
		if it != want {
			continue
		}
		if l.creds != nil {
			l.auth = authCHAP
			l.chap = newCHAPAuth(l.creds, l.cfg.rand)
		} else {
			l.auth = authNone
		}
		return want, nil
	}
	if l.creds != nil {
		// RFC 7143 11.13.5, 0201: "The initiator could not be
		// successfully authenticated".
		return "", loginFail(LoginAuthFailure, "CHAP required, initiator offered AuthMethod=%s", textQuote(value))
	}
	// RFC 7143 6.2.1: no offered value is acceptable.
	return textReject, nil
}

// stepCHAP runs one step of the CHAP exchange.
func (l *login) stepCHAP(keys map[string]string) ([]textPair, *LoginError) {
	if l.stage != StageSecurity {
		return nil, loginFail(LoginAuthFailure, "CHAP keys outside the security stage")
	}
	if l.auth != authCHAP || l.chap == nil {
		return nil, loginFail(LoginAuthFailure, "CHAP keys without AuthMethod=CHAP")
	}
	verifying := l.chap.phase == chapWantResponse && len(keys) > 0
	if verifying && l.cfg.Auth != nil {
		if lerr := l.throttle(); lerr != nil {
			return nil, lerr
		}
	}
	pairs, err := l.chap.step(keys)
	if err != nil {
		var cf *chapFailure
		if errors.As(err, &cf) {
			if cf.guess && l.cfg.Auth != nil {
				l.authFailed(cf.reason)
			}
			return nil, loginFail(LoginAuthFailure, "%s", cf.reason)
		}
		return nil, loginFail(LoginTargetError, "%v", err)
	}
	if verifying && l.chap.phase == chapDone && l.cfg.Auth != nil {
		l.cfg.Auth.succeed(l.initiator)
	}
	if l.chap.phase == chapDone {
		l.authenticated = true
		l.log.Debug().Stringer("algorithm", l.chap.alg).Bool("mutual", len(pairs) > 0).Msg("CHAP authentication succeeded")
	}
	return pairs, nil
}

// throttle applies the authentication throttle before the initiator's
// CHAP response is judged: the answer waits for earlier failures of this
// source or name (whatever this attempt's verdict, so its timing tells
// nothing), and a locked-out source or name fails at once (after the
// longest wait).
func (l *login) throttle() *LoginError {
	a, st := l.cfg.Auth, l.cfg.Stats
	delay, until := a.check(l.cfg.Source, l.initiator)
	if !until.IsZero() {
		l.delay = a.cfg.MaxDelay
		if st != nil {
			st.authLockedOut.Add(1)
			if ok, n := st.logAuth.allow(); ok {
				l.log.Warn().Stringer("source", l.cfg.Source).Time("until", until).Uint64("suppressed", n).
					Msg("CHAP login refused: source or initiator locked out after repeated failures")
			}
		}
		return loginFail(LoginAuthFailure, "locked out until %s after repeated authentication failures", until.Format(time.RFC3339))
	}
	if delay > 0 {
		l.delay = delay
		if st != nil {
			st.authDelayed.Add(1)
		}
	}
	return nil
}

// authFailed counts a failed CHAP response against the source and the
// initiator name.
func (l *login) authFailed(reason string) {
	l.cfg.Config.chapFailed(l)
	locked := l.cfg.Auth.fail(l.cfg.Source, l.initiator)
	st := l.cfg.Stats
	if st == nil {
		return
	}
	st.authFailures.Add(1)
	if locked {
		st.authLockouts.Add(1)
	}
	if ok, n := st.logAuth.allow(); ok || locked {
		l.log.Warn().Stringer("source", l.cfg.Source).Str("reason", reason).Bool("locked_out", locked).
			Uint64("suppressed", n).Msg("CHAP authentication failed")
	}
}

// loggableKeys lists key=value strings for debug logs with CHAP values
// withheld.
func loggableKeys(pairs []textPair) []string {
	s := make([]string, 0, len(pairs))
	for _, p := range pairs {
		s = append(s, loggablePair(p.Key, p.Value))
	}
	return s
}

// loggableText is loggableKeys for encoded text we produced.
func loggableText(text []byte) []string {
	pairs, err := parseText(text)
	if err != nil {
		return []string{"<unparsable>"}
	}
	return loggableKeys(pairs)
}

func loggablePair(k, v string) string {
	if strings.HasPrefix(k, "CHAP_") && k != keyCHAPA && k != keyCHAPN {
		return k + "=<withheld>"
	}
	if len(v) > textQuoteMax {
		v = v[:textQuoteMax] + "..."
	}
	return k + "=" + v
}
