package isns

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// devDeregGolden is a DevDereg of entity "e1" with source iSCSI name
// "iqn.x", laid out by hand from RFC 4171 5.1 and 5.6.5.4.
const devDeregGolden = `
0001 0004 0024 8c00 0007 0000
00000020 00000008 69716e2e 78000000
00000000 00000000
00000001 00000004 65310000`

func TestGoldenDevDereg(t *testing.T) {
	want := unhex(t, devDeregGolden)
	m := Request(DevDereg, 7, 0, String(TagISCSIName, "iqn.x"), nil, []Attr{String(TagEntityID, "e1")})
	got, err := m.AppendBinary(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("DevDereg:\n got %x\nwant %x", got, want)
	}
	d, n, err := DecodeMessage(want, 0)
	if err != nil || n != len(want) {
		t.Fatalf("decode: %v (%d of %d bytes)", err, n, len(want))
	}
	if d.Function != DevDereg || d.XID != 7 || d.Flags != FlagClient || len(d.Attrs) != 3 {
		t.Fatalf("decoded %+v", d)
	}
	src, op, ok := SplitDelimited(d.Attrs)
	if s, _ := src[0].Str(); !ok || s != "iqn.x" || len(op) != 1 {
		t.Fatalf("split: %v %v %v", src, op, ok)
	}
	if eid, _ := op[0].Str(); eid != "e1" {
		t.Fatalf("EID %q", eid)
	}
}

// esiGolden is an ESI as open-isns sends it (timestamp, EID, portal IP
// and port; no source, no delimiter) and esiRspGolden the answer.
const (
	esiGolden = `
0001 000d 0040 4c00 0102 0000
00000004 00000008 00000000 65000000
00000001 00000004 65310000
00000010 00000010 00000000 00000000 0000ffff 7f000001
00000011 00000004 00000cbc`
	esiRspGolden = `
0001 800d 0044 8c00 0102 0000
00000000
00000004 00000008 00000000 65000000
00000001 00000004 65310000
00000010 00000010 00000000 00000000 0000ffff 7f000001
00000011 00000004 00000cbc`
)

