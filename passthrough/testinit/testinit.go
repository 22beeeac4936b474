// Package testinit is a small iSCSI initiator for tests of the gateway
// over loopback: login without authentication straight to full feature
// phase, SCSI commands with data in or out (immediate data and R2T),
// several commands in flight, task management, logout, and dropping the
// connection. It reads PDUs with the engine's own [iscsi.Reader] and
// builds its requests byte by byte from RFC 7143, so that the target's
// encoders are not tested against themselves.
//
// It is not a general initiator: one connection per session, no
// digests, no error recovery, no CHAP.
package testinit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Config describes one session.
type Config struct {
	// InitiatorName and TargetName are the iSCSI names to log in with.
	InitiatorName string
	TargetName    string
	// ISID is the initiator session identifier; the zero ISID is
	// replaced by 80 00 00 00 00 01 (random-qualifier format).
	ISID iscsi.ISID
	// Timeout bounds the login and every wait; zero means 20 seconds.
	Timeout time.Duration
}

// LoginError is a login refused by the target (RFC 7143 11.13.5).
type LoginError struct {
	Class, Detail byte
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("testinit: login refused: status class %d detail %d", e.Class, e.Detail)
}

// ErrClosed reports a command that could not complete because the
// connection ended.
var ErrClosed = errors.New("testinit: connection closed")

// Result is the outcome of a SCSI command.
type Result struct {
	Status scsi.Status
	// Sense is the sense data of CHECK CONDITION.
	Sense []byte
	// Data is the data-in received.
	Data []byte
	// Residual is the residual count with its overflow/underflow flags.
	Residual            uint32
	Overflow, Underflow bool
	// Response is the iSCSI response code (0: command completed at target).
	Response byte
	// Err is set when the command never completed (connection lost).
	Err error
}

// SenseData decodes Sense; the zero Sense when there is none.
func (r *Result) SenseData() scsi.Sense {
	s, _ := scsi.ParseSense(r.Sense)
	return s
}

// String summarizes r for test messages.
func (r *Result) String() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	if r.Status == scsi.CheckCondition {
		s := r.SenseData()
		return fmt.Sprintf("%v, %v", r.Status, &s)
	}
	return r.Status.String()
}

// Task is a command in flight.
type Task struct {
	ITT  uint32
	done chan struct{}
	res  Result
	lun  iscsi.LUN
	out  []byte // write data, for R2Ts
	wait time.Duration
}

// Wait waits for the task to complete, at most the session's timeout
// (then the result carries an error and the task is abandoned).
func (t *Task) Wait() *Result {
	select {
	case <-t.done:
		return &t.res
	case <-time.After(t.wait):
		return &Result{Err: fmt.Errorf("testinit: task %#x did not complete within %v", t.ITT, t.wait)}
	}
}

// Done is closed when the task completed.
func (t *Task) Done() <-chan struct{} { return t.done }

// Session is one logged-in session over one connection.
type Session struct {
	cfg     Config
	nc      net.Conn
	rd      *iscsi.Reader
	timeout time.Duration
	// Params are the operational parameters the target answered.
	Params map[string]string
	// TSIH is the session handle the target assigned.
	TSIH uint16

	maxXmit   int  // the target's MaxRecvDataSegmentLength
	immediate bool // ImmediateData=Yes
	firstBurs int

	wmu       sync.Mutex // serializes writes and sequence numbers
	cmdSN     uint32
	expStatSN uint32
	itt       uint32

	mu      sync.Mutex
	tasks   map[uint32]*Task
	err     error
	readEnd chan struct{}
}

// Dial logs in to the target at addr.
func Dial(ctx context.Context, addr string, cfg Config) (*Session, error) {
	if cfg.ISID == (iscsi.ISID{}) {
		cfg.ISID = iscsi.ISID{0x80, 0, 0, 0, 0, 1}
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testinit: %w", err)
	}
	s := &Session{cfg: cfg, nc: nc, rd: iscsi.NewReader(nc), timeout: timeout, cmdSN: 1, itt: 1,
		tasks: make(map[uint32]*Task), readEnd: make(chan struct{}), maxXmit: 8192}
	if err := s.login(); err != nil {
		nc.Close()
		return nil, err
	}
	go s.readLoop()
	return s, nil
}

