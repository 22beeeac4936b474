package iscsi

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the committed seed corpora of FuzzLogin, FuzzCHAP and FuzzTextKeys")

// A FuzzLogin input is a sequence of steps:
//
//	byte 0   byte 1 of a Login Request BHS: T C . . CSG CSG NSG NSG
//	byte 1   changes: 1 new ISID, 2 VersionMin=1, 4 TSIH=1, 8 CmdSN+1
//	byte 2-3 data length, big endian
//	...      data
type fuzzStep struct {
	flags, mod byte
	data       []byte
}

func loginFlags(transit, cont bool, csg, nsg Stage) byte {
	var b byte
	if transit {
		b |= loginTransitBit
	}
	if cont {
		b |= loginContinueBit
	}
	return b | byte(csg)<<2 | byte(nsg)
}

func encodeFuzzSteps(steps ...fuzzStep) []byte {
	var b []byte
	for _, s := range steps {
		b = append(b, s.flags, s.mod, byte(len(s.data)>>8), byte(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

func decodeFuzzSteps(b []byte) []fuzzStep {
	var steps []fuzzStep
	for len(b) >= 4 && len(steps) < 16 {
		n := int(b[2])<<8 | int(b[3])
		s := fuzzStep{flags: b[0], mod: b[1]}
		b = b[4:]
		n = min(n, len(b))
		s.data, b = b[:n], b[n:]
		steps = append(steps, s)
	}
	return steps
}

// loginSeeds are complete and partial logins of every kind.
func loginSeeds() [][]byte {
	op := loginFlags(true, false, StageOperational, StageFullFeature)
	sec := loginFlags(true, false, StageSecurity, StageOperational)
	return [][]byte{
		encodeFuzzSteps(fuzzStep{op, 0, kv(append([]string{"InitiatorName=" + tInitiator, "TargetName=" + tTarget}, linuxOpKeys...)...)}),
		encodeFuzzSteps(
			fuzzStep{sec, 0, kv("InitiatorName="+tInitiator, "TargetName="+tTarget, "AuthMethod=None")},
			fuzzStep{op, 0, kv(linuxOpKeys...)}),
		encodeFuzzSteps(fuzzStep{op, 0, kv("InitiatorName="+tInitiator, "SessionType=Discovery", "MaxRecvDataSegmentLength=512", "X-a=b")}),
		encodeFuzzSteps(
			fuzzStep{sec, 0, kv("InitiatorName="+tInitiator, "TargetName="+tTarget2, "AuthMethod=CHAP,None")},
			fuzzStep{loginFlags(false, false, StageSecurity, 0), 0, kv("CHAP_A=8,7,5")},
			fuzzStep{sec, 0, kv("CHAP_N=user1", "CHAP_R=0x00112233445566778899aabbccddeeff", "CHAP_I=3", "CHAP_C=0b3q2+7w==")}),
		encodeFuzzSteps(
			fuzzStep{loginFlags(false, true, StageOperational, 0), 0, []byte("InitiatorName=iqn.2024-01.org.exa")},
			fuzzStep{op, 0, []byte("mple:host1\x00TargetName=" + tTarget + "\x00FirstBurstLength=9999\x00MaxBurstLength=4096\x00")}),
		encodeFuzzSteps(fuzzStep{op, 2, kv("InitiatorName=" + tInitiator)}),
		encodeFuzzSteps(
			fuzzStep{loginFlags(false, false, StageOperational, 0), 0, kv("InitiatorName="+tInitiator, "TargetName="+tTarget)},
			fuzzStep{op, 1, nil}),
	}
}

// FuzzLogin runs arbitrary sequences of Login Requests through the login
// state machine: it must never panic, and every response must be
// well formed with a status that agrees with the error.
func FuzzLogin(f *testing.F) {
	for _, s := range loginSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e := newLoginEnv(t)
		e.creds.MutualUsername, e.creds.MutualSecret = "t", tMutual
		l := newLogin(loginConfig{Config: &e.cfg, Portal: &e.portal, Log: zerolog.New(io.Discard).Level(zerolog.DebugLevel), rand: fixedRand(1),
			Commit: func(r *loginResult) (uint16, LoginStatus) { return 9, LoginSuccess }})
		failed := false
		for i, s := range decodeFuzzSteps(in) {
			req := &LoginRequest{
				Transit: s.flags&loginTransitBit != 0, Continue: s.flags&loginContinueBit != 0,
				CSG: Stage(s.flags >> 2 & 3), NSG: Stage(s.flags & 3), ITT: uint32(i), CmdSN: 5,
			}
			if s.mod&1 != 0 {
				req.ISID[0] = 1
			}
			if s.mod&2 != 0 {
				req.VersionMin, req.VersionMax = 1, 1
			}
			if s.mod&4 != 0 {
				req.TSIH = 1
			}
			if s.mod&8 != 0 {
				req.CmdSN++
			}
			resp, done, err := l.handle(req, s.data)
			if resp == nil {
				t.Fatal("no response")
			}
			if strings.HasPrefix(resp.Status.String(), "LoginStatus(") {
				t.Fatalf("invalid status %#04x", uint16(resp.Status))
			}
			if (err != nil) != (resp.Status != LoginSuccess) {
				t.Fatalf("status %v with error %v", resp.Status, err)
			}
			if failed && err == nil {
				t.Fatal("success after a failure")
			}
			failed = failed || err != nil
			if len(resp.Data) > textLoginMaxSegment {
				t.Fatalf("response of %d bytes", len(resp.Data))
			}
			if _, perr := parseText(resp.Data); perr != nil {
				t.Fatalf("response text: %v", perr)
			}
			if resp.Transit && (!req.Transit || resp.Continue || resp.NSG <= resp.CSG) {
				t.Fatalf("response T=%v C=%v %v->%v to request T=%v", resp.Transit, resp.Continue, resp.CSG, resp.NSG, req.Transit)
			}
			if done != (l.result() != nil) || done && (resp.NSG != StageFullFeature || resp.TSIH != 9) {
				t.Fatalf("done=%v result=%v", done, l.result())
			}
			if done {
				p := l.result().Params
				if p.FirstBurstLength > p.MaxBurstLength || p.MaxRecvDataSegmentLength < 512 || p.MaxXmitDataSegmentLength < 512 {
					t.Fatalf("params %+v", p)
				}
				if !l.result().Discovery && l.result().Target == nil {
					t.Fatal("normal session without target")
				}
				return
			}
		}
	})
}

// TestWriteFuzzSeeds rewrites the committed corpora under testdata/fuzz
// when run with -update-fuzz-seeds; without it, it checks they exist.
func TestWriteFuzzSeeds(t *testing.T) {
	type corpus struct {
		name  string
		lines [][]string
	}
	var cs []corpus
	var login [][]string
	for _, s := range loginSeeds() {
		login = append(login, []string{"[]byte(" + strconv.Quote(string(s)) + ")"})
	}
	cs = append(cs, corpus{"FuzzLogin", login})
	var text [][]string
	for _, s := range [][]byte{
		kv(linuxOpKeys...),
		kv("SendTargets=All"),
		[]byte("A=1\x00\x00\x00B"),
		kv("X#NodeArchitecture=Linux", "CHAP_C=0b"+strings.Repeat("A", 100)),
	} {
		text = append(text, []string{"[]byte(" + strconv.Quote(string(s)) + ")"})
	}
	cs = append(cs, corpus{"FuzzTextKeys", text})
	q := func(s string) string { return "string(" + strconv.Quote(s) + ")" }
	cs = append(cs, corpus{"FuzzCHAP", [][]string{
		{q("5"), q("u"), q("0x" + strings.Repeat("00", 16)), q(""), q("")},
		{q("8,7,5"), q("u"), q("0b" + strings.Repeat("A", 43) + "="), q("7"), q("0x01020304")},
		{q("7"), q("u"), q("0X" + hex.EncodeToString(make([]byte, 32))), q("0x10"), q("0bAAECAw")},
		{q("5,6"), q("user"), q("zz"), q("300"), q("0x")},
	}})
	for _, c := range cs {
		dir := filepath.Join("testdata", "fuzz", c.name)
		if !*updateSeeds {
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) < len(c.lines) {
				t.Errorf("%s: %d committed seeds (%v); run go test -run TestWriteFuzzSeeds -update-fuzz-seeds", dir, len(ents), err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range c.lines {
			body := "go test fuzz v1\n" + strings.Join(args, "\n") + "\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
