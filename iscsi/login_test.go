package iscsi

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const (
	tInitiator  = "iqn.2024-01.org.example:host1"
	tTarget     = "iqn.2024-01.com.example:disk1"
	tTarget2    = "iqn.2024-01.com.example:disk2"
	tGroup2Only = "iqn.2024-01.com.example:g2"
	tSecret     = "initiator-secret-1"
	tMutual     = "target-secret-0002"
)

// loginEnv is a server configuration for login tests: disk1 open to all,
// disk2 with CHAP (mutual optional per test), g2 on portal group 2 only.
type loginEnv struct {
	cfg     Config
	creds   *CHAPSecret
	commits []*loginResult
	status  LoginStatus
	logBuf  bytes.Buffer
	portal  Portal
}

func newLoginEnv(t *testing.T) *loginEnv {
	e := &loginEnv{status: LoginSuccess, portal: Portal{Listen: "127.0.0.1:3260", Group: 1}}
	e.creds = &CHAPSecret{Username: "user1", Secret: tSecret}
	e.cfg = Config{
		Portals: []Portal{e.portal, {Listen: "127.0.0.1:3261", Group: 2}},
		Targets: StaticTargets{
			{Name: tTarget, Alias: "disk one"},
			{Name: tTarget2, Access: func(name string) Access {
				if name == "iqn.2024-01.org.example:denied" {
					return Access{}
				}
				return Access{Allowed: true, CHAP: e.creds}
			}},
			{Name: tGroup2Only, Groups: []uint16{2}},
		},
		Preferences: DefaultPreferences(),
		CmdWindow:   32,
	}
	return e
}

func (e *loginEnv) newLogin(t *testing.T) *login {
	t.Helper()
	w := zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), &e.logBuf)
	return newLogin(loginConfig{
		Config: &e.cfg,
		Portal: &e.portal,
		Log:    zerolog.New(w).Level(zerolog.DebugLevel),
		Commit: func(r *loginResult) (uint16, LoginStatus) {
			e.commits = append(e.commits, r)
			if e.status != LoginSuccess {
				return 0, e.status
			}
			return 0x1234, LoginSuccess
		},
	})
}

// kv encodes key=value pairs given as "k=v" strings.
func kv(pairs ...string) []byte {
	var b []byte
	for _, p := range pairs {
		b = append(b, p...)
		b = append(b, 0)
	}
	return b
}

// keys decodes a response's text into "k=v" strings.
func keys(t *testing.T, data []byte) []string {
	t.Helper()
	pairs, err := parseText(data)
	if err != nil {
		t.Fatalf("response text: %v", err)
	}
	var s []string
	for _, p := range pairs {
		s = append(s, p.Key+"="+p.Value)
	}
	return s
}

func keyMap(t *testing.T, data []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, s := range keys(t, data) {
		k, v, _ := strings.Cut(s, "=")
		if _, dup := m[k]; dup {
			t.Fatalf("key %s twice in response", k)
		}
		m[k] = v
	}
	return m
}

// initiator drives a login like an initiator would.
type initiator struct {
	t      *testing.T
	l      *login
	isid   ISID
	tsih   uint16
	cid    uint16
	cmdSN  uint32
	expSN  uint32
	itt    uint32
	stage  Stage
	lastSN uint32
	nresp  int
}

func newInitiator(t *testing.T, l *login) *initiator {
	return &initiator{t: t, l: l, isid: ISID{0x80, 0, 0, 0, 0, 1}, cmdSN: 1000, expSN: 77, itt: 5}
}

// send sends one request; it checks the response's invariants.
func (in *initiator) send(csg Stage, transit bool, nsg Stage, data []byte) (*LoginResponse, bool, error) {
	in.t.Helper()
	req := &LoginRequest{
		Transit: transit, CSG: csg, NSG: nsg, ISID: in.isid, TSIH: in.tsih, CID: in.cid,
		ITT: in.itt, CmdSN: in.cmdSN, ExpStatSN: in.expSN,
	}
	return in.sendReq(req, data)
}