// login negotiates the operational parameters and enters full feature
// phase (RFC 7143 6.2, no security stage).
func (s *Session) login() error {
	s.nc.SetDeadline(time.Now().Add(s.timeout))
	defer s.nc.SetDeadline(time.Time{})
	keys := []string{
		"InitiatorName=" + s.cfg.InitiatorName,
		"SessionType=Normal",
		"TargetName=" + s.cfg.TargetName,
		"HeaderDigest=None",
		"DataDigest=None",
		"InitialR2T=Yes",
		"ImmediateData=Yes",
		"MaxRecvDataSegmentLength=262144",
		"MaxBurstLength=262144",
		"FirstBurstLength=65536",
		"ErrorRecoveryLevel=0",
		"MaxConnections=1",
		"MaxOutstandingR2T=1",
		"DataPDUInOrder=Yes",
		"DataSequenceInOrder=Yes",
		"DefaultTime2Wait=0",
		"DefaultTime2Retain=0",
	}
	params := map[string]string{}
	data := []byte(strings.Join(keys, "\x00") + "\x00")
	for range 8 {
		var b iscsi.BHS
		b[0] = 0x03 | 0x40                        // Login Request, immediate
		b[1] = 0x80 | 1<<2 | 3                    // T, CSG=operational, NSG=full feature
		copy(b[8:14], s.cfg.ISID[:])              // ISID
		binary.BigEndian.PutUint32(b[16:], s.itt) // ITT
		binary.BigEndian.PutUint32(b[24:], s.cmdSN)
		binary.BigEndian.PutUint32(b[28:], s.expStatSN)
		if err := s.write(&b, data); err != nil {
			return err
		}
		var f iscsi.Frame
		if err := s.rd.Read(&f); err != nil {
			return fmt.Errorf("testinit: login: %w", err)
		}
		if f.BHS.Opcode() != iscsi.OpLoginResp {
			return fmt.Errorf("testinit: login answered with %v", f.BHS.Opcode())
		}
		if class, detail := f.BHS[36], f.BHS[37]; class != 0 {
			return &LoginError{Class: class, Detail: detail}
		}
		for _, kv := range strings.Split(string(f.Data), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				params[k] = v
			}
		}
		s.expStatSN = binary.BigEndian.Uint32(f.BHS[24:]) + 1
		s.TSIH = binary.BigEndian.Uint16(f.BHS[14:])
		if f.BHS[1]&0x80 != 0 && f.BHS[1]&0x03 == 3 {
			s.Params = params
			// What this initiator declared it receives (above).
			s.rd.MaxRecvDataSegmentLength = 262144
			if v, err := strconv.Atoi(params["MaxRecvDataSegmentLength"]); err == nil && v > 0 {
				s.maxXmit = v
			}
			s.immediate = params["ImmediateData"] == "Yes"
			s.firstBurs = 65536
			if v, err := strconv.Atoi(params["FirstBurstLength"]); err == nil && v > 0 {
				s.firstBurs = v
			}
			s.itt++
			return nil
		}
		data = nil
	}
	return errors.New("testinit: login did not reach full feature phase")
}

// write sends one PDU with its padded data segment.
func (s *Session) write(b *iscsi.BHS, data []byte) error {
	b.SetDataSegmentLength(uint32(len(data)))
	buf := make([]byte, 0, len(b)+len(data)+3)
	buf = append(append(buf, b[:]...), data...)
	buf = append(buf, make([]byte, (4-len(data)%4)%4)...)
	_, err := s.nc.Write(buf)
	return err
}

// Start sends a SCSI command to lun: cdb (up to 16 bytes), write data,
// and room for rlen bytes of data-in. It does not wait.
func (s *Session) Start(lun uint64, cdb []byte, wdata []byte, rlen int) *Task {
	t := &Task{done: make(chan struct{}), lun: iscsi.MakeLUN(lun), out: wdata, wait: s.timeout}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t.ITT = s.itt
	s.itt++
	if !s.register(t) {
		return t
	}
	var b iscsi.BHS
	b[0] = 0x01 // SCSI Command
	b[1] = 0x80 | 0x01
	if rlen > 0 {
		b[1] |= 0x40
	}
	if len(wdata) > 0 {
		b[1] |= 0x20
	}
	copy(b[8:16], t.lun[:])
	binary.BigEndian.PutUint32(b[16:], t.ITT)
	edtl := len(wdata)
	if rlen > 0 && len(wdata) == 0 {
		edtl = rlen
	}
	binary.BigEndian.PutUint32(b[20:], uint32(edtl))
	binary.BigEndian.PutUint32(b[24:], s.cmdSN)
	s.cmdSN++
	binary.BigEndian.PutUint32(b[28:], s.expStatSN)
	copy(b[32:48], cdb)
	var imm []byte
	if s.immediate && len(wdata) > 0 {
		imm = wdata[:min(len(wdata), s.maxXmit, s.firstBurs)]
	}
	if err := s.write(&b, imm); err != nil {
		s.fail(t, err)
	}
	return t
}

