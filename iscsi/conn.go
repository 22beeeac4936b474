package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// errConnClosed ends a connection quietly.
var errConnClosed = errors.New("iscsi: connection closed")

// protoError is a protocol violation that kills the connection after a
// Reject with the given reason (ErrorRecoveryLevel 0: no recovery).
type protoError struct {
	reason RejectReason
	hdr    BHS
	msg    string
}

func (e *protoError) Error() string { return "iscsi: protocol error: " + e.msg }

func protoErr(reason RejectReason, hdr *BHS, format string, args ...any) *protoError {
	return &protoError{reason: reason, hdr: *hdr, msg: fmt.Sprintf(format, args...)}
}

// itemKind says what the send loop does with an outItem.
type itemKind uint8

const (
	itemPDU      itemKind = iota // send p (responses built elsewhere)
	itemR2T                      // send r2t
	itemComplete                 // send task t's data-in and status
	itemClose                    // flush and close the connection
)

// outItem is one unit of work for the send loop.
type outItem struct {
	kind itemKind
	// stat: p consumes a StatSN (responses); otherwise it carries the
	// current StatSN without advancing it.
	stat bool
	// release: the PDU completes a non-immediate command, so the CmdSN
	// window opens by one before it is encoded.
	release bool
	// xmit, when non-zero, is a new MaxRecvDataSegmentLength the
	// initiator declared; it applies to PDUs sent after p.
	xmit uint32
	p    Outgoing
	t    *task
	r2t  R2T
}

// conn is one TCP connection. The serve goroutine reads and dispatches;
// sendLoop writes what is queued. Whoever writes holds sendMu: the send
// loop, or a worker that sends its task's completion itself because
// nothing is queued (see complete).
type conn struct {
	srv    *Server
	nc     net.Conn
	portal *Portal
	log    zerolog.Logger

	rd *Reader
	wr *Writer

	out       chan outItem
	sendMu    sync.Mutex // held to encode and write; guards wr, statSN, xmit, din, sendEnd
	sendEnd   bool       // the send loop is done: nothing more goes out
	closed    chan struct{}
	closeOnce sync.Once
	sendDone  chan struct{}

	ss     *session
	params Params
	statSN uint32 // under sendMu after login
	xmit   uint32 // initiator's MaxRecvDataSegmentLength; under sendMu
	cid    uint16

	nextTTT  uint32 // owned by the serve goroutine
	lastRecv atomic.Int64
	pingTTT  atomic.Uint32 // outstanding NOP-In ping, 0 = none
	pingSent atomic.Int64

	text *textSession

	// pending is the source the connection is counted under while it
	// logs in (isPending); under the server's mu.
	pending   netip.Prefix
	isPending bool

	// Scratch space owned by one goroutine each, kept here so the hot
	// path allocates nothing.
	cmdScratch SCSICommand // serve goroutine
	din        DataIn      // under sendMu
	cur        outItem     // send loop
	direct     outItem     // under sendMu: a completion sent by its worker
}

func newConn(srv *Server, nc net.Conn, p *Portal) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	return &conn{
		srv:      srv,
		nc:       nc,
		portal:   p,
		log:      srv.log.With().Str("remote", nc.RemoteAddr().String()).Logger(),
		rd:       NewReader(nc),
		wr:       NewWriter(nc),
		closed:   make(chan struct{}),
		sendDone: make(chan struct{}),
		nextTTT:  1,
	}
}

// close shuts the socket down, which ends both loops.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.nc.Close()
	})
}

