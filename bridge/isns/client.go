package isns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultPort is the iSNS server port (RFC 4171 5.2).
const DefaultPort = 3205

// Defaults of [Options].
const (
	DefaultTimeout     = 10 * time.Second
	DefaultESIInterval = 60 * time.Second
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = time.Minute
	// defaultRefresh is the refresh interval when the server reports no
	// Registration Period: a query now and then still notices a server
	// that lost the registration (restarted without its database).
	defaultRefresh = 5 * time.Minute
	maxRefresh     = 10 * time.Minute
)

// Options configure a [Client].
type Options struct {
	// Server is the iSNS server, host[:port] (default port 3205).
	Server string
	// ESIListen, when set, is the TCP address (host:port, port 0 for any)
	// the client listens on for Entity Status Inquiries. Each portal is
	// registered with the listener's port as its ESI Port, so the server
	// connects to portal-address:ESI-port: listen on an address that covers
	// every portal (the wildcard address, or the portal's address when
	// there is one). Empty: no ESI; the registration is kept alive by
	// refreshing it within the server's Registration Period.
	ESIListen string
	// ESIInterval is the ESI interval requested (the server may adjust it
	// within its limits); default 60 s.
	ESIInterval time.Duration
	// Timeout bounds connecting and each request; default 10 s.
	Timeout time.Duration
	// RetryMin and RetryMax bound the back-off between attempts after a
	// failure (connection refused, timeout, error status); defaults 1 s
	// and 1 min.
	RetryMin, RetryMax time.Duration
	// MaxPDUPayload bounds the payload of the PDUs the client sends;
	// default (and upper bound) MaxPDUPayload. A registration larger than
	// that goes as several DevAttrReg messages (the first replaces the
	// entity, the others add nodes to it), because open-isns does not
	// reassemble messages of several PDUs.
	MaxPDUPayload int
	// Log receives the client's log lines.
	Log zerolog.Logger
	// OnEvent, when set, is called for every [Event], from the client's
	// goroutines; it must not block for long.
	OnEvent func(Event)
	// Dial, when set, replaces net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// EventKind classifies an [Event].
type EventKind uint8

// Event kinds.
const (
	// EventRegistered: the entity was registered (or replaced) with the
	// server. Period is the refresh interval derived from the server's
	// Registration Period.
	EventRegistered EventKind = iota + 1
	// EventRefreshed: a refresh query found the registration in place.
	EventRefreshed
	// EventLost: a refresh query found the entity gone (expired, removed
	// by the administrator, server restarted without its database); the
	// client registers it again.
	EventLost
	// EventDeregistered: the entity was deregistered (stop, or a change
	// of Entity Identifier, or no nodes left to register).
	EventDeregistered
	// EventESI: an Entity Status Inquiry was answered.
	EventESI
	// EventError: an attempt failed (Err says why); the client retries.
	EventError
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventRegistered:
		return "registered"
	case EventRefreshed:
		return "refreshed"
	case EventLost:
		return "lost"
	case EventDeregistered:
		return "deregistered"
	case EventESI:
		return "esi"
	case EventError:
		return "error"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event reports what the client did.
type Event struct {
	Kind     EventKind
	EntityID string
	Period   time.Duration
	Err      error
}

// StatusError is a response with a Status Code other than Successful.
type StatusError struct {
	Function Function
	Status   Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("isns: %s: %s (status %d)", e.Function, e.Status, uint32(e.Status))
}

// Client keeps one Network Entity registered with an iSNS server. Create
// it with [New], run it with [Client.Run], change what it registers with
// [Client.Update].
type Client struct {
	opts Options

	mu   sync.Mutex
	want *Registration
	gen  uint64
	wake chan struct{}

	// esiEID is the entity currently registered (for answering ESI).
	esiEID atomic.Pointer[string]
}

// New returns a client for the registration reg (validated).
func New(opts Options, reg Registration) (*Client, error) {
	if opts.Server == "" {
		return nil, errors.New("isns: no server address")
	}
	if _, _, err := net.SplitHostPort(opts.Server); err != nil {
		opts.Server = net.JoinHostPort(opts.Server, strconv.Itoa(DefaultPort))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ESIInterval <= 0 {
		opts.ESIInterval = DefaultESIInterval
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(DefaultRetryMax, opts.RetryMin)
	}
	if opts.Dial == nil {
		d := &net.Dialer{}
		opts.Dial = d.DialContext
	}
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	return &Client{opts: opts, want: reg.clone(), gen: 1, wake: make(chan struct{}, 1)}, nil
}

// Update replaces what the client registers (after a configuration
// reload); Run re-registers it with the replace flag, or deregisters the
// old entity first when the Entity Identifier changed. An invalid
// registration is refused and changes nothing. Update does not block.
func (c *Client) Update(reg Registration) error {
	if err := reg.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	c.want = reg.clone()
	c.gen++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

func (c *Client) desired() (*Registration, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.want, c.gen
}

func (c *Client) event(e Event) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
	}
}

// Run registers the entity and keeps it registered until ctx ends, then
// deregisters it (bounded by Options.Timeout) and returns. Failures are
// logged, reported as EventError and retried with back-off; Run returns
// an error only when the ESI listener cannot be bound.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	s := &session{c: c}
	if c.opts.ESIListen != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", c.opts.ESIListen)
		if err != nil {
			return fmt.Errorf("isns: ESI listener: %w", err)
		}
		s.esi = &esiSettings{port: uint16(ln.Addr().(*net.TCPAddr).Port), interval: c.opts.ESIInterval}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serveESI(ctx, ln)
		}()
	}
	defer s.close()

	log := c.opts.Log
	backoff := c.opts.RetryMin
	var (
		registered    *Registration // what the server holds from us, as far as we know
		registeredGen uint64
		refreshEvery  time.Duration
		nextRefresh   time.Time
	)
	setRegistered := func(r *Registration) {
		registered = r
		if r == nil {
			c.esiEID.Store(nil)
		} else {
			eid := r.EntityID
			c.esiEID.Store(&eid)
		}
	}
	for ctx.Err() == nil {
		want, gen := c.desired()
		var err error
		switch {
		case registered != nil && (want.EntityID != registered.EntityID || len(want.Nodes) == 0):
			if err = s.deregister(ctx, registered); err == nil {
				log.Info().Str("entity", registered.EntityID).Msg("isns: deregistered")
				c.event(Event{Kind: EventDeregistered, EntityID: registered.EntityID})
				setRegistered(nil)
			}
		case len(want.Nodes) > 0 && (registered == nil || gen != registeredGen):
			if registered != nil && registered.equal(want) {
				registeredGen = gen
				continue
			}
			var period time.Duration
			period, err = s.register(ctx, want)
			var se *StatusError
			if errors.As(err, &se) && se.Status == StatusESINotAvailable && s.esi != nil {
				// RFC 4171 6.3.4: a server without ESI refuses portals with an
				// ESI port; refresh by queries instead.
				log.Warn().Str("server", c.opts.Server).Msg("isns: the server does not support ESI; registering without, refreshing by queries")
				s.esi = nil
				continue
			}
			if err == nil {
				setRegistered(want)
				registeredGen = gen
				refreshEvery = refreshInterval(period)
				nextRefresh = time.Now().Add(refreshEvery)
				log.Info().Str("entity", want.EntityID).Int("portals", len(want.Portals)).Int("nodes", len(want.Nodes)).
					Dur("registration_period", period).Bool("esi", s.esi != nil).Msg("isns: registered")
				c.event(Event{Kind: EventRegistered, EntityID: want.EntityID, Period: refreshEvery})
			}
		default:
			var tick <-chan time.Time
			stopTimer := func() bool { return false }
			if registered != nil {
				t := time.NewTimer(time.Until(nextRefresh))
				tick, stopTimer = t.C, t.Stop
			}
			select {
			case <-ctx.Done():
			case <-c.wake:
			case <-tick:
				var found bool
				if found, err = s.refresh(ctx, registered); err == nil {
					nextRefresh = time.Now().Add(refreshEvery)
					if found {
						c.event(Event{Kind: EventRefreshed, EntityID: registered.EntityID})
					} else {
						log.Warn().Str("entity", registered.EntityID).Msg("isns: registration gone from the server; registering again")
						c.event(Event{Kind: EventLost, EntityID: registered.EntityID})
						setRegistered(nil)
					}
				}
			}
			stopTimer()
		}
		if err == nil {
			backoff = c.opts.RetryMin
			continue
		}
		if ctx.Err() != nil {
			break
		}
		log.Warn().Err(err).Str("server", c.opts.Server).Dur("retry_in", backoff).Msg("isns: request failed")
		c.event(Event{Kind: EventError, Err: err})
		// What the server holds is uncertain after a failure: check with a
		// refresh query first thing after the back-off.
		nextRefresh = time.Now()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, c.opts.RetryMax)
	}

	if registered != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		err := s.deregister(dctx, registered)
		cancel()
		if err != nil {
			log.Warn().Err(err).Str("entity", registered.EntityID).Msg("isns: deregistration at stop failed")
			c.event(Event{Kind: EventError, Err: err})
		} else {
			log.Info().Str("entity", registered.EntityID).Msg("isns: deregistered")
			c.event(Event{Kind: EventDeregistered, EntityID: registered.EntityID})
		}
		setRegistered(nil)
	}
	return nil
}

