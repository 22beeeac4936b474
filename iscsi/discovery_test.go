package iscsi

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const (
	dTA = "iqn.2024-01.com.example:a"
	dTB = "iqn.2024-01.com.example:b"
	dTC = "iqn.2024-01.com.example:c"
	dTD = "iqn.2024-01.com.example:d"
)

func discoveryConfig() *Config {
	deny := func(name string) Access { return Access{Allowed: name != tInitiator} }
	return &Config{
		Portals: []Portal{
			{Listen: "127.0.0.1:3260", Group: 1},
			{Listen: "[::]:3262", Group: 2},
			{Listen: "0.0.0.0:3263", Group: 3, Advertise: "gw.example.net:13260"},
			{Listen: "0.0.0.0:3264", Group: 4, Advertise: "2001:db8::5"},
			{Listen: "192.0.2.7:3265", Group: 5},
		},
		Targets: StaticTargets{
			{Name: dTA},
			{Name: dTB, Groups: []uint16{2}, Access: deny},
			{Name: dTC, Groups: []uint16{3, 5}},
			{Name: dTD, Groups: []uint16{9}},
		},
	}
}

func newTestTextSession(t *testing.T, discovery bool, target *Target, maxXmit uint32) *textSession {
	cfg := discoveryConfig()
	return newTextSession(textConfig{
		Config:    cfg,
		Portal:    &cfg.Portals[0],
		Local:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3260},
		Discovery: discovery,
		Initiator: tInitiator,
		Target:    target,
		MaxXmit:   maxXmit,
		Log:       zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel),
	})
}

// textReq sends one final text request with a fresh negotiation.
func textReq(t *testing.T, ts *textSession, itt uint32, text string) *TextResponse {
	t.Helper()
	resp, err := ts.handle(&TextRequest{Final: true, ITT: itt, TTT: reservedTag}, []byte(text))
	if err != nil {
		t.Fatalf("text %q: %v", text, err)
	}
	if resp.ITT != itt {
		t.Errorf("ITT %#x", resp.ITT)
	}
	return resp
}

func TestSendTargetsAllExact(t *testing.T) {
	ts := newTestTextSession(t, true, nil, 8192)
	resp := textReq(t, ts, 1, "SendTargets=All\x00")
	want := "TargetName=" + dTA + "\x00" +
		"TargetAddress=127.0.0.1:3260,1\x00" +
		"TargetAddress=127.0.0.1:3262,2\x00" +
		"TargetAddress=gw.example.net:13260,3\x00" +
		"TargetAddress=[2001:db8::5]:3264,4\x00" +
		"TargetAddress=192.0.2.7:3265,5\x00" +
		"TargetName=" + dTC + "\x00" +
		"TargetAddress=gw.example.net:13260,3\x00" +
		"TargetAddress=192.0.2.7:3265,5\x00"
	if string(resp.Data) != want {
		t.Errorf("SendTargets=All\n got %q\nwant %q", resp.Data, want)
	}
	if !resp.Final || resp.Continue || resp.TTT != reservedTag {
		t.Errorf("flags F=%v C=%v TTT=%#x", resp.Final, resp.Continue, resp.TTT)
	}
}

func TestSendTargetsIPv6Local(t *testing.T) {
	ts := newTestTextSession(t, true, nil, 8192)
	ts.cfg.Local = &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 3260, Zone: "eth0"}
	resp := textReq(t, ts, 1, "SendTargets="+dTA+"\x00")
	if !strings.Contains(string(resp.Data), "TargetAddress=[fe80::1]:3260,1\x00TargetAddress=[fe80::1]:3262,2\x00") {
		t.Errorf("IPv6 addresses: %q", resp.Data)
	}
	ts.cfg.Local = &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 3260}
	resp = textReq(t, ts, 2, "SendTargets="+dTA+"\x00")
	if !strings.Contains(string(resp.Data), "TargetAddress=10.1.2.3:3260,1\x00") {
		t.Errorf("mapped IPv4: %q", resp.Data)
	}
}

