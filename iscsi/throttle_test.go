package iscsi

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestAuthThrottleTable(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	cfg := AuthLimits{FreeFailures: 2, Delay: 100 * time.Millisecond, MaxDelay: time.Second,
		LockoutAfter: 8, Lockout: time.Minute, Forget: 10 * time.Minute, TableSize: 8}
	a := newAuthThrottle(cfg, clk.now)
	bad := netip.MustParsePrefix("192.0.2.1/32")
	other := netip.MustParsePrefix("192.0.2.2/32")
	want := []time.Duration{0, 0, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		d, until := a.check(bad, "iqn.x:bad")
		if d != w*time.Millisecond || !until.IsZero() {
			t.Fatalf("attempt %d: delay %v locked until %v, want %v", i+1, d, until, w*time.Millisecond)
		}
		locked := a.fail(bad, "iqn.x:bad")
		if locked != (i == len(want)-1) {
			t.Fatalf("attempt %d: lockout %v", i+1, locked)
		}
	}
	// Locked out: both the source and the name, whatever the partner.
	if _, until := a.check(bad, "iqn.x:good"); !until.Equal(clk.t.Add(time.Minute)) {
		t.Fatalf("source not locked out: until %v", until)
	}
	if _, until := a.check(other, "iqn.x:bad"); until.IsZero() {
		t.Fatal("name not locked out")
	}
	// Someone else is not affected.
	if d, until := a.check(other, "iqn.x:good"); d != 0 || !until.IsZero() {
		t.Fatalf("another source and name: delay %v until %v", d, until)
	}
	// After the lockout: delays resume from the first one.
	clk.advance(time.Minute)
	if d, until := a.check(bad, "iqn.x:bad"); d != 100*time.Millisecond || !until.IsZero() {
		t.Fatalf("after the lockout: delay %v until %v", d, until)
	}
	// A success clears the name, not the source.
	a.succeed("iqn.x:bad")
	if d, _ := a.check(other, "iqn.x:bad"); d != 0 {
		t.Fatalf("name still delayed after a success: %v", d)
	}
	if d, _ := a.check(bad, "iqn.x:new"); d != 100*time.Millisecond {
		t.Fatalf("source forgotten after a success: %v", d)
	}
	// Entries expire.
	clk.advance(10 * time.Minute)
	if d, _ := a.check(bad, "iqn.x:bad"); d != 0 {
		t.Fatalf("not forgotten: %v", d)
	}
	// The table is bounded: many names evict the oldest entries.
	for i := 0; i < 100; i++ {
		a.fail(bad, fmt.Sprintf("iqn.x:n%d", i))
	}
	if n := a.size(); n > cfg.TableSize {
		t.Fatalf("%d entries, table size %d", n, cfg.TableSize)
	}
	// The busy source stays (it failed most recently).
	if d, _ := a.check(bad, "iqn.x:zzz"); d == 0 {
		t.Fatal("the failing source was evicted")
	}
}

// wireCHAP logs in to the test target over the wire with CHAP from the
// source address src and returns the status answering the CHAP
// response, how long that answer took, and whether the login completed.
func wireCHAP(t *testing.T, addr, src string, isid byte, name, user, secret string) (LoginStatus, time.Duration, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	rd := NewReader(nc)
	req := func(csg Stage, transit bool, nsg Stage, kv ...string) *Frame {
		var b BHS
		b[0] = byte(OpLoginReq) | immediateBit
		b[1] = byte(csg)<<2 | byte(nsg)
		if transit {
			b[1] |= loginTransitBit
		}
		b[8] = 0x80
		b[13] = isid
		b.put32(16, 1)
		b.put32(24, 1)
		data := textKV(kv...)
		b.SetDataSegmentLength(uint32(len(data)))
		if _, err := nc.Write(append(append(b[:], data...), make([]byte, padLen(len(data)))...)); err != nil {
			t.Fatalf("login request: %v", err)
		}
		f := new(Frame)
		if err := rd.Read(f); err != nil {
			t.Fatalf("login response: %v", err)
		}
		f.Data = append([]byte(nil), f.Data...)
		return f
	}
	f := req(StageSecurity, true, StageOperational, "InitiatorName="+name, "TargetName="+testIQN,
		"SessionType=Normal", "AuthMethod=CHAP")
	if st := LoginStatus(f.BHS.u16(36)); st != LoginSuccess {
		return st, 0, false
	}
	f = req(StageSecurity, false, 0, "CHAP_A=5")
	m := parseKV(f.Data)
	var id int
	fmt.Sscan(m["CHAP_I"], &id)
	c, err := hex.DecodeString(m["CHAP_C"][min(2, len(m["CHAP_C"])):])
	if err != nil || len(c) == 0 {
		t.Fatalf("challenge %q", m["CHAP_C"])
	}
	sum := md5.Sum(append(append([]byte{byte(id)}, secret...), c...))
	start := time.Now()
	f = req(StageSecurity, true, StageOperational, "CHAP_N="+user, "CHAP_R=0x"+hex.EncodeToString(sum[:]))
	took := time.Since(start)
	if st := LoginStatus(f.BHS.u16(36)); st != LoginSuccess {
		return st, took, false
	}
	f = req(StageOperational, true, StageFullFeature)
	st := LoginStatus(f.BHS.u16(36))
	return st, took, st == LoginSuccess && f.BHS[1]&loginTransitBit != 0
}