// serve runs the connection: login, then full feature phase.
func (c *conn) serve(ctx context.Context) {
	defer c.close()
	res, err := c.login()
	c.srv.loginEnded(c)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, errConnClosed) {
			c.log.Info().Err(err).Msg("login failed")
		}
		if c.ss != nil {
			// Registered, but the final response never went out.
			c.srv.unregisterSession(c.ss)
			c.srv.sessionEnded(c.ss)
			close(c.ss.ended)
		}
		return
	}
	ss := c.ss
	defer close(ss.ended)
	c.log = c.log.With().Str("initiator", res.InitiatorName).Stringer("isid", res.ISID).Uint16("tsih", ss.tsih).Logger()
	c.log.Info().Bool("discovery", res.Discovery).Str("target", ss.nexus.TargetName).
		Bool("header_digest", c.params.HeaderDigest).Bool("data_digest", c.params.DataDigest).
		Uint32("max_recv_dsl", c.params.MaxRecvDataSegmentLength).Uint32("max_xmit_dsl", c.params.MaxXmitDataSegmentLength).
		Uint32("max_burst", c.params.MaxBurstLength).Uint32("first_burst", c.params.FirstBurstLength).
		Bool("initial_r2t", c.params.InitialR2T).Bool("immediate_data", c.params.ImmediateData).
		Msg("session established")
	defer c.srv.sessionEnded(ss)

	ss.ctx, ss.cancel = context.WithCancel(ctx)
	go c.sendLoop()
	go c.pinger()
	h := ss.handler()
	if h != nil {
		h.Attach(&ss.nexus, ss)
	}

	err = c.readLoop()
	var pe *protoError
	switch {
	case errors.As(err, &pe):
		c.log.Warn().Str("reason", pe.reason.String()).Msg(pe.msg)
		c.enqueue(outItem{kind: itemPDU, stat: true, p: &Reject{Reason: pe.reason, Header: pe.hdr}})
		c.enqueue(outItem{kind: itemClose})
	case err == nil, errors.Is(err, errConnClosed), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.log.Info().Err(err).Msg("connection ended")
	}
	// Abort whatever is left (cancelling the session context first, so
	// handlers blocked on it return), let running tasks finish, then stop.
	ss.cancel()
	c.abortAll()
	ss.taskWG.Wait()
	close(ss.work) // nothing can start a task anymore
	c.enqueue(outItem{kind: itemClose})
	select {
	case <-c.sendDone:
	case <-time.After(5 * time.Second):
	}
	c.close()
	<-c.sendDone
	c.srv.unregisterSession(ss)
	if w := ss.withheld.Swap(0); w > 0 {
		c.srv.mem.withheld.Add(-int64(w))
	}
	c.srv.mem.leave(&ss.mem)
	if h != nil {
		h.Detach(&ss.nexus)
	}
	c.log.Info().Msg("session closed")
}

// enqueue hands an item to the send loop unless the connection is gone.
func (c *conn) enqueue(it outItem) {
	select {
	case c.out <- it:
	case <-c.sendDone:
		c.discard(it)
		return
	}
	// The send loop may have ended meanwhile, after its last drain: free
	// what it left (a task may hold a device's lent buffer).
	select {
	case <-c.sendDone:
		c.drain()
	default:
	}
}

// tryEnqueue hands an item to the send loop if that does not wait: for
// announcements that later PDUs would carry anyway.
func (c *conn) tryEnqueue(it outItem) {
	select {
	case <-c.sendDone:
		return
	default:
	}
	select {
	case c.out <- it:
	default:
	}
}

// login runs the login phase with the login state machine.
func (c *conn) login() (*loginResult, error) {
	deadline := time.Now().Add(c.srv.cfg.LoginTimeout)
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	lg := newLogin(loginConfig{
		Config: &c.srv.cfg,
		Portal: c.portal,
		Log:    c.log,
		Local:  c.nc.LocalAddr(),
		Commit: c.commitLogin,
		Auth:   c.srv.auth,
		Source: sourcePrefix(c.nc.RemoteAddr()),
		Stats:  &c.srv.lim,
	})
	var f Frame
	for {
		if err := c.rd.Read(&f); err != nil {
			return nil, err
		}
		if f.BHS.Opcode() != OpLoginReq {
			// RFC 7143 6.1: only Login Requests until the login completes.
			resp := &LoginResponse{Status: LoginInvalidDuringLogin, ITT: f.BHS.ITT()}
			c.wr.Write(resp)
			c.wr.Flush()
			return nil, fmt.Errorf("iscsi: %s during login", f.BHS.Opcode())
		}
		var req LoginRequest
		req.Decode(&f.BHS)
		resp, done, err := lg.handle(&req, f.Data)
		if err != nil {
			c.srv.loginFailed(lg, err)
		}
		if d := lg.takeDelay(); d > 0 {
			// Throttled authentication: this goroutine waits (the
			// pending-login limits bound how many do), others go on.
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.closed:
				t.Stop()
				return nil, errConnClosed
			}
		}
		if resp != nil {
			if werr := c.wr.Write(resp); werr != nil {
				return nil, werr
			}
			if werr := c.wr.Flush(); werr != nil {
				return nil, werr
			}
		}
		if err != nil {
			return nil, err
		}
		if done {
			r := lg.result()
			c.params = r.Params
			c.statSN = r.StatSN
			c.xmit = r.Params.MaxXmitDataSegmentLength
			c.cid = r.CID
			c.rd.HeaderDigest = r.Params.HeaderDigest
			c.rd.DataDigest = r.Params.DataDigest
			c.rd.MaxRecvDataSegmentLength = r.Params.MaxRecvDataSegmentLength
			c.wr.HeaderDigest = r.Params.HeaderDigest
			c.wr.DataDigest = r.Params.DataDigest
			c.text = newTextSession(textConfig{
				Config:    &c.srv.cfg,
				Portal:    c.portal,
				Local:     c.nc.LocalAddr(),
				Discovery: r.Discovery,
				Initiator: r.InitiatorName,
				Target:    r.Target,
				MaxXmit:   r.Params.MaxXmitDataSegmentLength,
				Log:       c.log,
				Stats:     &c.srv.lim,
			})
			return r, nil
		}
	}
}