// Do runs a SCSI command and waits for it.
func (s *Session) Do(lun uint64, cdb []byte, wdata []byte, rlen int) *Result {
	return s.Start(lun, cdb, wdata, rlen).Wait()
}

// TMF sends a task management function request (RFC 7143 11.5) and
// returns the response code. ref is the ITT of the task ABORT TASK
// refers to.
func (s *Session) TMF(fn iscsi.TMFunction, lun uint64, ref uint32) (iscsi.TMFResponse, error) {
	var b iscsi.BHS
	b[0] = 0x02 | 0x40
	b[1] = 0x80 | byte(fn)
	l := iscsi.MakeLUN(lun)
	copy(b[8:16], l[:])
	binary.BigEndian.PutUint32(b[20:], ref)
	r := s.sendImmediate(&b, func(b *iscsi.BHS) { copy(b[32:36], b[24:28]) }).Wait() // RefCmdSN
	if r.Err != nil {
		return 0, r.Err
	}
	return iscsi.TMFResponse(r.Response), nil
}

// Logout ends the session with a Logout Request and closes the
// connection.
func (s *Session) Logout() error {
	var b iscsi.BHS
	b[0] = 0x06 | 0x40
	b[1] = 0x80 // close the session
	r := s.sendImmediate(&b, nil).Wait()
	err := r.Err
	if err == nil && r.Response != 0 {
		err = fmt.Errorf("testinit: logout response %d", r.Response)
	}
	s.Close()
	return err
}

// sendImmediate sends an immediate request b whose answer carries only a
// response code (task management, logout), after filling its ITT, CmdSN
// and ExpStatSN and calling fill when not nil.
func (s *Session) sendImmediate(b *iscsi.BHS, fill func(*iscsi.BHS)) *Task {
	t := &Task{done: make(chan struct{}), wait: s.timeout}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t.ITT = s.itt
	s.itt++
	if !s.register(t) {
		return t
	}
	binary.BigEndian.PutUint32(b[16:], t.ITT)
	binary.BigEndian.PutUint32(b[24:], s.cmdSN)
	binary.BigEndian.PutUint32(b[28:], s.expStatSN)
	if fill != nil {
		fill(b)
	}
	if err := s.write(b, nil); err != nil {
		s.fail(t, err)
	}
	return t
}

// Close drops the connection without logging out (a connection loss, as
// the target sees it) and waits for the reader to end.
func (s *Session) Close() {
	s.nc.Close()
	<-s.readEnd
}

// register records a task; false (and the task failed) when the
// connection is already gone.
func (s *Session) register(t *Task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.res.Err = s.err
		close(t.done)
		return false
	}
	s.tasks[t.ITT] = t
	return true
}

// fail completes t with err.
func (s *Session) fail(t *Task, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[t.ITT]; ok {
		delete(s.tasks, t.ITT)
		t.res.Err = err
		close(t.done)
	}
}

// take removes and returns the task with tag itt.
func (s *Session) take(itt uint32) *Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[itt]
	delete(s.tasks, itt)
	return t
}

// task returns the task with tag itt.
func (s *Session) task(itt uint32) *Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tasks[itt]
}

// readLoop dispatches the target's PDUs until the connection ends, then
// fails whatever is left.
func (s *Session) readLoop() {
	defer close(s.readEnd)
	var err error
	for {
		var f iscsi.Frame
		if err = s.rd.Read(&f); err != nil {
			break
		}
		if err = s.handle(&f); err != nil {
			break
		}
	}
	s.nc.Close()
	s.mu.Lock()
	s.err = fmt.Errorf("%w: %w", ErrClosed, err)
	for itt, t := range s.tasks {
		t.res.Err = s.err
		close(t.done)
		delete(s.tasks, itt)
	}
	s.mu.Unlock()
}

func (s *Session) statSN(b *iscsi.BHS) {
	s.wmu.Lock()
	s.expStatSN = binary.BigEndian.Uint32(b[24:]) + 1
	s.wmu.Unlock()
}

