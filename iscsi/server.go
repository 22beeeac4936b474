package iscsi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("iscsi: server closed")

// sessionKey identifies a session for reinstatement (RFC 7143 6.3.5):
// the same initiator port (name + ISID) logging in to the same target.
type sessionKey struct {
	initiator string
	isid      ISID
	target    string
}

// Server is an iSCSI target server: it listens on portals, runs logins,
// and serves sessions until shut down.
type Server struct {
	cfg Config
	log zerolog.Logger

	baseCtx context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	sessions  map[sessionKey]*session
	nextTSIH  uint16
	closed    bool
	wg        sync.WaitGroup

	mem   memBudget // command data budget
	pool  bufPool   // data buffers
	tasks sync.Pool // *task
	lim   limitCounters
	auth  *authThrottle
	admin adminState // started sessions, logout requests (admin.go)

	// Sessions by initiator name and in total (normal and discovery),
	// and connections still logging in, in total and by source; under mu.
	nsessions int
	byInit    map[string]int
	npending  int
	bySource  map[netip.Prefix]int
}

// NewServer returns a server for cfg. It does not listen yet.
func NewServer(cfg Config) (*Server, error) {
	c := cfg.withDefaults()
	p := c.Preferences
	if p.MaxRecvDataSegmentLength < 512 || p.MaxRecvDataSegmentLength > maxDataSegment {
		return nil, fmt.Errorf("iscsi: MaxRecvDataSegmentLength %d outside 512..16777215", p.MaxRecvDataSegmentLength)
	}
	if p.FirstBurstLength > p.MaxBurstLength {
		return nil, fmt.Errorf("iscsi: FirstBurstLength %d exceeds MaxBurstLength %d", p.FirstBurstLength, p.MaxBurstLength)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       c,
		log:       c.Log,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		sessions:  make(map[sessionKey]*session),
		nextTSIH:  1,
		byInit:    make(map[string]int),
		bySource:  make(map[netip.Prefix]int),
		mem:       *newMemBudget(&c.Limits),
	}
	s.pool.mem = &s.mem
	s.auth = newAuthThrottle(c.Limits.Auth, time.Now)
	return s, nil
}

