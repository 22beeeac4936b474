package isns

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// maxESIConns bounds the ESI connections served at once (the server
// opens one per portal; anything beyond is not a well-behaved server).
const maxESIConns = 16

// serveESI accepts the server's ESI connections on ln until ctx ends,
// then closes them and returns once their handlers have.
func (c *Client) serveESI(ctx context.Context, ln net.Listener) {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for conn := range conns {
			conn.SetDeadline(aLongTimeAgo)
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	defer ln.Close()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				c.opts.Log.Error().Err(err).Msg("isns: ESI listener failed; the server will drop the portals and the client registers again")
			}
			return
		}
		mu.Lock()
		if len(conns) >= maxESIConns || ctx.Err() != nil {
			mu.Unlock()
			conn.Close()
			continue
		}
		conns[conn] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.handleESI(conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
			conn.Close()
		}()
	}
}

// handleESI answers the ESI messages of one connection (RFC 4171
// 5.6.5.13): the response carries the inquiry's attributes back, with
// status Successful when the entity is the one registered, No Such
// Entry otherwise (so that the server drops a stale entity that is not
// ours any more).
func (c *Client) handleESI(conn net.Conn) {
	idle := 2*c.opts.ESIInterval + c.opts.Timeout
	log := c.opts.Log.With().Stringer("peer", conn.RemoteAddr()).Logger()
	for {
		conn.SetDeadline(time.Now().Add(idle))
		m, err := ReadMessage(conn, 64<<10)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !isEOF(err) {
				log.Debug().Err(err).Msg("isns: ESI connection ended")
			}
			return
		}
		var answered string
		rsp := &Message{Function: m.Function.Response(), Flags: FlagClient, XID: m.XID, Status: StatusSuccess}
		switch m.Function {
		case ESI:
			rsp.Attrs = m.Attrs
			eid := ""
			if a, ok := Find(m.Attrs, TagEntityID); ok {
				if eid, err = a.Str(); err != nil {
					eid = ""
				}
			}
			if cur := c.esiEID.Load(); cur == nil || *cur != eid {
				log.Warn().Str("entity", eid).Msg("isns: ESI for an entity not registered by this gateway")
				rsp.Status = StatusNoSuchEntry
			}
			answered = eid
		default:
			rsp.Status = StatusMessageNotSupported
		}
		b, err := rsp.AppendBinary(nil, c.opts.MaxPDUPayload)
		if err != nil {
			log.Warn().Err(err).Msg("isns: ESI response")
			return
		}
		if _, err := conn.Write(b); err != nil {
			log.Debug().Err(err).Msg("isns: ESI response not sent")
			return
		}
		if m.Function == ESI && rsp.Status == StatusSuccess {
			c.event(Event{Kind: EventESI, EntityID: answered})
		}
	}
}

func isEOF(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &ne) && ne.Timeout())
}