func TestSendTargetsValues(t *testing.T) {
	self := &Target{Name: dTA}
	for _, tc := range []struct {
		discovery bool
		text      string
		want      string // target names listed, or the answer pairs
	}{
		{true, "SendTargets=" + dTC, "TargetName=" + dTC},
		{true, "SendTargets=" + strings.ToUpper(dTC[:3]) + dTC[3:], "TargetName=" + dTC},
		{true, "SendTargets=" + dTB, ""},                       // not allowed
		{true, "SendTargets=" + dTD, ""},                       // no portal
		{true, "SendTargets=iqn.2024-01.com.example:zz", ""},   // unknown
		{true, "SendTargets=", ""},                             // no session target
		{true, "SendTargets=Alle", "SendTargets=Reject"},       // libiscsi: invalid value
		{true, "SendTargets=A", "SendTargets=Reject"},          // libiscsi: invalid value
		{true, "sENDtARGETS=aLL", "sENDtARGETS=NotUnderstood"}, // libiscsi: keys are case sensitive
		{true, "SendTargetsPlease=All", "SendTargetsPlease=NotUnderstood"},
		{false, "SendTargets=", "TargetName=" + dTA},
		{false, "SendTargets=All", "TargetName=" + dTA},
		{false, "SendTargets=" + dTA, "TargetName=" + dTA},
		{false, "SendTargets=" + dTC, ""},
	} {
		var target *Target
		if !tc.discovery {
			target = self
		}
		ts := newTestTextSession(t, tc.discovery, target, 8192)
		resp := textReq(t, ts, 9, tc.text+"\x00")
		var got []string
		for _, kv := range keys(t, resp.Data) {
			if !strings.HasPrefix(kv, "TargetAddress=") {
				got = append(got, kv)
			}
		}
		if g := strings.Join(got, "|"); g != tc.want {
			t.Errorf("discovery=%v %q: got %q, want %q", tc.discovery, tc.text, g, tc.want)
		}
	}
}