// Listen opens a listener for every configured portal. It returns the
// listeners in portal order; the caller runs Serve on each.
func (s *Server) Listen(ctx context.Context) ([]net.Listener, error) {
	var lc net.ListenConfig
	var ls []net.Listener
	for _, p := range s.cfg.Portals {
		l, err := lc.Listen(ctx, listenNetwork(p.Listen), p.Listen)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, fmt.Errorf("iscsi: listen on portal %s: %w", p.Listen, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// listenNetwork keeps an IPv4 portal IPv4-only: Go's "tcp" would bind
// 0.0.0.0 dual-stack, exposing the portal on IPv6 addresses too.
func listenNetwork(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "tcp"
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() != nil {
			return "tcp4"
		}
		return "tcp6"
	}
	return "tcp"
}

// ListenAndServe listens on every portal and serves until ctx is done or
// a listener fails; see ServeListeners.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ls, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.ServeListeners(ctx, ls)
}

// ServeListeners serves the listeners Listen returned (listener i for
// portal i) until ctx is done or one of them fails, then shuts down
// gracefully, bounded by 10 s.
func (s *Server) ServeListeners(ctx context.Context, ls []net.Listener) error {
	errc := make(chan error, len(ls))
	for i, l := range ls {
		p := &s.cfg.Portals[i]
		go func() { errc <- s.Serve(l, p) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, ErrServerClosed) {
			err = nil
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := s.Shutdown(sctx); err == nil && serr != nil {
		err = fmt.Errorf("iscsi: shutdown: %w", serr)
	}
	return err
}

// Serve accepts connections on l for portal p until Shutdown.
func (s *Server) Serve(l net.Listener, p *Portal) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.log.Info().Str("portal", l.Addr().String()).Uint16("tpgt", p.Group).Msg("listening")
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("iscsi: accept: %w", err)
		}
		delay = 0
		c := newConn(s, nc, p)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if !s.admitConnLocked(c) {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve(s.baseCtx)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops listening, closes every connection (ending their
// sessions and aborting their tasks) and waits for them, or returns
// ctx's error when it expires first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.pool.stop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SessionInfo describes a live session (for metrics and admin tools).
type SessionInfo struct {
	Nexus     Nexus
	Discovery bool
	Remote    string
	Tasks     int
}

// Sessions lists the live sessions.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for _, ss := range s.sessions {
		out = append(out, ss.info())
	}
	return out
}

// registerSession adds a session for r, reinstating (closing) an older
// session of the same initiator port and target. It returns the TSIH.
func (s *Server) registerSession(ss *session) (uint16, LoginStatus) {
	if ss.discovery {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.countSessionLocked(ss, nil) {
			return 0, LoginOutOfResources
		}
		ss.tsih = s.allocTSIH()
		return ss.tsih, LoginSuccess
	}
	key := ss.key()
	s.mu.Lock()
	old := s.sessions[key]
	if s.closed {
		s.mu.Unlock()
		return 0, LoginServiceUnavailable
	}
	s.mu.Unlock()
	if old != nil {
		// RFC 7143 6.3.5: session reinstatement closes the old session's
		// connections and terminates its tasks before the new one starts.
		s.log.Info().Str("initiator", key.initiator).Stringer("isid", key.isid).Msg("reinstating session")
		old.terminate()
		wctx, cancel := context.WithTimeout(s.baseCtx, 10*time.Second)
		err := old.wait(wctx)
		cancel()
		if err != nil {
			return 0, LoginServiceUnavailable
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.sessions[key]; cur != nil && cur != old {
		// Another login for the same nexus won the race.
		return 0, LoginServiceUnavailable
	}
	if !s.countSessionLocked(ss, s.sessions[key]) {
		return 0, LoginOutOfResources
	}
	ss.tsih = s.allocTSIH()
	ss.nexus.TSIH = ss.tsih
	s.sessions[key] = ss
	return ss.tsih, LoginSuccess
}

func (s *Server) allocTSIH() uint16 {
	for {
		t := s.nextTSIH
		s.nextTSIH++
		if s.nextTSIH == 0 {
			s.nextTSIH = 1
		}
		if t == 0 {
			continue
		}
		inUse := false
		for _, ss := range s.sessions {
			if ss.tsih == t {
				inUse = true
				break
			}
		}
		if !inUse {
			return t
		}
	}
}

func (s *Server) unregisterSession(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.counted {
		ss.counted = false
		s.nsessions--
		if s.byInit[ss.nexus.InitiatorName]--; s.byInit[ss.nexus.InitiatorName] <= 0 {
			delete(s.byInit, ss.nexus.InitiatorName)
		}
	}
	if ss.discovery {
		return
	}
	if s.sessions[ss.key()] == ss {
		delete(s.sessions, ss.key())
	}
}

// countSessionLocked counts ss among the live sessions unless that
// would exceed MaxSessions or MaxSessionsPerInitiator; replaced is a
// session it reinstates, whose place it may take. s.mu held.
func (s *Server) countSessionLocked(ss, replaced *session) bool {
	l := &s.cfg.Limits
	n, mine := s.nsessions, s.byInit[ss.nexus.InitiatorName]
	if replaced != nil && replaced.counted {
		n, mine = n-1, mine-1
	}
	if n >= l.MaxSessions || mine >= l.MaxSessionsPerInitiator {
		s.lim.sessionsRefused.Add(1)
		if ok, sup := s.lim.logSessions.allow(); ok {
			s.log.Warn().Str("initiator", ss.nexus.InitiatorName).Int("sessions", n).Int("of_initiator", mine).
				Int("max_sessions", l.MaxSessions).Int("max_per_initiator", l.MaxSessionsPerInitiator).
				Uint64("suppressed", sup).Msg("login refused: too many sessions")
		}
		return false
	}
	ss.counted = true
	s.nsessions++
	s.byInit[ss.nexus.InitiatorName]++
	return true
}

// sourcePrefix is what connections are counted by: the address, or its
// /64 for IPv6 (one host typically has a whole /64).
func sourcePrefix(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admitConnLocked counts a new connection among those logging in, or
// refuses it when MaxPendingLogins or MaxPendingLoginsPerSource is
// reached. s.mu held.
func (s *Server) admitConnLocked(c *conn) bool {
	l := &s.cfg.Limits
	src := sourcePrefix(c.nc.RemoteAddr())
	if s.npending >= l.MaxPendingLogins || s.bySource[src] >= l.MaxPendingLoginsPerSource {
		s.lim.pendingRefused.Add(1)
		if ok, sup := s.lim.logPending.allow(); ok {
			s.log.Warn().Stringer("source", src).Int("pending", s.npending).Int("from_source", s.bySource[src]).
				Int("max_pending", l.MaxPendingLogins).Int("max_per_source", l.MaxPendingLoginsPerSource).
				Uint64("suppressed", sup).Msg("connection refused: too many logins in progress")
		}
		return false
	}
	s.npending++
	s.bySource[src]++
	c.pending = src
	c.isPending = true
	return true
}

// loginEnded stops counting the connection among those logging in.
func (s *Server) loginEnded(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.isPending {
		return
	}
	c.isPending = false
	s.npending--
	if s.bySource[c.pending]--; s.bySource[c.pending] <= 0 {
		delete(s.bySource, c.pending)
	}
}

// reopenWindows gives back the CmdSN credits withheld under memory
// pressure, now that it eased.
func (s *Server) reopenWindows() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		ss.reopen()
	}
}

// targetSessions returns the live sessions logged in to target.
func (s *Server) targetSessions(target string) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for k, ss := range s.sessions {
		if k.target == target {
			out = append(out, ss)
		}
	}
	return out
}
