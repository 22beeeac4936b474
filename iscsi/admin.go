package iscsi

import (
	"errors"
	"sync"
	"time"
)

// What the gateway around the engine needs to run it as a service: event
// hooks for metrics, a listing of the live sessions with what they
// negotiated, logout requests (RFC 7143 11.9.1, AsyncEvent 1) for
// sessions that lost access or for a graceful stop, a stop of new logins,
// and portals that change at run time (see [PortalSet]).

// Hooks are callbacks the engine makes on session and login events (for
// metrics and logs). Any may be nil. They run on the connection's
// goroutine: they must not block.
type Hooks struct {
	// SessionStarted is called when a session (normal or discovery)
	// reached full feature phase, before its first command runs.
	SessionStarted func(SessionDetail)
	// SessionEnded is called once for each SessionStarted, when the
	// session ended (after the handler's Detach).
	SessionEnded func(SessionDetail)
	// LoginFailed is called when a login was refused with a Login
	// Response status: target is the target asked for ("" for discovery
	// sessions and logins that never named one that exists).
	LoginFailed func(target string, status LoginStatus)
	// CHAPFailed is called when an initiator's CHAP response did not
	// verify; target is "" for discovery sessions. The CHAP user name is
	// not passed on.
	CHAPFailed func(target string)
}

// PortalSet is implemented by a [Targets] whose portals change at run
// time: discovery sessions then advertise Portals() rather than
// Config.Portals. Portals must be safe for concurrent use.
type PortalSet interface {
	Portals() []Portal
}

// SessionDetail describes a live session for admin listings.
type SessionDetail struct {
	SessionInfo
	// Local is the connection's local address; Portal the portal it came
	// in through.
	Local  string
	Portal Portal
	// InitiatorAlias is the InitiatorAlias the initiator sent, if any.
	InitiatorAlias string
	// Params are the negotiated operational parameters.
	Params Params
	// Started is when the session reached full feature phase.
	Started time.Time
	// LogoutRequested is when the target asked the initiator to log out
	// (zero when it did not).
	LogoutRequested time.Time
}

// adminState is the server's bookkeeping for the admin API: the started
// sessions (normal and discovery) and the logout requests under way.
type adminState struct {
	mu       sync.Mutex
	sessions map[*session]*sessionAdmin
}

type sessionAdmin struct {
	detail SessionDetail
	drop   *time.Timer // ends the session when the logout request is not honoured
}

// sessionStarted records a session whose login is about to succeed (the
// final Login Response goes out next).
func (s *Server) sessionStarted(c *conn, r *loginResult) {
	ss := c.ss
	d := SessionDetail{
		SessionInfo:    SessionInfo{Nexus: ss.nexus, Discovery: ss.discovery, Remote: c.nc.RemoteAddr().String()},
		Local:          c.nc.LocalAddr().String(),
		InitiatorAlias: r.InitiatorAlias,
		Params:         r.Params,
		Started:        time.Now(),
	}
	if c.portal != nil {
		d.Portal = *c.portal
	}
	a := &s.admin
	a.mu.Lock()
	if a.sessions == nil {
		a.sessions = make(map[*session]*sessionAdmin)
	}
	a.sessions[ss] = &sessionAdmin{detail: d}
	a.mu.Unlock()
	if h := s.cfg.Hooks.SessionStarted; h != nil {
		h(d)
	}
}

// sessionEnded forgets a session that ended.
func (s *Server) sessionEnded(ss *session) {
	a := &s.admin
	a.mu.Lock()
	sa := a.sessions[ss]
	delete(a.sessions, ss)
	a.mu.Unlock()
	if sa == nil {
		return
	}
	if sa.drop != nil {
		sa.drop.Stop()
	}
	if h := s.cfg.Hooks.SessionEnded; h != nil {
		h(sa.detail)
	}
}

// loginFailed reports a refused login to the hooks.
func (s *Server) loginFailed(l *login, err error) {
	h := s.cfg.Hooks.LoginFailed
	var le *LoginError
	if h == nil || !errors.As(err, &le) {
		return
	}
	target := ""
	if l.target != nil {
		target = l.target.Name
	}
	h(target, le.Status)
}

// chapFailed reports a failed CHAP verification to the hooks; c may be
// nil (tests drive logins without a server).
func (c *Config) chapFailed(l *login) {
	if c == nil || c.Hooks.CHAPFailed == nil {
		return
	}
	target := ""
	if l.target != nil {
		target = l.target.Name
	}
	c.Hooks.CHAPFailed(target)
}