// refreshInterval is a third of the registration period (so two refreshes
// may be lost), within [1 s, 10 min]; 5 min when the server set none.
func refreshInterval(period time.Duration) time.Duration {
	if period <= 0 {
		return defaultRefresh
	}
	return min(max(period/3, time.Second), maxRefresh)
}

// session is the client's connection to the server, used by Run only.
type session struct {
	c    *Client
	esi  *esiSettings
	conn net.Conn
	xid  uint16
}

func (s *session) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// aLongTimeAgo is a deadline in the past: it unblocks pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// call sends req and returns the response with the same transaction ID.
// Any failure drops the connection (the next call reconnects). A
// response with an error status is returned as a *StatusError along
// with the response.
func (s *session) call(ctx context.Context, req *Message) (*Message, error) {
	timeout := s.c.opts.Timeout
	if s.conn == nil {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := s.c.opts.Dial(dctx, "tcp", s.c.opts.Server)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("isns: connect %s: %w", s.c.opts.Server, err)
		}
		s.conn = conn
	}
	s.xid++
	req.XID = s.xid
	b, err := req.AppendBinary(nil, s.c.opts.MaxPDUPayload)
	if err != nil {
		return nil, err
	}
	conn := s.conn
	conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	fail := func(err error) (*Message, error) {
		s.close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("isns: %s to %s: %w", req.Function, s.c.opts.Server, err)
	}
	if _, err := conn.Write(b); err != nil {
		return fail(err)
	}
	// Skip anything else the server sends on this connection (an SCN, a
	// late answer to a timed-out request), boundedly.
	for range 16 {
		m, err := ReadMessage(conn, 0)
		if err != nil {
			return fail(err)
		}
		if m.XID != req.XID || m.Function != req.Function.Response() {
			s.c.opts.Log.Debug().Stringer("function", m.Function).Uint16("xid", m.XID).Msg("isns: ignoring unexpected message")
			continue
		}
		if m.Status != StatusSuccess {
			return m, &StatusError{Function: m.Function, Status: m.Status}
		}
		return m, nil
	}
	return fail(errors.New("no response among 16 messages"))
}