func TestTextOtherKeys(t *testing.T) {
	ts := newTestTextSession(t, false, &Target{Name: dTA}, 8192)
	resp := textReq(t, ts, 3, string(kv("HeaderDigest=CRC32C", "X-org.example=1", "TargetAlias=x",
		"InitiatorAlias=me", "MaxBurstLength=Reject", "Bogus=1")))
	want := []string{"HeaderDigest=Reject", "X-org.example=NotUnderstood", "TargetAlias=Reject", "Bogus=NotUnderstood"}
	if got := keys(t, resp.Data); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestTextMaxRecvDSL renegotiates the initiator's receive limit; it
// applies once the negotiation completes.
func TestTextMaxRecvDSL(t *testing.T) {
	ts := newTestTextSession(t, false, &Target{Name: dTA}, 8192)
	resp, err := ts.handle(&TextRequest{ITT: 1, TTT: reservedTag}, kv("MaxRecvDataSegmentLength=4096"))
	if err != nil || resp.Final || resp.TTT == reservedTag || len(resp.Data) != 0 {
		t.Fatalf("F=0 request: %+v %v", resp, err)
	}
	if ts.xmitLimit() != 8192 {
		t.Error("limit applied before the negotiation ended")
	}
	resp, err = ts.handle(&TextRequest{Final: true, ITT: 1, TTT: resp.TTT}, nil)
	if err != nil || !resp.Final || resp.TTT != reservedTag {
		t.Fatalf("final: %+v %v", resp, err)
	}
	if ts.xmitLimit() != 4096 {
		t.Errorf("limit %d after the negotiation", ts.xmitLimit())
	}
	resp = textReq(t, ts, 2, "MaxRecvDataSegmentLength=100\x00")
	if string(resp.Data) != "MaxRecvDataSegmentLength=Reject\x00" || ts.xmitLimit() != 4096 {
		t.Errorf("bad value: %q, limit %d", resp.Data, ts.xmitLimit())
	}
}

// TestTextContinuedResponse splits SendTargets=All at a 512-byte limit and
// collects it the way the Linux initiator does: empty requests with F=1
// and our Target Transfer Tag.
func TestTextContinuedResponse(t *testing.T) {
	cfg := discoveryConfig()
	var all StaticTargets
	var want string
	for i := range 30 {
		name := fmt.Sprintf("iqn.2024-01.com.example:lun-%02d", i)
		all = append(all, &Target{Name: name, Groups: []uint16{1}})
		want += "TargetName=" + name + "\x00TargetAddress=127.0.0.1:3260,1\x00"
	}
	cfg.Targets = all
	ts := newTestTextSession(t, true, nil, 512)
	ts.cfg.Config = cfg
	resp := textReq(t, ts, 7, "SendTargets=All\x00")
	got := string(resp.Data)
	seen := map[uint32]bool{}
	for n := 0; resp.Continue; n++ {
		if resp.Final || resp.TTT == reservedTag || seen[resp.TTT] || len(resp.Data) != 512 || n > 100 {
			t.Fatalf("continued part %d: F=%v TTT=%#x len %d", n, resp.Final, resp.TTT, len(resp.Data))
		}
		seen[resp.TTT] = true
		var err error
		resp, err = ts.handle(&TextRequest{Final: true, ITT: 7, TTT: resp.TTT}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got += string(resp.Data)
	}
	if !resp.Final || resp.TTT != reservedTag {
		t.Errorf("last part F=%v TTT=%#x", resp.Final, resp.TTT)
	}
	if got != want {
		t.Errorf("reassembled\n got %q\nwant %q", got, want)
	}
	if len(seen) < 3 {
		t.Errorf("only %d continuations", len(seen))
	}
	// The negotiation is over: the old tag is dead.
	for tag := range seen {
		if _, err := ts.handle(&TextRequest{Final: true, ITT: 7, TTT: tag}, nil); err == nil {
			t.Error("stale tag accepted")
		}
		break
	}
}

// TestTextContinuedRequest sends SendTargets split in the middle of the
// key over three PDUs with the C bit.
func TestTextContinuedRequest(t *testing.T) {
	ts := newTestTextSession(t, true, nil, 8192)
	text := []byte("SendTargets=" + dTC + "\x00")
	r1, err := ts.handle(&TextRequest{Continue: true, ITT: 4, TTT: reservedTag}, text[:5])
	if err != nil || r1.Final || r1.Continue || len(r1.Data) != 0 || r1.TTT == reservedTag {
		t.Fatalf("first part: %+v %v", r1, err)
	}
	r2, err := ts.handle(&TextRequest{Continue: true, ITT: 4, TTT: r1.TTT}, text[5:20])
	if err != nil || r2.TTT == reservedTag || r2.TTT == r1.TTT {
		t.Fatalf("second part: %+v %v", r2, err)
	}
	r3, err := ts.handle(&TextRequest{Final: true, ITT: 4, TTT: r2.TTT}, text[20:])
	if err != nil || !r3.Final || !strings.HasPrefix(string(r3.Data), "TargetName="+dTC+"\x00") {
		t.Fatalf("last part: %q %v", r3.Data, err)
	}
}

func TestTextErrors(t *testing.T) {
	reason := func(err error) RejectReason {
		var te *textError
		if !errors.As(err, &te) {
			t.Fatalf("error %v is not a *textError", err)
		}
		return te.Reason
	}
	ts := newTestTextSession(t, true, nil, 8192)
	if _, err := ts.handle(&TextRequest{Final: true, Continue: true, ITT: 1, TTT: reservedTag}, nil); reason(err) != RejectProtocolError {
		t.Error("C and F accepted")
	}
	if _, err := ts.handle(&TextRequest{Final: true, ITT: 1, TTT: 99}, nil); reason(err) != RejectInvalidPDUField {
		t.Error("unknown TTT accepted")
	}
	if _, err := ts.handle(&TextRequest{Final: true, ITT: 1, TTT: reservedTag}, []byte("SendTargets=All")); reason(err) != RejectProtocolError {
		t.Error("unterminated text accepted")
	}
	if _, err := ts.handle(&TextRequest{Final: true, ITT: 1, TTT: reservedTag}, kv("X-a=1", "X-a=2")); reason(err) != RejectProtocolError {
		t.Error("duplicate key accepted")
	}
	// Too much text.
	r, err := ts.handle(&TextRequest{Continue: true, ITT: 2, TTT: reservedTag}, make([]byte, 40000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.handle(&TextRequest{Continue: true, ITT: 2, TTT: r.TTT}, make([]byte, 40000)); reason(err) != RejectOutOfResources {
		t.Error("oversized text accepted")
	}
	// A tag belongs to its ITT.
	r, err = ts.handle(&TextRequest{Continue: true, ITT: 3, TTT: reservedTag}, []byte("Send"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.handle(&TextRequest{Final: true, ITT: 4, TTT: r.TTT}, []byte("Targets=All\x00")); reason(err) != RejectInvalidPDUField {
		t.Error("tag accepted with another ITT")
	}
	// A new negotiation (TTT=0xffffffff) resets a pending one.
	r, _ = ts.handle(&TextRequest{Continue: true, ITT: 5, TTT: reservedTag}, []byte("Garbage"))
	resp := textReq(t, ts, 5, "SendTargets="+dTC+"\x00")
	if !strings.HasPrefix(string(resp.Data), "TargetName="+dTC) {
		t.Errorf("after reset: %q", resp.Data)
	}
	if _, err := ts.handle(&TextRequest{Final: true, ITT: 5, TTT: r.TTT}, nil); err == nil {
		t.Error("tag of a reset negotiation accepted")
	}
}

func BenchmarkSendTargetsAll(b *testing.B) {
	ts := newTestTextSession(&testing.T{}, true, nil, 8192)
	ts.cfg.Log = zerolog.Nop()
	req := &TextRequest{Final: true, ITT: 1, TTT: reservedTag}
	data := []byte("SendTargets=All\x00")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.handle(req, data); err != nil {
			b.Fatal(err)
		}
	}
}