// commitLogin registers the session when the login is about to succeed.
func (c *conn) commitLogin(r *loginResult) (uint16, LoginStatus) {
	if r.TSIH != 0 {
		// MaxConnections=1 and ErrorRecoveryLevel=0: no connection may be
		// added to or recovered in an existing session.
		if c.srv.hasTSIH(r.TSIH) {
			return 0, LoginCantIncludeInSession
		}
		return 0, LoginSessionDoesNotExist
	}
	ss := newSession(c.srv, r, c.srv.cfg.CmdWindow)
	ss.conn = c
	ss.nexus.TPGT = c.portal.Group
	// Made before the session is registered: from then on other
	// sessions' completions may announce a reopened window on it.
	c.out = make(chan outItem, int(ss.window)*(1+int(r.Params.MaxOutstandingR2T))+64)
	tsih, st := c.srv.registerSession(ss)
	if st != LoginSuccess {
		return 0, st
	}
	c.ss = ss
	c.srv.sessionStarted(c, r)
	return tsih, LoginSuccess
}

func (s *Server) hasTSIH(tsih uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.tsih == tsih {
			return true
		}
	}
	return false
}

// sendLoop writes queued PDUs, assigning StatSN and the CmdSN window at
// the moment each is encoded, and flushes when the queue runs dry.
func (c *conn) sendLoop() {
	defer func() {
		close(c.sendDone)
		c.drain() // what was queued while it ended (see enqueue)
	}()
	it := &c.cur
	for {
		*it = outItem{}
		select {
		case *it = <-c.out:
		default:
			c.sendMu.Lock()
			err := error(nil)
			if c.wr.Buffered() > 0 {
				err = c.wr.Flush()
			}
			if err != nil {
				c.stopSending()
				return
			}
			c.sendMu.Unlock()
			select {
			case *it = <-c.out:
			case <-c.closed:
				c.sendMu.Lock()
				c.stopSending()
				return
			}
		}
		c.sendMu.Lock()
		if err := c.send(it, &c.din); err != nil {
			if !errors.Is(err, errConnClosed) {
				c.log.Debug().Err(err).Msg("send failed")
			}
			c.wr.Flush()
			c.stopSending()
			return
		}
		c.sendMu.Unlock()
	}
}

// stopSending ends the send loop: called with sendMu held, it marks
// the end (no worker sends after it), closes the connection and frees
// what is still queued.
func (c *conn) stopSending() {
	c.sendEnd = true
	c.sendMu.Unlock()
	c.close()
	c.drain()
}

// complete sends a finished task's Data-In and status. When nothing is
// queued and nobody is writing, the worker writes them itself, which
// saves waking the send loop for every command (what one command at a
// time waits for); otherwise they queue behind the rest. Ordering holds
// either way: StatSN is assigned under sendMu in wire order, and what
// else concerns the task (its R2Ts) went out before its data was in.
func (c *conn) complete(t *task) {
	if len(c.out) == 0 && c.sendMu.TryLock() {
		if len(c.out) == 0 && !c.sendEnd {
			it := &c.direct
			*it = outItem{kind: itemComplete, t: t, release: !t.immediate}
			err := c.send(it, &c.din)
			*it = outItem{}
			if err == nil {
				err = c.wr.Flush()
			}
			c.sendMu.Unlock()
			if err != nil {
				c.log.Debug().Err(err).Msg("send failed")
				c.close()
			}
			return
		}
		c.sendMu.Unlock()
	}
	c.enqueue(outItem{kind: itemComplete, t: t, release: !t.immediate})
}