// register sends the DevAttrReg that registers (or replaces) reg and
// returns the Registration Period the server set (0 if none).
func (s *session) register(ctx context.Context, reg *Registration) (time.Duration, error) {
	limit := s.c.opts.MaxPDUPayload
	if limit <= 0 || limit > MaxPDUPayload {
		limit = MaxPDUPayload
	}
	key := []Attr{String(TagEntityID, reg.EntityID)}
	var period time.Duration
	for i, op := range reg.regBatches(s.esi, limit) {
		// RFC 4171 5.6.5.1: with the replace flag and the EID as message
		// key, the entity and everything it contains are replaced by the
		// operating attributes (a stale registration from a crash
		// included); without it, the next batches add to the entity.
		flags := FlagReplace
		if i > 0 {
			flags = 0
		}
		resp, err := s.call(ctx, Request(DevAttrReg, 0, flags, reg.source(), key, op))
		if err != nil {
			return 0, err
		}
		if i > 0 {
			continue
		}
		_, rop, _ := SplitDelimited(resp.Attrs)
		if a, ok := Find(rop, TagRegistrationPeriod); ok {
			if v, err := a.Uint32(); err == nil {
				period = time.Duration(v) * time.Second
			}
		}
	}
	return period, nil
}

// refresh queries the entity's EID with one of its nodes as the source;
// any message from the entity refreshes its registration (RFC 4171
// 6.2.6). found is false when the server no longer knows the entity.
func (s *session) refresh(ctx context.Context, reg *Registration) (found bool, err error) {
	key := []Attr{String(TagEntityID, reg.EntityID)}
	op := []Attr{Nil(TagEntityID), Nil(TagEntityProtocol)}
	resp, err := s.call(ctx, Request(DevAttrQry, 0, 0, reg.source(), key, op))
	var se *StatusError
	if errors.As(err, &se) && (se.Status == StatusNoSuchEntry || se.Status == StatusSourceUnknown || se.Status == StatusSourceUnauthorized) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, rop, _ := SplitDelimited(resp.Attrs)
	for _, a := range rop {
		if a.Tag != TagEntityID {
			continue
		}
		if eid, err := a.Str(); err == nil && eid == reg.EntityID {
			return true, nil
		}
	}
	return false, nil
}

// deregister removes the entity and everything it contains (RFC 4171
// 5.6.5.4). Deregistering an entity the server does not know succeeds.
func (s *session) deregister(ctx context.Context, reg *Registration) error {
	_, err := s.call(ctx, Request(DevDereg, 0, 0, reg.source(), nil, []Attr{String(TagEntityID, reg.EntityID)}))
	var se *StatusError
	if errors.As(err, &se) && (se.Status == StatusNoSuchEntry || se.Status == StatusSourceUnknown) {
		return nil
	}
	return err
}