func TestGoldenESI(t *testing.T) {
	in := unhex(t, esiGolden)
	m, _, err := DecodeMessage(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Function != ESI || m.Flags != FlagServer || m.XID != 0x0102 || len(m.Attrs) != 4 {
		t.Fatalf("decoded %+v", m)
	}
	ts, _ := m.Attrs[0].Uint64()
	ip, _ := m.Attrs[2].IP()
	port, udp, _ := m.Attrs[3].Port()
	if ts != 0x65000000 || ip != netip.MustParseAddr("127.0.0.1") || port != 3260 || udp {
		t.Fatalf("attrs: ts %x ip %v port %d udp %v", ts, ip, port, udp)
	}
	rsp := &Message{Function: ESI.Response(), Flags: FlagClient, XID: m.XID, Attrs: m.Attrs}
	got, err := rsp.AppendBinary(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, esiRspGolden); !bytes.Equal(got, want) {
		t.Fatalf("ESIRsp:\n got %x\nwant %x", got, want)
	}
}

func TestAttrValues(t *testing.T) {
	cases := []struct {
		a    Attr
		wire string
	}{
		{String(TagISCSIName, ""), "00000020 00000004 00000000"},
		{String(TagISCSIName, "abc"), "00000020 00000004 61626300"},
		{String(TagISCSIName, "abcd"), "00000020 00000008 61626364 00000000"},
		{Nil(TagPGTag), "00000033 00000000"},
		{Uint32(TagPGTag, 7), "00000033 00000004 00000007"},
		{Port(TagESIPort, 3205, true), "00000014 00000004 00010c85"},
		{IP(TagPortalIPAddress, netip.MustParseAddr("2001:db8::1")), "00000010 00000010 20010db8 00000000 00000000 00000001"},
	}
	for _, c := range cases {
		got, err := c.a.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, c.wire); !bytes.Equal(got, want) {
			t.Errorf("%s: got %x want %x", c.a.Tag, got, want)
		}
		back, err := ParseAttrs(got)
		if err != nil || len(back) != 1 || back[0].Tag != c.a.Tag || !bytes.Equal(back[0].Value, c.a.Value) {
			t.Errorf("%s: parse back %v %v", c.a.Tag, back, err)
		}
	}
	if p, udp, _ := Port(TagESIPort, 3205, true).Port(); p != 3205 || !udp {
		t.Errorf("port %d udp %v", p, udp)
	}
	if ip, _ := IP(TagPortalIPAddress, netip.MustParseAddr("10.1.2.3")).IP(); ip != netip.MustParseAddr("10.1.2.3") {
		t.Errorf("IPv4-mapped address came back as %v", ip)
	}
	if _, err := (Attr{Tag: TagISCSIName, Value: []byte("abcd")}).Str(); !errors.Is(err, ErrFormat) {
		t.Errorf("unterminated string: %v", err)
	}
	if _, err := (Attr{Tag: TagPGTag, Value: []byte{1, 2}}).Uint32(); !errors.Is(err, ErrFormat) {
		t.Errorf("short integer: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"version 2":       "0002 8004 0004 4c00 0001 0000 00000000",
		"truncated":       "0001 8004 0008 4c00 0001 0000 00000000",
		"no status":       "0001 8004 0002 4c00 0001 0000 0000",
		"odd length":      "0001 0004 000a 8c00 0001 0000 00000001 00000002 6500",
		"overrun":         "0001 0004 0010 8c00 0001 0000 00000001 00000010 65000000 00000000",
		"long delimiter":  "0001 0004 000c 8c00 0001 0000 00000000 00000004 00000000",
		"trailing bytes":  "0001 0004 0004 8c00 0001 0000 00000001",
		"other xid":       "0001 0004 0000 8400 0001 0000 0001 0004 0000 0800 0002 0001",
		"sequence gap":    "0001 0004 0000 8400 0001 0000 0001 0004 0000 0800 0001 0002",
		"short header":    "0001 0004",
		"message too big": "",
	}
	for name, h := range cases {
		b := unhex(t, h)
		limit := 0
		if name == "message too big" {
			b = unhex(t, "0001 0004 0100 8c00 0001 0000")
			b = append(b, make([]byte, 256)...)
			limit = 128
		}
		if _, _, err := DecodeMessage(b, limit); err == nil {
			t.Errorf("%s: decoded", name)
		} else if name == "version 2" && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: %v", name, err)
		} else if name == "message too big" && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMultiPDU: a message split into several PDUs at attribute
// boundaries (FIRST on the first, LAST on the last, sequence 0, 1, ...)
// reassembles to the same message.
func TestMultiPDU(t *testing.T) {
	reg := testRegistration("e")
	batches := reg.regBatches(nil, MaxPDUPayload)
	m := Request(DevAttrReg, 9, FlagReplace, reg.source(), []Attr{String(TagEntityID, "e")}, batches[0])
	b, err := m.AppendBinary(nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint16
	for off := 0; off < len(b); {
		h := parseHeader(b[off:])
		if h.Length > 64 || h.Length%4 != 0 {
			t.Fatalf("PDU %d: length %d", h.Seq, h.Length)
		}
		first, last := h.Flags&FlagFirstPDU != 0, h.Flags&FlagLastPDU != 0
		if first != (len(seqs) == 0) || last != (off+HeaderLen+int(h.Length) == len(b)) {
			t.Fatalf("PDU %d flags %v", h.Seq, h.Flags)
		}
		// Attribute boundaries: each PDU's payload parses on its own.
		if _, err := ParseAttrs(b[off+HeaderLen : off+HeaderLen+int(h.Length)]); err != nil {
			t.Errorf("PDU %d not cut at an attribute boundary: %v", h.Seq, err)
		}
		seqs = append(seqs, h.Seq)
		off += HeaderLen + int(h.Length)
	}
	if len(seqs) < 3 {
		t.Fatalf("%d PDUs", len(seqs))
	}
	for i, s := range seqs {
		if int(s) != i {
			t.Fatalf("sequence %v", seqs)
		}
	}
	d, n, err := DecodeMessage(b, 0)
	if err != nil || n != len(b) {
		t.Fatalf("decode: %v", err)
	}
	if d.Function != m.Function || d.Flags != m.Flags || d.XID != 9 || len(d.Attrs) != len(m.Attrs) {
		t.Fatalf("reassembled %v %v %d attrs", d.Function, d.Flags, len(d.Attrs))
	}
	for i := range d.Attrs {
		if d.Attrs[i].Tag != m.Attrs[i].Tag || !bytes.Equal(d.Attrs[i].Value, m.Attrs[i].Value) {
			t.Fatalf("attr %d: %v vs %v", i, d.Attrs[i], m.Attrs[i])
		}
	}
}

// TestRegBatches: a registration too large for one PDU is cut into
// messages that each fit, the first with the entity and portals, every
// node with all its portal groups in one message.
func TestRegBatches(t *testing.T) {
	reg := testRegistration("sanbridge-e")
	for i := range 20 {
		reg.Nodes = append(reg.Nodes, Node{Name: "iqn.2026-11.io.sanbridge:auto-" + string(rune('a'+i))})
	}
	esi := &esiSettings{port: 5000, interval: 90 * time.Second}
	const limit = 600
	batches := reg.regBatches(esi, limit)
	if len(batches) < 3 {
		t.Fatalf("%d batches", len(batches))
	}
	nodes := 0
	for i, op := range batches {
		m := Request(DevAttrReg, 1, 0, reg.source(), []Attr{String(TagEntityID, reg.EntityID)}, op)
		if n := m.payloadLen(); n > limit {
			t.Errorf("batch %d: %d bytes", i, n)
		}
		if eid, _ := op[0].Str(); op[0].Tag != TagEntityID || eid != reg.EntityID {
			t.Errorf("batch %d does not start with the entity", i)
		}
		_, hasPortal := Find(op, TagPortalIPAddress)
		if hasPortal != (i == 0) {
			t.Errorf("batch %d: portals %v", i, hasPortal)
		}
		for j, a := range op {
			if a.Tag != TagISCSIName {
				continue
			}
			nodes++
			// Every node is followed by its node type and, after an optional
			// alias, one portal group per portal.
			pgs := 0
			for _, b := range op[j+1:] {
				if b.Tag == TagISCSIName {
					break
				}
				if b.Tag == TagPGTag {
					pgs++
				}
			}
			if pgs != len(reg.Portals) {
				t.Errorf("node %d: %d portal groups", nodes, pgs)
			}
		}
	}
	if nodes != len(reg.Nodes) {
		t.Errorf("%d nodes in the batches, want %d", nodes, len(reg.Nodes))
	}
	if v, _ := batches[0][4].Uint32(); batches[0][4].Tag != TagESIInterval || v != 90 {
		t.Errorf("ESI interval %v = %d", batches[0][4].Tag, v)
	}
}

func TestValidate(t *testing.T) {
	ok := testRegistration("e")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(r *Registration){
		"no EID":          func(r *Registration) { r.EntityID = "" },
		"wildcard portal": func(r *Registration) { r.Portals[0].Addr = ap("0.0.0.0:3260") },
		"port 0":          func(r *Registration) { r.Portals[0].Addr = ap("127.0.0.1:0") },
		"twice":           func(r *Registration) { r.Portals[1] = r.Portals[0] },
		"empty name":      func(r *Registration) { r.Nodes[0].Name = "" },
		"duplicate node":  func(r *Registration) { r.Nodes[1].Name = r.Nodes[0].Name },
		"unknown portal":  func(r *Registration) { r.Nodes[1].Portals = []netip.AddrPort{ap("127.0.0.9:3260")} },
	}
	for name, f := range bad {
		r := testRegistration("e")
		f(&r)
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNames(t *testing.T) {
	if s := DevAttrReg.Response().String(); s != "DevAttrRegRsp" {
		t.Error(s)
	}
	if s := Function(0x7777).String(); s != "Function(0x7777)" {
		t.Error(s)
	}
	if s := StatusESINotAvailable.String(); s != "ESI Not Available" {
		t.Error(s)
	}
	if s := (FlagClient | FlagReplace | 1).String(); s != "client|replace|0x1" {
		t.Error(s)
	}
	if s := TagPGTag.String(); s != "PG Tag" {
		t.Error(s)
	}
	if s := EventESI.String(); s != "esi" {
		t.Error(s)
	}
}