func (in *initiator) sendReq(req *LoginRequest, data []byte) (*LoginResponse, bool, error) {
	in.t.Helper()
	resp, done, err := in.l.handle(req, data)
	if resp == nil {
		in.t.Fatal("handle returned no response")
	}
	if resp.ITT != req.ITT {
		in.t.Errorf("response ITT %#x, want %#x", resp.ITT, req.ITT)
	}
	if err != nil {
		var le *LoginError
		if !errors.As(err, &le) || le.Status != resp.Status || resp.Status.Class() == 0 {
			in.t.Fatalf("error %v with response status %v", err, resp.Status)
		}
		return resp, done, err
	}
	if resp.Status != LoginSuccess {
		in.t.Fatalf("status %v without error", resp.Status)
	}
	// RFC 7143 11.13.4: StatSN starts at any value and increments by one
	// per response.
	if in.nresp > 0 && resp.StatSN != in.lastSN+1 {
		in.t.Errorf("StatSN %d after %d", resp.StatSN, in.lastSN)
	}
	in.lastSN = resp.StatSN
	in.nresp++
	in.expSN = resp.StatSN + 1
	if resp.ExpCmdSN != req.CmdSN || resp.MaxCmdSN != req.CmdSN+31 {
		in.t.Errorf("ExpCmdSN/MaxCmdSN %d/%d for CmdSN %d", resp.ExpCmdSN, resp.MaxCmdSN, req.CmdSN)
	}
	if resp.CSG != req.CSG {
		in.t.Errorf("response CSG %v, request %v", resp.CSG, req.CSG)
	}
	if resp.Transit && !req.Transit {
		in.t.Error("T=1 in a response to T=0 (RFC 7143 11.13.3)")
	}
	if resp.Transit && resp.Continue {
		in.t.Error("T and C both set")
	}
	if resp.Transit && resp.NSG != req.NSG {
		in.t.Errorf("response NSG %v, request %v", resp.NSG, req.NSG)
	}
	if !done && resp.TSIH != req.TSIH {
		in.t.Errorf("non-final response TSIH %#x", resp.TSIH)
	}
	return resp, done, nil
}

// must sends a request that must succeed.
func (in *initiator) must(csg Stage, transit bool, nsg Stage, data []byte) *LoginResponse {
	in.t.Helper()
	r, _, err := in.send(csg, transit, nsg, data)
	if err != nil {
		in.t.Fatalf("login step failed: %v", err)
	}
	return r
}

func mustOK(t *testing.T, resp *LoginResponse, done bool, err error) *LoginResponse {
	t.Helper()
	if err != nil {
		t.Fatalf("login step failed: %v", err)
	}
	return resp
}

var linuxOpKeys = []string{
	"HeaderDigest=None", "DataDigest=None", "MaxRecvDataSegmentLength=262144",
	"InitialR2T=Yes", "ImmediateData=Yes", "MaxBurstLength=16776192",
	"FirstBurstLength=262144", "MaxOutstandingR2T=1", "MaxConnections=1",
	"DataPDUInOrder=Yes", "DataSequenceInOrder=Yes", "DefaultTime2Wait=2",
	"DefaultTime2Retain=0", "IFMarker=No", "OFMarker=No", "ErrorRecoveryLevel=0",
}

// TestLoginOpenISCSINone follows the Linux initiator without CHAP: a
// security stage with AuthMethod=None, then the operational stage.
func TestLoginOpenISCSINone(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	r := in.must(StageSecurity, true, StageOperational, kv(
		"InitiatorName="+tInitiator, "InitiatorAlias=host1", "SessionType=Normal",
		"TargetName="+tTarget, "AuthMethod=None"))
	if r.StatSN != 77 {
		t.Errorf("first StatSN %d, want the initiator's ExpStatSN 77", r.StatSN)
	}
	if !r.Transit || r.NSG != StageOperational {
		t.Fatalf("security stage: T=%v NSG=%v", r.Transit, r.NSG)
	}
	want := []string{"TargetPortalGroupTag=1", "TargetAlias=disk one", "AuthMethod=None"}
	if got := keys(t, r.Data); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("security response %q, want %q", got, want)
	}
	r, done, err := in.send(StageOperational, true, StageFullFeature, kv(linuxOpKeys...))
	mustOK(t, r, done, err)
	if !done || !r.Transit || r.NSG != StageFullFeature || r.TSIH != 0x1234 {
		t.Fatalf("final response: done=%v T=%v NSG=%v TSIH=%#x", done, r.Transit, r.NSG, r.TSIH)
	}
	want = []string{
		"HeaderDigest=None", "DataDigest=None", "InitialR2T=Yes", "ImmediateData=Yes",
		"MaxBurstLength=16776192", "MaxOutstandingR2T=1", "MaxConnections=1",
		"DataPDUInOrder=Yes", "DataSequenceInOrder=Yes", "DefaultTime2Wait=2",
		"DefaultTime2Retain=0", "IFMarker=No", "OFMarker=No", "ErrorRecoveryLevel=0",
		"FirstBurstLength=262144", "MaxRecvDataSegmentLength=262144",
	}
	if got := keys(t, r.Data); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("operational response\n got %q\nwant %q", got, want)
	}
	res := in.l.result()
	if res == nil || len(e.commits) != 1 {
		t.Fatalf("result %v, %d commits", res, len(e.commits))
	}
	wantRes := loginResult{
		InitiatorName: tInitiator, InitiatorAlias: "host1", Target: res.Target,
		ISID: in.isid, Params: Params{
			MaxConnections: 1, InitialR2T: true, ImmediateData: true,
			MaxRecvDataSegmentLength: 262144, MaxXmitDataSegmentLength: 262144,
			MaxBurstLength: 16776192, FirstBurstLength: 262144, DefaultTime2Wait: 2,
			DefaultTime2Retain: 0, MaxOutstandingR2T: 1, DataPDUInOrder: true,
			DataSequenceInOrder: true,
		},
		ExpCmdSN: 1000, StatSN: r.StatSN + 1,
	}
	if *res != wantRes {
		t.Errorf("result\n got %+v\nwant %+v", *res, wantRes)
	}
	if res.Target == nil || res.Target.Name != tTarget {
		t.Errorf("result target %v", res.Target)
	}
	if res.StatSN != 79 {
		t.Errorf("next StatSN %d, want 79 (77, 78 used by the two responses)", res.StatSN)
	}
}