// handle processes one PDU from the target.
func (s *Session) handle(f *iscsi.Frame) error {
	b := &f.BHS
	itt := b.ITT()
	switch b.Opcode() {
	case iscsi.OpSCSIDataIn:
		t := s.task(itt)
		if t == nil {
			return fmt.Errorf("testinit: Data-In for unknown task %#x", itt)
		}
		off := int(binary.BigEndian.Uint32(b[40:]))
		if need := off + len(f.Data); len(t.res.Data) < need {
			t.res.Data = append(t.res.Data, make([]byte, need-len(t.res.Data))...)
		}
		copy(t.res.Data[off:], f.Data)
		if b[1]&0x01 != 0 { // S: status in this PDU
			s.statSN(b)
			s.take(itt)
			t.res.Status = scsi.Status(b[3])
			t.res.Overflow, t.res.Underflow = b[1]&0x04 != 0, b[1]&0x02 != 0
			t.res.Residual = binary.BigEndian.Uint32(b[44:])
			close(t.done)
		}
	case iscsi.OpSCSIResponse:
		s.statSN(b)
		t := s.take(itt)
		if t == nil {
			return fmt.Errorf("testinit: SCSI Response for unknown task %#x", itt)
		}
		t.res.Response = b[2]
		t.res.Status = scsi.Status(b[3])
		t.res.Overflow, t.res.Underflow = b[1]&0x04 != 0, b[1]&0x02 != 0
		t.res.Residual = binary.BigEndian.Uint32(b[44:])
		if len(f.Data) >= 2 {
			n := int(binary.BigEndian.Uint16(f.Data))
			t.res.Sense = append([]byte(nil), f.Data[2:2+min(n, len(f.Data)-2)]...)
		}
		close(t.done)
	case iscsi.OpR2T:
		t := s.task(itt)
		if t == nil {
			return fmt.Errorf("testinit: R2T for unknown task %#x", itt)
		}
		return s.sendData(t, binary.BigEndian.Uint32(b[20:]), int(binary.BigEndian.Uint32(b[40:])), int(binary.BigEndian.Uint32(b[44:])))
	case iscsi.OpTaskMgmtResp, iscsi.OpLogoutResp:
		s.statSN(b)
		if t := s.take(itt); t != nil {
			t.res.Response = b[2]
			close(t.done)
		}
	case iscsi.OpNOPIn:
		if ttt := binary.BigEndian.Uint32(b[20:]); ttt != 0xffffffff {
			// A ping from the target: answer it (RFC 7143 11.18).
			s.wmu.Lock()
			var o iscsi.BHS
			o[0] = 0x00 | 0x40
			o[1] = 0x80
			copy(o[8:16], b[8:16])
			binary.BigEndian.PutUint32(o[16:], 0xffffffff)
			binary.BigEndian.PutUint32(o[20:], ttt)
			binary.BigEndian.PutUint32(o[24:], s.cmdSN)
			binary.BigEndian.PutUint32(o[28:], s.expStatSN)
			err := s.write(&o, f.Data)
			s.wmu.Unlock()
			return err
		}
	case iscsi.OpAsyncMessage:
	case iscsi.OpReject:
		return fmt.Errorf("testinit: target rejected a PDU (reason %#x)", b[2])
	default:
		return fmt.Errorf("testinit: unexpected %v", b.Opcode())
	}
	return nil
}

// sendData answers an R2T with Data-Out PDUs.
func (s *Session) sendData(t *Task, ttt uint32, off, n int) error {
	if off+n > len(t.out) {
		return fmt.Errorf("testinit: R2T for bytes %d-%d of a %d-byte write", off, off+n, len(t.out))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for sn := uint32(0); n > 0; sn++ {
		k := min(n, s.maxXmit)
		var b iscsi.BHS
		b[0] = 0x05
		if k == n {
			b[1] = 0x80
		}
		copy(b[8:16], t.lun[:])
		binary.BigEndian.PutUint32(b[16:], t.ITT)
		binary.BigEndian.PutUint32(b[20:], ttt)
		binary.BigEndian.PutUint32(b[28:], s.expStatSN)
		binary.BigEndian.PutUint32(b[36:], sn)
		binary.BigEndian.PutUint32(b[40:], uint32(off))
		if err := s.write(&b, t.out[off:off+k]); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}