// drain releases tasks still queued after the connection failed.
func (c *conn) drain() {
	for {
		select {
		case it := <-c.out:
			c.discard(it)
		default:
			return
		}
	}
}

// discard frees an item that will not be sent.
func (c *conn) discard(it outItem) {
	if it.kind == itemComplete {
		c.srv.putTask(it.t)
	}
}

func (c *conn) seq(stat bool) seqNums {
	exp, maxSN := c.ss.expMax()
	s := seqNums{StatSN: c.statSN, ExpCmdSN: exp, MaxCmdSN: maxSN}
	if stat {
		c.statSN++
	}
	return s
}

func (c *conn) send(it *outItem, din *DataIn) error {
	if it.release {
		c.ss.release()
	}
	switch it.kind {
	case itemClose:
		c.wr.Flush()
		return errConnClosed
	case itemR2T:
		it.r2t.seqNums = c.seq(false)
		return c.wr.Write(&it.r2t)
	case itemComplete:
		return c.sendCompletion(it.t, din)
	}
	type seqd interface{ setSeq(seqNums) }
	if p, ok := it.p.(seqd); ok {
		p.setSeq(c.seq(it.stat))
	}
	err := c.wr.Write(it.p)
	if it.xmit != 0 {
		c.xmit = it.xmit
	}
	return err
}

func (s *seqNums) setSeq(n seqNums) { *s = n }

// pinger sends NOP-In pings on idle connections and drops connections
// whose initiator stops answering (RFC 7143 11.19).
func (c *conn) pinger() {
	interval := c.srv.cfg.NOPInterval
	timeout := c.srv.cfg.NOPTimeout
	tick := time.NewTicker(min(interval, timeout) / 2)
	defer tick.Stop()
	c.lastRecv.Store(time.Now().UnixNano())
	for {
		select {
		case <-c.closed:
			return
		case now := <-tick.C:
			idle := now.Sub(time.Unix(0, c.lastRecv.Load()))
			if ttt := c.pingTTT.Load(); ttt != 0 {
				if now.Sub(time.Unix(0, c.pingSent.Load())) > timeout {
					c.log.Warn().Dur("idle", idle).Msg("initiator did not answer NOP-In; dropping connection")
					c.close()
					return
				}
				continue
			}
			if idle >= interval && !c.ss.discovery {
				ttt := uint32(now.UnixNano())&0x7fffffff | 1
				c.pingSent.Store(now.UnixNano())
				c.pingTTT.Store(ttt)
				c.enqueue(outItem{kind: itemPDU, p: &NOPIn{ITT: reservedTag, TTT: ttt}})
			}
		}
	}
}

// readLoop reads and dispatches PDUs in full feature phase.
func (c *conn) readLoop() error {
	var f Frame
	for {
		err := c.rd.Read(&f)
		c.lastRecv.Store(time.Now().UnixNano())
		switch {
		case err == nil:
		case errors.Is(err, ErrPDUTooLarge):
			return protoErr(RejectProtocolError, &f.BHS, "%v", err)
		case errors.Is(err, ErrDataDigest):
			// RFC 7143 7.8: reject with "data digest error"; at
			// ErrorRecoveryLevel 0 the task can't be recovered, so the
			// connection ends.
			return protoErr(RejectDataDigest, &f.BHS, "%v", err)
		default:
			select {
			case <-c.closed:
				return errConnClosed
			default:
			}
			return err
		}
		if err := c.dispatch(&f); err != nil {
			return err
		}
	}
}

