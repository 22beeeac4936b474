package iscsi

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// loginPDU is a valid one-PDU login to the test target.
func loginPDU(isid byte) []byte {
	var b BHS
	b[0] = byte(OpLoginReq) | immediateBit
	b[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	b[8] = 0x80
	b[13] = isid
	b.put32(24, 1)
	kv := textKV("InitiatorName=iqn.2026-11.io.sanbridge:initiator", "TargetName="+testIQN, "SessionType=Normal",
		"ImmediateData=Yes", "InitialR2T=No", "MaxRecvDataSegmentLength=4096")
	b.SetDataSegmentLength(uint32(len(kv)))
	return append(append(b[:], kv...), make([]byte, padLen(len(kv)))...)
}

// FuzzSession logs in and then sends arbitrary bytes on the connection.
// The server must neither panic nor hang: shutting it down afterwards
// must finish promptly. Nor may it hold more command data than its
// memory budget, whatever lengths the bytes announce: its own count must
// stay within the budget, and the heap must not grow by more than the
// budget plus a margin while the input runs.
func FuzzSession(f *testing.F) {
	f.Add(mustHex(f, goldenRead10))
	f.Add(frameBytes(BHS{byte(OpSCSIDataOut), finalBit}, nil, []byte("abc"), false, false))
	f.Add(frameBytes(BHS{byte(OpTaskMgmtReq) | immediateBit, finalBit | 5}, nil, nil, false, false))
	f.Add(frameBytes(BHS{byte(OpTextReq), finalBit}, nil, []byte("SendTargets=All\x00"), false, false))
	f.Add(frameBytes(BHS{byte(OpLogoutReq) | immediateBit, finalBit}, nil, nil, false, false))
	f.Add(frameBytes(BHS{byte(OpSNACKReq), finalBit}, nil, nil, false, false))
	f.Add(frameBytes(BHS{byte(OpSCSICommand), scsiCmdWriteBit | 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x10, 0}, nil, make([]byte, 512), false, false))
	// READ(10) of 0xFFFF blocks with EDTL 4 GiB - 1, immediate and not.
	f.Add(frameBytes(BHS{byte(OpSCSICommand), finalBit | scsiCmdReadBit | 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, nil, nil, false, false))
	f.Add(frameBytes(BHS{byte(OpSCSICommand) | immediateBit, finalBit | scsiCmdReadBit | 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x00, 0xf0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 8}, nil, nil, false, false))
	const budget, margin = 8 << 20, 32 << 20
	f.Fuzz(func(t *testing.T, raw []byte) {
		h := newMemHandler(64)
		close(h.release)
		srv, err := NewServer(Config{
			Portals: []Portal{{Listen: "127.0.0.1:0", Group: 1}},
			Targets: StaticTargets{{Name: testIQN, Handler: h}},
			Log:     zerolog.Nop(),
			Limits:  Limits{Memory: budget, MaxTransfer: 4 << 20},
		})
		if err != nil {
			t.Fatal(err)
		}
		a, b := net.Pipe()
		c := newConn(srv, a, &srv.cfg.Portals[0])
		srv.mu.Lock()
		srv.conns[c] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go func() { defer srv.wg.Done(); c.serve(srv.baseCtx) }()
		go func() {
			// Drain whatever the target answers.
			buf := make([]byte, 64<<10)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		base := heapObjects()
		hs := startHeapSampler()
		b.SetWriteDeadline(time.Now().Add(2 * time.Second))
		b.Write(loginPDU(1))
		b.Write(raw)
		time.Sleep(time.Millisecond)
		b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("server hung after input %x: %v", raw, err)
		}
		peak := hs.finish()
		if st := srv.LimitStats(); st.MemoryPeak > budget || st.MemoryInFlight != 0 {
			t.Fatalf("server held %d bytes at its peak (budget %d), %d still at the end", st.MemoryPeak, budget, st.MemoryInFlight)
		}
		if peak > base+budget+margin {
			t.Fatalf("heap grew from %d to %d bytes: more than the %d budget + %d", base, peak, budget, margin)
		}
	})
}

// TestNoGoroutineLeak runs sessions that end every way a session can
// end and checks that the server's goroutines are all gone afterwards.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		tt := newTestTarget(t, nil)
		// Logout.
		in := tt.dial()
		in.login(1)
		in.scsi(read10(0, 8), true, false, 4096, true, nil, false)
		in.readAll(in.itt-1, 1<<20)
		in.logout(0)
		in.read()
		// Abrupt close with a task waiting for data and one running.
		in2 := tt.dial()
		in2.login(2, "InitialR2T=Yes")
		in2.scsi(write10(0, 8), false, true, 4096, true, nil, false)
		in2.read() // R2T
		in2.scsi([]byte{0xc0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
		<-tt.h.started
		in2.nc.Close()
		// Reinstatement.
		in3 := tt.dial()
		in3.login(3)
		in4 := tt.dial()
		in4.login(3)
		// Protocol error.
		in5 := tt.dial()
		in5.login(5)
		in5.sendRaw(&BHS{0x3e}, nil)
		in5.read()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tt.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoginWriteFailureLeavesNoSession: when the final Login Response
// can't be sent (the initiator vanished), the session registered for it
// is dropped, so a later login with the same ISID is not blocked.
func TestLoginWriteFailureLeavesNoSession(t *testing.T) {
	tt := newTestTarget(t, nil)
	a, b := net.Pipe()
	c := newConn(tt.srv, a, &tt.srv.cfg.Portals[0])
	done := make(chan struct{})
	go func() { c.serve(tt.srv.baseCtx); close(done) }()
	b.Write(loginPDU(9)) // net.Pipe: returns once the target has read it
	b.Close()            // ...and the response write then fails
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("connection did not end")
	}
	if n := len(tt.srv.Sessions()); n != 0 {
		t.Fatalf("%d sessions left registered", n)
	}
	in := tt.dial()
	in.login(9) // same ISID as the failed login: must not be refused
}