// TestCHAPThrottle: wrong-secret logins from one source slow down as
// configured and then lock the source and name out, while another
// initiator from another source logs in with the right secret at normal
// speed all along. Timing assertions are lower bounds only (a delay is
// at least what was configured); the measured values are logged.
func TestCHAPThrottle(t *testing.T) {
	const (
		attacker = "iqn.2026-11.io.sanbridge:attacker"
		victim   = "iqn.2026-11.io.sanbridge:legit"
		secret   = "correct-horse-battery"
	)
	auth := AuthLimits{FreeFailures: 2, Delay: 40 * time.Millisecond, MaxDelay: 320 * time.Millisecond,
		LockoutAfter: 7, Lockout: 1500 * time.Millisecond}
	h := newMemHandler(8)
	tt := limitTarget(t, h, func(c *Config) {
		c.Limits.Auth = auth
		// The legitimate initiator's sessions end as it closes them, but
		// on a loaded machine not as fast as it logs in again.
		c.Limits.MaxSessionsPerInitiator = 1 << 16
		c.Limits.MaxSessions = 1 << 16
		c.Targets.(StaticTargets)[0].Access = func(name string) Access {
			return Access{Allowed: true, CHAP: &CHAPSecret{Username: name, Secret: secret}}
		}
	})
	wantDelay := []time.Duration{0, 0, 40, 80, 160, 320, 320} // attempts 1..7, ms
	var legitMax atomic.Int64
	var legitN atomic.Int64
	var attackerTimes []time.Duration
	t.Run("pair", func(t *testing.T) {
		done := make(chan struct{})
		t.Run("legit", func(t *testing.T) {
			t.Parallel()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				st, took, ok := wireCHAP(t, tt.addr, "127.0.0.3", byte(i), victim, victim, secret)
				if st != LoginSuccess || !ok {
					t.Fatalf("legitimate login %d: %v", i, st)
				}
				legitN.Add(1)
				legitMax.Store(max(legitMax.Load(), int64(took)))
			}
		})
		t.Run("attacker", func(t *testing.T) {
			t.Parallel()
			defer close(done)
			for i, w := range wantDelay {
				st, took, _ := wireCHAP(t, tt.addr, "127.0.0.2", 1, attacker, attacker, "wrong-guess-"+fmt.Sprint(i))
				attackerTimes = append(attackerTimes, took)
				if st != LoginAuthFailure {
					t.Fatalf("wrong secret %d: %v", i+1, st)
				}
				if took < w*time.Millisecond {
					t.Fatalf("wrong secret %d answered after %v, before the %v delay", i+1, took, w*time.Millisecond)
				}
			}
			// Locked out: even the right secret fails, from this source
			// with any name, and for this name.
			st, took, _ := wireCHAP(t, tt.addr, "127.0.0.2", 1, attacker, attacker, secret)
			attackerTimes = append(attackerTimes, took)
			if st != LoginAuthFailure || took < auth.MaxDelay {
				t.Fatalf("locked-out source with the right secret: %v after %v", st, took)
			}
			if st, _, _ := wireCHAP(t, tt.addr, "127.0.0.2", 2, "iqn.2026-11.io.sanbridge:other", "iqn.2026-11.io.sanbridge:other", secret); st != LoginAuthFailure {
				t.Fatalf("another name from the locked-out source: %v", st)
			}
			if st, _, _ := wireCHAP(t, tt.addr, "127.0.0.4", 3, attacker, attacker, secret); st != LoginAuthFailure {
				t.Fatalf("the locked-out name from another source: %v", st)
			}
			// The lockout ends; the right secret then works (after the
			// first delay: the failures are not forgotten yet).
			time.Sleep(auth.Lockout)
			st, took, ok := wireCHAP(t, tt.addr, "127.0.0.2", 1, attacker, attacker, secret)
			attackerTimes = append(attackerTimes, took)
			if st != LoginSuccess || !ok || took < auth.Delay {
				t.Fatalf("after the lockout: %v after %v", st, took)
			}
		})
	})
	st := tt.srv.LimitStats()
	t.Logf("attacker's CHAP answers took %v (last two: locked out, then after the lockout); %d legitimate logins meanwhile, slowest CHAP answer %v; stats: %d failures, %d delayed, %d lockouts, %d refused while locked",
		roundAll(attackerTimes), legitN.Load(), time.Duration(legitMax.Load()).Round(time.Microsecond),
		st.AuthFailures, st.AuthDelayed, st.AuthLockouts, st.AuthLockedOut)
	// Deterministic: only the attacker's attempts 3-7 and the one after
	// the lockout were delayed, never a legitimate login; the seventh
	// failure locked the source and the name out at once.
	if st.AuthDelayed != 6 || st.AuthFailures != 7 || st.AuthLockouts != 1 || st.AuthLockedOut != 3 {
		t.Errorf("stats %+v", st)
	}
	if legitN.Load() == 0 {
		t.Error("no legitimate login ran during the attack")
	}
}