// TestLoginLibiscsiNone follows libiscsi without CHAP: one request in the
// operational stage straight to full feature phase.
func TestLoginLibiscsiNone(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	r, done, err := in.send(StageOperational, true, StageFullFeature, kv(
		"InitiatorName="+tInitiator, "TargetName="+tTarget, "SessionType=Normal",
		"HeaderDigest=CRC32C,None", "DataDigest=None,CRC32C", "InitialR2T=No",
		"ImmediateData=Yes", "MaxBurstLength=262144", "FirstBurstLength=262144",
		"MaxRecvDataSegmentLength=262144", "DataPDUInOrder=Yes", "DefaultTime2Wait=2",
		"DefaultTime2Retain=0", "IFMarker=No", "OFMarker=No", "MaxConnections=1",
		"MaxOutstandingR2T=1", "ErrorRecoveryLevel=0", "DataSequenceInOrder=Yes"))
	mustOK(t, r, done, err)
	if !done {
		t.Fatal("login not complete")
	}
	m := keyMap(t, r.Data)
	for k, v := range map[string]string{
		"TargetPortalGroupTag": "1", "HeaderDigest": "CRC32C", "DataDigest": "None",
		"InitialR2T": "No", "MaxRecvDataSegmentLength": "262144", "FirstBurstLength": "262144",
	} {
		if m[k] != v {
			t.Errorf("%s=%q, want %q", k, m[k], v)
		}
	}
	p := in.l.result().Params
	if !p.HeaderDigest || p.DataDigest || p.InitialR2T {
		t.Errorf("params %+v", p)
	}
}

func TestLoginDiscovery(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	r, done, err := in.send(StageOperational, true, StageFullFeature, kv(
		"InitiatorName="+tInitiator, "SessionType=Discovery", "TargetName=whatever",
		"HeaderDigest=None", "MaxRecvDataSegmentLength=32768", "InitialR2T=Yes",
		"MaxBurstLength=4096", "DefaultTime2Wait=0"))
	mustOK(t, r, done, err)
	want := []string{
		"HeaderDigest=None", "InitialR2T=Irrelevant", "MaxBurstLength=Irrelevant",
		"DefaultTime2Wait=2", "MaxRecvDataSegmentLength=262144",
	}
	if got := keys(t, r.Data); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("discovery response\n got %q\nwant %q", got, want)
	}
	res := in.l.result()
	if !done || !res.Discovery || res.Target != nil || res.Params.MaxXmitDataSegmentLength != 32768 {
		t.Fatalf("discovery result %+v", res)
	}
}

// chapInitiator answers the target's challenge like an initiator.
func chapAnswer(t *testing.T, alg int, id byte, secret string, challenge []byte) []byte {
	t.Helper()
	msg := append(append([]byte{id}, secret...), challenge...)
	switch alg {
	case 5:
		s := md5.Sum(msg)
		return s[:]
	case 7:
		s := sha256.Sum256(msg)
		return s[:]
	case 8:
		s := sha3.Sum256(msg)
		return s[:]
	}
	t.Fatalf("algorithm %d", alg)
	return nil
}