// dispatch handles one PDU. Commands carrying a CmdSN are checked against
// the window first.
func (c *conn) dispatch(f *Frame) error {
	op := f.BHS.Opcode()
	if c.ss.discovery {
		switch op {
		case OpTextReq, OpLogoutReq, OpNOPOut:
		default:
			// RFC 7143 4.3: a discovery session carries only text,
			// NOP and logout requests.
			return protoErr(RejectProtocolError, &f.BHS, "%s in a discovery session", op)
		}
	}
	switch op {
	case OpSCSIDataOut:
		return c.handleDataOut(f)
	case OpSNACKReq:
		// RFC 7143 11.16: SNACK is only valid at ErrorRecoveryLevel > 0.
		c.enqueue(outItem{kind: itemPDU, stat: true, p: &Reject{Reason: RejectProtocolError, Header: f.BHS}})
		return nil
	case OpNOPOut:
		if f.BHS.ITT() == reservedTag {
			// Answer to our ping: no CmdSN, no response.
			var n NOPOut
			n.Decode(&f.BHS)
			if n.TTT != reservedTag && n.TTT == c.pingTTT.Load() {
				c.pingTTT.Store(0)
			}
			return nil
		}
	case OpSCSICommand, OpTaskMgmtReq, OpTextReq, OpLogoutReq:
	default:
		c.enqueue(outItem{kind: itemPDU, stat: true, p: &Reject{Reason: RejectCmdNotSupported, Header: f.BHS}})
		return nil
	}
	sn := f.BHS.u32(24) // CmdSN
	if f.BHS.Immediate() {
		return c.execPDU(f, true)
	}
	inOrder, _ := c.ss.checkCmdSN(sn)
	if !inOrder {
		// RFC 7143 4.2.2.1: commands outside the window are silently
		// ignored; a single-connection session never has legal gaps, so
		// anything not equal to ExpCmdSN is outside what we accept.
		c.log.Debug().Uint32("cmdsn", sn).Stringer("op", op).Msg("CmdSN outside window: ignored")
		return nil
	}
	c.ss.advance()
	return c.execPDU(f, false)
}

// execPDU runs a request whose CmdSN is in order (or immediate).
// counted says whether completion must open the window.
func (c *conn) execPDU(f *Frame, immediate bool) error {
	release := !immediate
	switch f.BHS.Opcode() {
	case OpSCSICommand:
		return c.handleCommand(f, immediate)
	case OpNOPOut:
		var n NOPOut
		n.Decode(&f.BHS)
		data := append([]byte(nil), f.Data...)
		c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: &NOPIn{LUN: n.LUN, ITT: n.ITT, TTT: reservedTag, Data: data}})
	case OpTaskMgmtReq:
		var t TaskMgmtRequest
		t.Decode(&f.BHS)
		c.handleTMF(&t, release)
	case OpTextReq:
		var t TextRequest
		t.Decode(&f.BHS)
		resp, err := c.text.handle(&t, f.Data)
		if err != nil {
			var te *textError
			if errors.As(err, &te) {
				c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: &Reject{Reason: te.Reason, Header: f.BHS}})
				return nil
			}
			return protoErr(RejectProtocolError, &f.BHS, "text request: %v", err)
		}
		// RFC 7143 13.12: a MaxRecvDataSegmentLength declared in full
		// feature phase applies once the negotiation completes.
		var xmit uint32
		if resp.Final {
			xmit = c.text.xmitLimit()
		}
		c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: resp, xmit: xmit})
	case OpLogoutReq:
		var l LogoutRequest
		l.Decode(&f.BHS)
		return c.handleLogout(&l, release)
	}
	return nil
}

// handleLogout ends the session or connection (RFC 7143 11.14).
func (c *conn) handleLogout(l *LogoutRequest, release bool) error {
	resp := &LogoutResponse{ITT: l.ITT, Time2Wait: c.params.DefaultTime2Wait, Time2Retain: c.params.DefaultTime2Retain}
	switch {
	case l.Reason == LogoutRemoveForRecov:
		resp.Response = LogoutRecoveryUnsupp
		c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: resp})
		return nil
	case l.Reason == LogoutCloseConnection && l.CID != c.cid:
		resp.Response = LogoutCIDNotFound
		c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: resp})
		return nil
	case l.Reason > LogoutRemoveForRecov:
		return protoErr(RejectInvalidPDUField, &BHS{}, "logout reason %d", l.Reason)
	}
	// Close the session (the only connection): tasks still waiting for
	// data can't complete, running ones finish and answer first.
	c.abortCollecting()
	c.ss.taskWG.Wait()
	c.log.Info().Stringer("reason", l.Reason).Msg("logout")
	resp.Response = LogoutOK
	c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: resp})
	c.enqueue(outItem{kind: itemClose})
	return errConnClosed
}