func roundAll(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, v := range d {
		out[i] = v.Round(time.Millisecond)
	}
	return out
}

// TestSessionLimits: MaxSessionsPerInitiator and MaxSessions refuse
// logins with "out of resources"; a reinstatement takes the old
// session's place.
func TestSessionLimits(t *testing.T) {
	tt := newTestTarget(t, func(c *Config) {
		c.Limits.MaxSessions = 3
		c.Limits.MaxSessionsPerInitiator = 2
	})
	loginAs := func(name string, isid byte) LoginStatus {
		in := tt.dial()
		var b BHS
		b[0] = byte(OpLoginReq) | immediateBit
		b[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
		b[8] = 0x80
		b[13] = isid
		b.put32(24, 1)
		in.sendRaw(&b, textKV("InitiatorName="+name, "TargetName="+testIQN, "SessionType=Normal"))
		return LoginStatus(in.read().BHS.u16(36))
	}
	a, b := "iqn.2026-11.io.sanbridge:a", "iqn.2026-11.io.sanbridge:b"
	for i, tc := range []struct {
		name string
		isid byte
		want LoginStatus
	}{
		{a, 1, LoginSuccess},
		{a, 2, LoginSuccess},
		{a, 3, LoginOutOfResources}, // third of a
		{a, 2, LoginSuccess},        // reinstates a's second
		{b, 1, LoginSuccess},
		{"iqn.2026-11.io.sanbridge:c", 1, LoginOutOfResources}, // fourth in total
	} {
		if st := loginAs(tc.name, tc.isid); st != tc.want {
			t.Fatalf("login %d (%s ISID %d): %v, want %v", i, tc.name, tc.isid, st, tc.want)
		}
	}
	if got := tt.srv.LimitStats().SessionsRefused; got != 2 {
		t.Fatalf("SessionsRefused %d, want 2", got)
	}
}

// TestPendingLoginLimit: connections beyond MaxPendingLoginsPerSource
// that have not logged in are closed at once; the slot frees when a
// login completes.
func TestPendingLoginLimit(t *testing.T) {
	tt := newTestTarget(t, func(c *Config) {
		c.Limits.MaxPendingLoginsPerSource = 2
		c.Log = zerolog.Nop()
	})
	idle1, idle2 := tt.dial(), tt.dial() // connected, no login sent
	_ = idle1
	// Wait until the server counted them.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		tt.srv.mu.Lock()
		n := tt.srv.npending
		tt.srv.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pending logins counted, want 2", n)
		}
	}
	third := tt.dial()
	var f Frame
	third.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := third.rd.Read(&f); err == nil {
		t.Fatalf("third connection got %s", f.BHS.Opcode())
	}
	// One of the first two logs in: a slot is free again.
	idle2.login(1)
	for deadline := time.Now().Add(5 * time.Second); tt.srv.LimitStats().PendingLoginsRefused != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("PendingLoginsRefused %d", tt.srv.LimitStats().PendingLoginsRefused)
		}
	}
	fourth := tt.dial()
	fourth.login(2)
}