// chapLogin runs the security stage with CHAP up to the initiator's
// response; respond builds the CHAP_N/CHAP_R (and more) keys from the
// target's CHAP_I and challenge.
func chapLogin(t *testing.T, in *initiator, algs string, respond func(alg int, id byte, c []byte) []string) (*LoginResponse, bool, error) {
	t.Helper()
	r := in.must(StageSecurity, true, StageOperational, kv(
		"InitiatorName="+tInitiator, "SessionType=Normal", "TargetName="+tTarget2,
		"AuthMethod=CHAP,None"))
	if r.Transit {
		t.Fatal("target transited before CHAP")
	}
	if m := keyMap(t, r.Data); m["AuthMethod"] != "CHAP" || m["TargetPortalGroupTag"] != "1" {
		t.Fatalf("AuthMethod answer %v", m)
	}
	r, done, err := in.send(StageSecurity, false, 0, kv("CHAP_A="+algs))
	if err != nil {
		return r, done, err
	}
	m := keyMap(t, r.Data)
	var alg int
	var id int
	fmt.Sscan(m["CHAP_A"], &alg)
	fmt.Sscan(m["CHAP_I"], &id)
	if !strings.HasPrefix(m["CHAP_C"], "0x") {
		t.Fatalf("CHAP_C %q", m["CHAP_C"])
	}
	c, err := hex.DecodeString(m["CHAP_C"][2:])
	if err != nil {
		t.Fatal(err)
	}
	wantLen := 32
	if alg == 5 {
		wantLen = 16
	}
	if len(c) != wantLen || len(m) != 3 || r.Transit {
		t.Fatalf("challenge %d bytes, keys %v, T=%v", len(c), m, r.Transit)
	}
	return in.send(StageSecurity, true, StageOperational, kv(respond(alg, byte(id), c)...))
}

func TestLoginCHAP(t *testing.T) {
	for _, tc := range []struct {
		offer string
		alg   int
	}{
		{"5", 5}, {"7", 7}, {"8", 8},
		{"8,7,6,5", 8}, {"6,7,5", 7}, {"5,6,7,8", 5}, {"0x7", 7},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			e := newLoginEnv(t)
			in := newInitiator(t, e.newLogin(t))
			r, _, err := chapLogin(t, in, tc.offer, func(alg int, id byte, c []byte) []string {
				if alg != tc.alg {
					t.Errorf("target chose %d, want %d", alg, tc.alg)
				}
				return []string{"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id, tSecret, c))}
			})
			mustOK(t, r, false, err)
			if !r.Transit || len(r.Data) != 0 {
				t.Fatalf("after CHAP: T=%v keys %q", r.Transit, keys(t, r.Data))
			}
			r, done, err := in.send(StageOperational, true, StageFullFeature, kv("MaxRecvDataSegmentLength=8192"))
			mustOK(t, r, done, err)
			if !done {
				t.Fatal("not done")
			}
		})
	}
}

func TestLoginCHAPBase64AndUpperHex(t *testing.T) {
	for _, enc := range []func([]byte) string{
		func(b []byte) string { return "0b" + base64.StdEncoding.EncodeToString(b) },
		func(b []byte) string { return "0B" + base64.RawStdEncoding.EncodeToString(b) },
		func(b []byte) string { return "0X" + strings.ToUpper(hex.EncodeToString(b)) },
	} {
		e := newLoginEnv(t)
		in := newInitiator(t, e.newLogin(t))
		r, done, err := chapLogin(t, in, "5", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1", "CHAP_R=" + enc(chapAnswer(t, alg, id, tSecret, c))}
		})
		mustOK(t, r, done, err)
	}
}

func TestLoginMutualCHAP(t *testing.T) {
	e := newLoginEnv(t)
	e.creds.MutualUsername, e.creds.MutualSecret = "target1", tMutual
	in := newInitiator(t, e.newLogin(t))
	myC := []byte("0123456789abcdef")
	r, done, err := chapLogin(t, in, "7", func(alg int, id byte, c []byte) []string {
		return []string{
			"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id, tSecret, c)),
			"CHAP_I=42", "CHAP_C=0x" + hex.EncodeToString(myC),
		}
	})
	mustOK(t, r, done, err)
	m := keyMap(t, r.Data)
	want := "0x" + hex.EncodeToString(chapAnswer(t, 7, 42, tMutual, myC))
	if !r.Transit || m["CHAP_N"] != "target1" || m["CHAP_R"] != want || len(m) != 2 {
		t.Fatalf("mutual answer T=%v %v, want CHAP_R=%s", r.Transit, m, want)
	}
}

