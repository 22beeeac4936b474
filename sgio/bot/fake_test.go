package bot

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
)

// scripted is a Link that plays a scripted device: every call is logged
// as one line of a transcript, and answered by the next reply of the
// script. A call with no reply left fails the test.
type scripted struct {
	t *testing.T

	mu      sync.Mutex
	replies []reply
	log     []string
	cbw     CBW // the last CBW received
	closed  int // Close calls
	inFlow  chan string
}

// reply answers one call: buf is the call's buffer (nil for ClearHalt).
type reply func(s *scripted, ctx context.Context, buf []byte) (int, error)

func newScripted(t *testing.T, replies ...reply) *scripted {
	return &scripted{t: t, replies: replies, inFlow: make(chan string, 16)}
}

// transport starts a Transport on the script (whose first reply answers
// GET MAX LUN).
func (s *scripted) transport(opts ...Option) *Transport {
	s.t.Helper()
	opts = append([]Option{WithLogger(zerolog.New(zerolog.NewTestWriter(s.t)))}, opts...)
	tr, err := New(s, "1-1:1.0", opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	return tr
}

func (s *scripted) next(call string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, call)
	if len(s.replies) == 0 {
		s.t.Errorf("unscripted call: %s", call)
		return fail(fmt.Errorf("unscripted call %s", call))
	}
	r := s.replies[0]
	s.replies = s.replies[1:]
	return r
}

// Bulk implements Link.
func (s *scripted) Bulk(ctx context.Context, ep Endpoint, buf []byte) (int, error) {
	var call string
	if ep == BulkOut {
		if c, err := ParseCBW(buf); err == nil {
			c.CDB = append([]byte(nil), c.CDB...)
			s.mu.Lock()
			s.cbw = c
			s.mu.Unlock()
			dir := "out"
			if c.DataIn {
				dir = "in"
			}
			call = fmt.Sprintf("CBW lun=%d len=%d %s cdb=%x", c.LUN, c.DataTransferLength, dir, c.CDB)
		} else {
			call = fmt.Sprintf("out %d", len(buf))
		}
	} else {
		call = fmt.Sprintf("in %d", len(buf))
	}
	return s.next(call)(s, ctx, buf)
}

// Control implements Link.
func (s *scripted) Control(ctx context.Context, rType, request uint8, value uint16, data []byte) (int, error) {
	return s.next(fmt.Sprintf("control %02x %02x value=%d len=%d", rType, request, value, len(data)))(s, ctx, data)
}

// ClearHalt implements Link.
func (s *scripted) ClearHalt(ctx context.Context, ep Endpoint) error {
	_, err := s.next("clear-halt "+ep.String())(s, ctx, nil)
	return err
}

// Close implements Link.
func (s *scripted) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// expect compares the transcript with want and starts a new one.
func (s *scripted) expect(want ...string) {
	s.t.Helper()
	s.mu.Lock()
	got := s.log
	s.log = nil
	left := len(s.replies)
	s.mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		s.t.Errorf("transcript:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if left != 0 {
		s.t.Errorf("%d scripted replies not used", left)
	}
}

// add appends replies to the script.
func (s *scripted) add(r ...reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, r...)
}

// Replies.

// ok accepts a whole transfer (or a control request without data).
func ok() reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) { return len(buf), nil }
}

// send answers a bulk-in or control-in call with b (a babble if b does
// not fit), or accepts n bytes of a bulk-out.
func send(b []byte) reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) {
		if len(b) > len(buf) {
			return copy(buf, b), ErrOverflow
		}
		return copy(buf, b), nil
	}
}

// accept takes n bytes of a bulk-out.
func accept(n int) reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) { return min(n, len(buf)), nil }
}

// fail answers with err.
func fail(err error) reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) { return 0, err }
}

func stall() reply { return fail(ErrStall) }

// csw answers with a CSW for the last CBW.
func csw(status CSWStatus, residue uint32) reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) {
		s.mu.Lock()
		c := CSW{Tag: s.cbw.Tag, DataResidue: residue, Status: status}
		s.mu.Unlock()
		b, _ := c.AppendBinary(nil)
		return copy(buf, b), nil
	}
}

// rawCSW answers with the bytes f makes of the last CBW's tag.
func rawCSW(f func(tag uint32) []byte) reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) {
		s.mu.Lock()
		b := f(s.cbw.Tag)
		s.mu.Unlock()
		return send(b)(s, ctx, buf)
	}
}

// hang blocks until ctx is done, after telling s.inFlow it got there.
func hang(what string) reply {
	return func(s *scripted, ctx context.Context, buf []byte) (int, error) {
		s.inFlow <- what
		<-ctx.Done()
		return 0, fmt.Errorf("%w (transfer cancelled)", ctx.Err())
	}
}

// wireCSW is a CSW's wire form.
func wireCSW(tag, residue uint32, status CSWStatus) []byte {
	b := make([]byte, CSWLen)
	binary.LittleEndian.PutUint32(b[0:], CSWSignature)
	binary.LittleEndian.PutUint32(b[4:], tag)
	binary.LittleEndian.PutUint32(b[8:], residue)
	b[12] = byte(status)
	return b
}

// Transcript lines.
const (
	lineMaxLUN     = "control a1 fe value=0 len=1"
	lineReset      = "control 21 ff value=0 len=0"
	lineHaltIn     = "clear-halt bulk-in"
	lineHaltOut    = "clear-halt bulk-out"
	lineCSW        = "in 512"
	lineSense0     = "CBW lun=0 len=18 in cdb=030000001200"
	lineSenseData  = "in 18"
	lineInquiryCBW = "CBW lun=0 len=36 in cdb=120000002400"
)

// resetLines is a whole reset recovery.
var resetLines = []string{lineReset, lineHaltIn, lineHaltOut}

// resetReplies answer a reset recovery.
func resetReplies() []reply { return []reply{ok(), ok(), ok()} }

func lines(groups ...any) []string {
	var out []string
	for _, g := range groups {
		switch v := g.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		}
	}
	return out
}

func replies(groups ...any) []reply {
	var out []reply
	for _, g := range groups {
		switch v := g.(type) {
		case reply:
			out = append(out, v)
		case []reply:
			out = append(out, v...)
		}
	}
	return out
}

// inquiry is a 36-byte INQUIRY request.
func inquiry() *sgio.Request {
	return &sgio.Request{CDB: []byte{0x12, 0, 0, 0, 36, 0}, Dir: sgio.DirFromDevice, Data: make([]byte, 36)}
}

// fixedSense is 18 bytes of fixed-format sense.
func fixedSense(key, asc, ascq byte) []byte {
	b := make([]byte, 18)
	b[0], b[2], b[7], b[12], b[13] = 0x70, key, 10, asc, ascq
	return b
}