// DiscoveryAuth is implemented by a [Targets] whose discovery CHAP
// changes at run time: discovery logins then require DiscoveryCHAP()
// rather than Config.DiscoveryCHAP. It must be safe for concurrent use.
type DiscoveryAuth interface {
	DiscoveryCHAP() *CHAPSecret
}

// discoveryCHAP returns the credentials discovery sessions need.
func (c *Config) discoveryCHAP() *CHAPSecret {
	if d, ok := c.Targets.(DiscoveryAuth); ok {
		return d.DiscoveryCHAP()
	}
	return c.DiscoveryCHAP
}

// portals returns the portals discovery advertises.
func (c *Config) portals() []Portal {
	if ps, ok := c.Targets.(PortalSet); ok {
		return ps.Portals()
	}
	return c.Portals
}

// SessionDetails lists the live sessions, normal and discovery, with the
// commands each has in flight.
func (s *Server) SessionDetails() []SessionDetail {
	a := &s.admin
	a.mu.Lock()
	out := make([]SessionDetail, 0, len(a.sessions))
	sess := make([]*session, 0, len(a.sessions))
	for ss, sa := range a.sessions {
		out = append(out, sa.detail)
		sess = append(sess, ss)
	}
	a.mu.Unlock()
	for i, ss := range sess {
		ss.mu.Lock()
		out[i].Tasks = len(ss.tasks)
		ss.mu.Unlock()
		out[i].Nexus.TSIH = ss.tsih
	}
	return out
}

// RequestLogout asks every live session that match selects to log out,
// with an Asynchronous Message "logout request" (RFC 7143 11.9.1,
// AsyncEvent 1) whose Parameter3, the time the initiator has to log out,
// is the session's DefaultTime2Wait (at least one second). A session
// still there after that time is ended (its connection dropped) once it
// has no command in flight, or logoutGrace after the request at the
// latest, so that commands that reached a device are answered; one
// already asked is not asked again. It returns how many sessions it
// asked.
func (s *Server) RequestLogout(match func(SessionDetail) bool) int {
	a := &s.admin
	type req struct {
		ss   *session
		wait time.Duration
	}
	var reqs []req
	a.mu.Lock()
	for ss, sa := range a.sessions {
		if !sa.detail.LogoutRequested.IsZero() || !match(sa.detail) {
			continue
		}
		sa.detail.LogoutRequested = time.Now()
		wait := time.Duration(max(sa.detail.Params.DefaultTime2Wait, 1)) * time.Second
		asked := sa.detail.LogoutRequested
		sa.drop = time.AfterFunc(wait, func() {
			a.mu.Lock()
			live := a.sessions[ss] == sa
			a.mu.Unlock()
			ss.mu.Lock()
			busy := len(ss.tasks) > 0
			ss.mu.Unlock()
			if live && busy && time.Since(asked) < logoutGrace {
				a.mu.Lock()
				sa.drop.Reset(logoutRecheck)
				a.mu.Unlock()
				return
			}
			if live {
				s.log.Info().Str("initiator", ss.nexus.InitiatorName).Stringer("isid", ss.nexus.ISID).
					Str("target", ss.nexus.TargetName).Msg("no logout after the logout request: dropping the connection")
				ss.terminate()
			}
		})
		reqs = append(reqs, req{ss, wait})
	}
	a.mu.Unlock()
	for _, r := range reqs {
		c := r.ss.conn
		if c == nil || c.out == nil {
			continue
		}
		// s.log, not c.log: the connection replaces its logger at login,
		// on its own goroutine.
		s.log.Info().Str("initiator", r.ss.nexus.InitiatorName).Stringer("isid", r.ss.nexus.ISID).
			Dur("within", r.wait).Msg("asking the initiator to log out")
		// RFC 7143 11.9.1: "Parameter3 indicates the time limit for the
		// logout"; the message carries a StatSN like a response.
		c.enqueue(outItem{kind: itemPDU, stat: true, p: &AsyncMessage{
			LUN:        LUN{},
			Event:      AsyncLogoutRequest,
			Parameter3: uint16(r.wait / time.Second),
		}})
	}
	return len(reqs)
}

// logoutGrace bounds how long a session asked to log out is kept past
// its DefaultTime2Wait for the commands it has in flight;
// logoutRecheck is how often it is looked at meanwhile.
const (
	logoutGrace   = 30 * time.Second
	logoutRecheck = 100 * time.Millisecond
)

// StopLogins stops accepting connections and logins: the listeners
// close, and a login in progress fails with "service unavailable".
// Sessions already in full feature phase go on until Shutdown (a
// graceful stop asks them to log out first, see RequestLogout).
func (s *Server) StopLogins() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
}