func TestLoginCHAPFailures(t *testing.T) {
	good := func(alg int, id byte, c []byte) []string {
		return []string{"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id, tSecret, c))}
	}
	for _, tc := range []struct {
		name    string
		mutual  bool
		algs    string
		respond func(alg int, id byte, c []byte) []string
	}{
		{"wrong secret", false, "5", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id, "wrong-secret-xx", c))}
		}},
		{"wrong name", false, "5", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user2", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id, tSecret, c))}
		}},
		{"wrong id", false, "7", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id+1, tSecret, c))}
		}},
		{"algorithm mismatch", false, "8", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, 7, id, tSecret, c))}
		}},
		{"truncated response", false, "5", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1", "CHAP_R=0x" + hex.EncodeToString(chapAnswer(t, alg, id, tSecret, c)[:15])}
		}},
		{"malformed response", false, "5", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1", "CHAP_R=zz"}
		}},
		{"no CHAP_R", false, "5", func(alg int, id byte, c []byte) []string {
			return []string{"CHAP_N=user1"}
		}},
		{"no supported algorithm", false, "56", nil},
		{"empty CHAP_A", false, "", nil},
		{"SHA-1 only", false, "6", nil},
		{"mutual not configured", false, "5", func(alg int, id byte, c []byte) []string {
			return append(good(alg, id, c), "CHAP_I=1", "CHAP_C=0x0102030405060708")
		}},
		{"mutual required", true, "5", good},
		{"reflected challenge", true, "5", func(alg int, id byte, c []byte) []string {
			return append(good(alg, id, c), "CHAP_I=1", "CHAP_C=0x"+hex.EncodeToString(c))
		}},
		{"CHAP_I without CHAP_C", true, "5", func(alg int, id byte, c []byte) []string {
			return append(good(alg, id, c), "CHAP_I=1")
		}},
		{"CHAP_C too long", true, "5", func(alg int, id byte, c []byte) []string {
			return append(good(alg, id, c), "CHAP_I=1", "CHAP_C=0x"+strings.Repeat("ab", 1025))
		}},
		{"CHAP_A again", false, "5", func(alg int, id byte, c []byte) []string {
			return append(good(alg, id, c), "CHAP_A=5")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLoginEnv(t)
			if tc.mutual {
				e.creds.MutualUsername, e.creds.MutualSecret = "target1", tMutual
			}
			in := newInitiator(t, e.newLogin(t))
			respond := tc.respond
			if respond == nil {
				respond = func(int, byte, []byte) []string { t.Fatal("challenge sent"); return nil }
			}
			r, _, err := chapLogin(t, in, tc.algs, respond)
			want := LoginAuthFailure
			if tc.name == "CHAP_A again" {
				want = LoginInitiatorError // a key sent twice
			}
			if err == nil || r.Status != want {
				t.Fatalf("status %v err %v, want %v", r.Status, err, want)
			}
			if len(r.Data) != 0 || r.Transit {
				t.Errorf("failure response carries keys %q or T", r.Data)
			}
			if len(e.commits) != 0 {
				t.Error("session committed")
			}
		})
	}
}

