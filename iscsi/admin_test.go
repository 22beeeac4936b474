package iscsi

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loginKeys sends one operational-stage Login Request with the test
// initiator's name and keys, and returns the status of the answer.
func (in *rawInit) loginKeys(keys ...string) LoginStatus {
	in.t.Helper()
	var b BHS
	b[0] = byte(OpLoginReq) | immediateBit
	b[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	b[8] = 0x80
	b.put32(16, 1)
	in.sendRaw(&b, textKV(append([]string{"InitiatorName=iqn.2026-11.io.sanbridge:initiator"}, keys...)...))
	return LoginStatus(in.read().BHS.u16(36))
}

// hookLog records the engine's hook calls.
type hookLog struct {
	mu      sync.Mutex
	started []SessionDetail
	ended   chan SessionDetail
	failed  []string
	chap    []string
}

func (h *hookLog) hooks() Hooks {
	return Hooks{
		SessionStarted: func(d SessionDetail) { h.mu.Lock(); h.started = append(h.started, d); h.mu.Unlock() },
		SessionEnded:   func(d SessionDetail) { h.ended <- d },
		LoginFailed: func(target string, st LoginStatus) {
			h.mu.Lock()
			h.failed = append(h.failed, target+"|"+st.String())
			h.mu.Unlock()
		},
		CHAPFailed: func(target string) { h.mu.Lock(); h.chap = append(h.chap, target); h.mu.Unlock() },
	}
}

// TestHooksAndSessionDetails: the hooks see a session start and end and
// a refused login; SessionDetails lists the session with its portal and
// negotiated parameters.
func TestHooksAndSessionDetails(t *testing.T) {
	h := &hookLog{ended: make(chan SessionDetail, 4)}
	tt := newTestTarget(t, func(c *Config) { c.Hooks = h.hooks() })
	in := tt.dial()
	in.login(1, "MaxBurstLength=65536")
	ds := tt.srv.SessionDetails()
	if len(ds) != 1 {
		t.Fatalf("SessionDetails: %d sessions, want 1", len(ds))
	}
	d := ds[0]
	if d.Nexus.TargetName != testIQN || d.Nexus.ISID[5] != 1 || d.Discovery || d.Portal.Group != 1 ||
		d.Local != tt.addr || d.Params.MaxBurstLength != 65536 || d.Started.IsZero() || d.Nexus.TSIH == 0 {
		t.Fatalf("SessionDetails: %+v", d)
	}
	h.mu.Lock()
	if len(h.started) != 1 || h.started[0].Nexus.TargetName != testIQN {
		t.Fatalf("SessionStarted calls: %+v", h.started)
	}
	h.mu.Unlock()
	in.logout(9)
	if f := in.read(); f.BHS.Opcode() != OpLogoutResp {
		t.Fatalf("logout: %s", f.BHS.Opcode())
	}
	select {
	case e := <-h.ended:
		if e.Nexus.TargetName != testIQN {
			t.Fatalf("SessionEnded: %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no SessionEnded")
	}
	if n := len(tt.srv.SessionDetails()); n != 0 {
		t.Fatalf("SessionDetails after logout: %d sessions", n)
	}

	// A login to a target that does not exist.
	in2 := tt.dial()
	if st := in2.loginKeys("TargetName=iqn.2026-11.io.sanbridge:nope", "SessionType=Normal"); st != LoginNotFound {
		t.Fatalf("login to a missing target: status %s", st)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failed) != 1 || h.failed[0] != "|"+LoginNotFound.String() {
		t.Fatalf("LoginFailed calls: %q", h.failed)
	}
}

// TestRequestLogout: a selected session gets an Asynchronous Message
// "logout request" with its DefaultTime2Wait as the time limit, and is
// dropped when it does not log out; the session not selected goes on.
func TestRequestLogout(t *testing.T) {
	h := &hookLog{ended: make(chan SessionDetail, 4)}
	tt := newTestTarget(t, func(c *Config) { c.Hooks = h.hooks() })
	a := tt.dial()
	p := a.login(1)
	b := tt.dial()
	b.login(2)
	n := tt.srv.RequestLogout(func(d SessionDetail) bool { return d.Nexus.ISID[5] == 1 })
	if n != 1 {
		t.Fatalf("RequestLogout asked %d sessions, want 1", n)
	}
	if n := tt.srv.RequestLogout(func(d SessionDetail) bool { return d.Nexus.ISID[5] == 1 }); n != 0 {
		t.Fatalf("a second RequestLogout asked %d sessions again", n)
	}
	f := a.read()
	if f.BHS.Opcode() != OpAsyncMessage || AsyncEvent(f.BHS[36]) != AsyncLogoutRequest || p["DefaultTime2Wait"] != "" && strconv.Itoa(int(f.BHS.u16(42))) != p["DefaultTime2Wait"] || f.BHS.u16(42) == 0 {
		t.Fatalf("got %s event %d parameter3 %d, want an Async Message logout request within DefaultTime2Wait %q", f.BHS.Opcode(), f.BHS[36], f.BHS.u16(42), p["DefaultTime2Wait"])
	}
	// a does not log out: its connection is dropped.
	a.nc.SetDeadline(time.Now().Add(20 * time.Second))
	var fr Frame
	err := a.rd.Read(&fr)
	if err == nil || !(errors.Is(err, io.EOF) || isReset(err) || strings.Contains(err.Error(), "closed")) {
		t.Fatalf("after ignoring the logout request: %v, %s", err, fr.BHS.Opcode())
	}
	select {
	case e := <-h.ended:
		if e.Nexus.ISID[5] != 1 || e.LogoutRequested.IsZero() {
			t.Fatalf("SessionEnded: %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session asked to log out never ended")
	}
	// b still works.
	itt := b.scsi(read10(0, 1), true, false, 512, true, nil, false)
	if _, st, _ := b.readAll(itt, 262144); st != 0 {
		t.Fatalf("the other session's READ: status %#x", st)
	}
}

// TestStopLogins: after StopLogins, new connections are refused and the
// live session goes on.
func TestStopLogins(t *testing.T) {
	tt := newTestTarget(t, nil)
	a := tt.dial()
	a.login(1)
	tt.srv.StopLogins()
	if c, err := net.DialTimeout("tcp", tt.addr, 5*time.Second); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a new connection was served after StopLogins")
		}
		c.Close()
	}
	itt := a.scsi(read10(0, 1), true, false, 512, true, nil, false)
	if _, st, _ := a.readAll(itt, 262144); st != 0 {
		t.Fatalf("READ after StopLogins: status %#x", st)
	}
}

// portalTargets is a Targets with run-time portals.
type portalTargets struct {
	StaticTargets
	ps []Portal
}

func (p portalTargets) Portals() []Portal { return p.ps }

// TestPortalSetAdvertised: discovery advertises the PortalSet's portals.
func TestPortalSetAdvertised(t *testing.T) {
	tt := newTestTarget(t, func(c *Config) {
		c.Targets = portalTargets{StaticTargets: c.Targets.(StaticTargets), ps: []Portal{{Listen: "192.0.2.7:3260", Group: 1}}}
	})
	in := tt.dial()
	if st := in.loginKeys("SessionType=Discovery"); st != LoginSuccess {
		t.Fatalf("discovery login: %s", st)
	}
	var tb BHS
	tb[0] = byte(OpTextReq) | immediateBit
	tb[1] = finalBit
	tb.put32(16, 2)
	tb.put32(20, reservedTag)
	tb.put32(24, 1)
	in.sendRaw(&tb, textKV("SendTargets=All"))
	f := in.read()
	if !strings.Contains(string(f.Data), "TargetAddress=192.0.2.7:3260,1") {
		t.Fatalf("SendTargets answer %q does not advertise the PortalSet's portal", f.Data)
	}
}