// TestTaskTableLimit: immediate commands, which the CmdSN window does not
// bound, get TASK SET FULL beyond MaxTasksPerSession; the session goes
// on.
func TestTaskTableLimit(t *testing.T) {
	tt := newTestTarget(t, func(c *Config) { c.Limits.MaxTasksPerSession = 4 })
	in := tt.dial()
	in.login(1)
	var blocked []uint32
	for i := 0; i < 4; i++ {
		blocked = append(blocked, in.scsi(blockCDB, false, false, 0, true, nil, true))
		<-tt.h.started
	}
	itt := in.scsi(turCDB, false, false, 0, true, nil, true)
	f := in.expect(OpSCSIResponse, itt, "fifth task")
	if f.BHS[3] != 0x28 {
		t.Fatalf("fifth task: status %#x, want TASK SET FULL", f.BHS[3])
	}
	close(tt.h.release)
	seen := map[uint32]bool{}
	for range blocked {
		seen[in.read().BHS.ITT()] = true
	}
	for _, b := range blocked {
		if !seen[b] {
			t.Fatalf("no response for %#x", b)
		}
	}
	itt = in.scsi(turCDB, false, false, 0, true, nil, false)
	if f := in.expect(OpSCSIResponse, itt, "TEST UNIT READY"); f.BHS[3] != 0 {
		t.Fatalf("TEST UNIT READY after: %#x", f.BHS[3])
	}
	if got := tt.srv.LimitStats().TaskTableFull; got != 1 {
		t.Fatalf("TaskTableFull %d", got)
	}
}

// TestPendingTMFLimit: task management requests waiting for an aborted
// task beyond MaxPendingTMF are rejected at once.
func TestPendingTMFLimit(t *testing.T) {
	lh := &lifeHandler{
		ctls:      make(map[byte]NexusControl),
		attached:  make(chan lifeEvent, 16),
		detached:  make(chan lifeEvent, 16),
		cancelled: make(chan uint32, 16),
		hold:      make(chan struct{}),
	}
	tt := newTestTarget(t, func(c *Config) {
		lh.memHandler = c.Targets.All()[0].Handler.(*memHandler)
		c.Targets = StaticTargets{{Name: testIQN, Handler: lh}}
		c.Limits.MaxPendingTMF = 1
	})
	in := tt.dial()
	in.login(1)
	itt := noDataCmd(in, holdCDB)
	<-lh.started
	first := in.tmf(TMFAbortTask, 0, itt)
	<-lh.cancelled
	// The abort waits for the held task; a second request is rejected.
	second := in.tmf(TMFAbortTaskSet, 0, 0)
	f := in.expect(OpTaskMgmtResp, second, "second TMF")
	if TMFResponse(f.BHS[2]) != TMFRejected {
		t.Fatalf("second TMF: %v, want function rejected", TMFResponse(f.BHS[2]))
	}
	close(lh.hold)
	f = in.expect(OpTaskMgmtResp, first, "first TMF")
	if TMFResponse(f.BHS[2]) != TMFComplete {
		t.Fatalf("first TMF: %v", TMFResponse(f.BHS[2]))
	}
}

// TestTextKeyLimit: a login or Text Request with more keys than
// MaxTextKeys is refused.
func TestTextKeyLimit(t *testing.T) {
	tt := newTestTarget(t, func(c *Config) { c.Limits.MaxTextKeys = 8 })
	in := tt.dial()
	var keys []string
	for i := 0; i < 9; i++ {
		keys = append(keys, fmt.Sprintf("X-k%d=1", i))
	}
	var b BHS
	b[0] = byte(OpLoginReq) | immediateBit
	b[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	b[8] = 0x80
	b.put32(24, 1)
	in.sendRaw(&b, textKV(append([]string{"InitiatorName=iqn.2026-11.io.sanbridge:initiator", "TargetName=" + testIQN}, keys[:7]...)...))
	if st := LoginStatus(in.read().BHS.u16(36)); st != LoginInitiatorError {
		t.Fatalf("login with 9 keys: %v", st)
	}
	in2 := tt.dial()
	in2.login(2)
	var tb BHS
	tb[0] = byte(OpTextReq) | immediateBit
	tb[1] = finalBit
	tb.put32(16, 99)
	tb.put32(20, reservedTag)
	tb.put32(24, in2.cmdSN)
	in2.sendRaw(&tb, textKV(keys...))
	if f := in2.read(); f.BHS.Opcode() != OpReject {
		t.Fatalf("text request with 9 keys: %s", f.BHS.Opcode())
	}
	if got := tt.srv.LimitStats().TextKeysRefused; got != 2 {
		t.Fatalf("TextKeysRefused %d", got)
	}
}