// TestLoginSecretsNeverLogged runs successful and failed CHAP logins at
// debug level and looks for the secrets, challenges and responses in
// everything logged and in the errors.
func TestLoginSecretsNeverLogged(t *testing.T) {
	e := newLoginEnv(t)
	e.creds.MutualUsername, e.creds.MutualSecret = "target1", tMutual
	var forbidden []string
	var errs []string
	for _, secret := range []string{tSecret, "bad-secret-zz1"} {
		in := newInitiator(t, e.newLogin(t))
		myC := []byte("fedcba9876543210")
		r, done, err := chapLogin(t, in, "5", func(alg int, id byte, c []byte) []string {
			rsp := hex.EncodeToString(chapAnswer(t, alg, id, secret, c))
			forbidden = append(forbidden, hex.EncodeToString(c), rsp)
			return []string{"CHAP_N=user1", "CHAP_R=0x" + rsp, "CHAP_I=9", "CHAP_C=0x" + hex.EncodeToString(myC)}
		})
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		mustOK(t, r, done, err)
		forbidden = append(forbidden, keyMap(t, r.Data)["CHAP_R"][2:])
		if _, _, err := in.send(StageOperational, true, StageFullFeature, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(errs) != 1 || e.logBuf.Len() == 0 {
		t.Fatalf("want one failure and some logs, got %v and %d log bytes", errs, e.logBuf.Len())
	}
	all := e.logBuf.String() + strings.Join(errs, "\n")
	forbidden = append(forbidden, tSecret, tMutual, hex.EncodeToString([]byte(tSecret)), hex.EncodeToString([]byte(tMutual)))
	for _, s := range forbidden {
		if strings.Contains(strings.ToLower(all), strings.ToLower(s)) {
			t.Errorf("%q appears in logs or errors", s)
		}
	}
	if !strings.Contains(all, "CHAP_R=<withheld>") {
		t.Error("debug log does not show the withheld CHAP keys; is debug logging exercised?")
	}
}

// TestLoginFailures checks the status of every login failure.
func TestLoginFailures(t *testing.T) {
	id := func(extra ...string) []byte {
		return kv(append([]string{"InitiatorName=" + tInitiator, "TargetName=" + tTarget}, extra...)...)
	}
	type step struct {
		csg     Stage
		transit bool
		nsg     Stage
		data    []byte
		mod     func(*LoginRequest)
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  LoginStatus
	}{
		{"version min 1", []step{{StageOperational, true, StageFullFeature, id(), func(r *LoginRequest) { r.VersionMin, r.VersionMax = 1, 2 }}}, LoginUnsupportedVersion},
		{"version 0 only", []step{{StageOperational, true, StageFullFeature, id(), func(r *LoginRequest) { r.VersionMin, r.VersionMax = 0, 0 }}}, LoginSuccess},
		{"no InitiatorName", []step{{StageOperational, true, StageFullFeature, kv("TargetName=" + tTarget), nil}}, LoginMissingParameter},
		{"no TargetName", []step{{StageOperational, true, StageFullFeature, kv("InitiatorName=" + tInitiator), nil}}, LoginMissingParameter},
		{"empty first request", []step{{StageSecurity, false, 0, nil, nil}}, LoginMissingParameter},
		{"unknown target", []step{{StageOperational, true, StageFullFeature, kv("InitiatorName="+tInitiator, "TargetName=iqn.2024-01.com.example:nope"), nil}}, LoginNotFound},
		{"bad target name", []step{{StageOperational, true, StageFullFeature, kv("InitiatorName="+tInitiator, "TargetName=disk1"), nil}}, LoginNotFound},
		{"target on another portal group", []step{{StageOperational, true, StageFullFeature, kv("InitiatorName="+tInitiator, "TargetName="+tGroup2Only), nil}}, LoginNotFound},
		{"initiator not allowed", []step{{StageSecurity, true, StageOperational, kv("InitiatorName=iqn.2024-01.org.example:denied", "TargetName="+tTarget2, "AuthMethod=CHAP"), nil}}, LoginAuthorizationFailure},
		{"bad initiator name", []step{{StageOperational, true, StageFullFeature, kv("InitiatorName=host 1", "TargetName="+tTarget), nil}}, LoginInitiatorError},
		{"bad session type", []step{{StageOperational, true, StageFullFeature, id("SessionType=Bogus"), nil}}, LoginSessionTypeUnsupported},
		{"security skipped with CHAP", []step{{StageOperational, true, StageFullFeature, kv("InitiatorName="+tInitiator, "TargetName="+tTarget2), nil}}, LoginAuthFailure},
		{"AuthMethod None with CHAP", []step{{StageSecurity, true, StageOperational, kv("InitiatorName="+tInitiator, "TargetName="+tTarget2, "AuthMethod=None"), nil}}, LoginAuthFailure},
		{"transit without AuthMethod with CHAP", []step{{StageSecurity, true, StageFullFeature, kv("InitiatorName="+tInitiator, "TargetName="+tTarget2), nil}}, LoginAuthFailure},
		{"CHAP keys in operational stage", []step{{StageOperational, false, 0, id("CHAP_A=5"), nil}}, LoginAuthFailure},
		{"CHAP_A before AuthMethod", []step{{StageSecurity, false, 0, kv("InitiatorName="+tInitiator, "TargetName="+tTarget2, "CHAP_A=5"), nil}}, LoginAuthFailure},
		{"AuthMethod in operational stage", []step{{StageOperational, false, 0, id("AuthMethod=None"), nil}}, LoginInitiatorError},
		{"duplicate key", []step{{StageOperational, false, 0, id("MaxBurstLength=512", "MaxBurstLength=512"), nil}}, LoginInitiatorError},
		{"duplicate key across requests", []step{
			{StageOperational, false, 0, id("MaxBurstLength=512"), nil},
			{StageOperational, false, 0, kv("MaxBurstLength=1024"), nil}}, LoginInitiatorError},
		{"InitiatorName changed", []step{
			{StageOperational, false, 0, id(), nil},
			{StageOperational, false, 0, kv("InitiatorName=iqn.2024-01.org.example:other"), nil}}, LoginInitiatorError},
		{"InitiatorName repeated", []step{
			{StageOperational, false, 0, id(), nil},
			{StageOperational, true, StageFullFeature, kv("InitiatorName=" + tInitiator), nil}}, LoginSuccess},
		{"session type changed", []step{
			{StageOperational, false, 0, id(), nil},
			{StageOperational, false, 0, kv("SessionType=Discovery"), nil}}, LoginInitiatorError},
		{"target key from initiator", []step{{StageOperational, false, 0, id("TargetAlias=x"), nil}}, LoginInitiatorError},
		{"bad MaxRecvDataSegmentLength", []step{{StageOperational, false, 0, id("MaxRecvDataSegmentLength=511"), nil}}, LoginInitiatorError},
		{"malformed text", []step{{StageOperational, false, 0, []byte("InitiatorName\x00"), nil}}, LoginInitiatorError},
		{"unterminated text", []step{{StageOperational, false, 0, []byte("InitiatorName=" + tInitiator), nil}}, LoginInitiatorError},
		{"C and T", []step{{StageOperational, true, StageFullFeature, id(), func(r *LoginRequest) { r.Continue = true }}}, LoginInitiatorError},
		{"first stage FFP", []step{{StageFullFeature, true, StageFullFeature, id(), nil}}, LoginInitiatorError},
		{"transit backwards", []step{{StageOperational, true, StageSecurity, id(), nil}}, LoginInitiatorError},
		{"transit to stage 2", []step{{StageSecurity, true, 2, id(), nil}}, LoginInitiatorError},
		{"ISID changed", []step{
			{StageOperational, false, 0, id(), nil},
			{StageOperational, true, StageFullFeature, nil, func(r *LoginRequest) { r.ISID[5] = 9 }}}, LoginInitiatorError},
		{"CID changed", []step{
			{StageOperational, false, 0, id(), nil},
			{StageOperational, true, StageFullFeature, nil, func(r *LoginRequest) { r.CID = 9 }}}, LoginInitiatorError},
		{"version changed", []step{
			{StageOperational, false, 0, id(), nil},
			{StageOperational, true, StageFullFeature, nil, func(r *LoginRequest) { r.VersionMax = 3 }}}, LoginInitiatorError},
		{"wrong CSG", []step{
			{StageSecurity, true, StageOperational, id("AuthMethod=None"), nil},
			{StageSecurity, true, StageOperational, nil, nil}}, LoginInitiatorError},
		{"operational without transit", []step{
			{StageSecurity, false, 0, id("AuthMethod=None"), nil},
			{StageOperational, true, StageFullFeature, nil, nil}}, LoginInitiatorError},
		{"too much text", []step{
			{StageOperational, false, 0, make([]byte, 40000), func(r *LoginRequest) { r.Continue = true }},
			{StageOperational, false, 0, make([]byte, 40000), nil}}, LoginInitiatorError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLoginEnv(t)
			in := newInitiator(t, e.newLogin(t))
			var resp *LoginResponse
			var err error
			for i, s := range tc.steps {
				req := &LoginRequest{Transit: s.transit, CSG: s.csg, NSG: s.nsg, ISID: in.isid,
					ITT: in.itt, CmdSN: in.cmdSN, ExpStatSN: in.expSN}
				if s.mod != nil {
					s.mod(req)
				}
				resp, _, err = in.sendReq(req, s.data)
				if err != nil && i != len(tc.steps)-1 {
					t.Fatalf("step %d failed early: %v", i, err)
				}
			}
			if resp.Status != tc.want {
				t.Fatalf("status %v (%v), want %v", resp.Status, err, tc.want)
			}
			if tc.want != LoginSuccess {
				// The login stays failed.
				r2, _, err2 := in.l.handle(&LoginRequest{CSG: StageOperational, ISID: in.isid}, nil)
				if err2 == nil || r2.Status != tc.want {
					t.Errorf("after failure: %v %v", r2.Status, err2)
				}
			}
		})
	}
}

func TestLoginCommitRefused(t *testing.T) {
	e := newLoginEnv(t)
	e.status = LoginSessionDoesNotExist
	in := newInitiator(t, e.newLogin(t))
	in.tsih = 7
	r, done, err := in.send(StageOperational, true, StageFullFeature, kv("InitiatorName="+tInitiator, "TargetName="+tTarget))
	if err == nil || done || r.Status != LoginSessionDoesNotExist || len(e.commits) != 1 || e.commits[0].TSIH != 7 {
		t.Fatalf("status %v err %v commits %d", r.Status, err, len(e.commits))
	}
	if in.l.result() != nil {
		t.Error("result after a refused commit")
	}
}

// TestLoginContinuedRequest splits the first request's text in the middle
// of a pair over three PDUs with the C bit.
func TestLoginContinuedRequest(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	text := kv("InitiatorName="+tInitiator, "TargetName="+tTarget, "MaxBurstLength=65536")
	parts := [][]byte{text[:10], text[10:40], text[40:]}
	for i, p := range parts {
		last := i == len(parts)-1
		req := &LoginRequest{Continue: !last, Transit: last, CSG: StageOperational, NSG: StageFullFeature,
			ISID: in.isid, ITT: in.itt, CmdSN: in.cmdSN, ExpStatSN: in.expSN}
		r, done, err := in.sendReq(req, p)
		mustOK(t, r, done, err)
		if !last && (len(r.Data) != 0 || r.Transit || r.Continue) {
			t.Fatalf("response to continued request %d: %q T=%v C=%v", i, r.Data, r.Transit, r.Continue)
		}
		if last {
			if !done || keyMap(t, r.Data)["MaxBurstLength"] != "65536" {
				t.Fatalf("final: done=%v %q", done, keys(t, r.Data))
			}
		}
	}
}

// TestLoginContinuedResponse makes the answer exceed the initiator's
// declared 512-byte limit: the target continues it with the C bit.
func TestLoginContinuedResponse(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	var ks []string
	var want []string
	ks = append(ks, "InitiatorName="+tInitiator, "TargetName="+tTarget, "MaxRecvDataSegmentLength=512")
	want = append(want, "TargetPortalGroupTag=1", "TargetAlias=disk one")
	for i := range 40 {
		k := fmt.Sprintf("X-org.example.key%02d", i)
		ks = append(ks, k+"=v")
		want = append(want, k+"=NotUnderstood")
	}
	want = append(want, "MaxRecvDataSegmentLength=262144")
	var got []byte
	r, done, err := in.send(StageOperational, true, StageFullFeature, kv(ks...))
	for n := 0; ; n++ {
		mustOK(t, r, done, err)
		if len(r.Data) > 512 {
			t.Fatalf("response of %d bytes", len(r.Data))
		}
		got = append(got, r.Data...)
		if !r.Continue {
			break
		}
		if r.Transit || done || n > 10 {
			t.Fatalf("C=1 with T=%v done=%v", r.Transit, done)
		}
		r, done, err = in.send(StageOperational, true, StageFullFeature, nil)
	}
	if !done || !r.Transit {
		t.Fatal("login did not complete after the continued response")
	}
	if g := keys(t, got); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("continued response\n got %q\nwant %q", g, want)
	}
}

// TestLoginResponseContinuationRejectsNewKeys: while our response is
// continued, new keys are a protocol error.
func TestLoginResponseContinuationRejectsNewKeys(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	ks := []string{"InitiatorName=" + tInitiator, "TargetName=" + tTarget, "MaxRecvDataSegmentLength=512"}
	for i := range 40 {
		ks = append(ks, fmt.Sprintf("X-k%02d=v", i))
	}
	r := in.must(StageOperational, false, 0, kv(ks...))
	if !r.Continue {
		t.Fatal("no continuation")
	}
	r, _, err := in.send(StageOperational, false, 0, kv("X-more=1"))
	if err == nil || r.Status != LoginInitiatorError {
		t.Fatalf("status %v", r.Status)
	}
}

func BenchmarkLoginOneRequest(b *testing.B) {
	cfg := newLoginEnv(&testing.T{}).cfg
	data := kv(append([]string{"InitiatorName=" + tInitiator, "TargetName=" + tTarget}, linuxOpKeys...)...)
	req := &LoginRequest{Transit: true, CSG: StageOperational, NSG: StageFullFeature, ISID: ISID{1}}
	b.ReportAllocs()
	for b.Loop() {
		l := newLogin(loginConfig{Config: &cfg, Log: zerolog.Nop()})
		if _, done, err := l.handle(req, data); !done || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoginCHAPMD5(b *testing.B) {
	e := newLoginEnv(&testing.T{})
	cfg := e.cfg
	b.ReportAllocs()
	for b.Loop() {
		l := newLogin(loginConfig{Config: &cfg, Log: zerolog.Nop()})
		r, _, err := l.handle(&LoginRequest{CSG: StageSecurity}, kv("InitiatorName="+tInitiator, "TargetName="+tTarget2, "AuthMethod=CHAP"))
		if err == nil {
			r, _, err = l.handle(&LoginRequest{CSG: StageSecurity}, kv("CHAP_A=5"))
		}
		if err != nil {
			b.Fatal(err)
		}
		pairs, _ := parseText(r.Data)
		var id byte
		var ch []byte
		for _, p := range pairs {
			switch p.Key {
			case "CHAP_I":
				n, _ := parseTextNumber(p.Value)
				id = byte(n)
			case "CHAP_C":
				ch, _ = decodeBinaryValue(p.Value)
			}
		}
		sum := md5.Sum(append(append([]byte{id}, tSecret...), ch...))
		_, _, err = l.handle(&LoginRequest{CSG: StageSecurity, Transit: true, NSG: StageFullFeature},
			kv("CHAP_N=user1", "CHAP_R=0x"+hex.EncodeToString(sum[:])))
		if err != nil || l.result() == nil {
			b.Fatal(err)
		}
	}
}
