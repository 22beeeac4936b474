package iscsi

import (
	"testing"
)

// TestNegotiateKeys checks each key's result function, range and
// answers against RFC 7143 13, one offer at a time.
func TestNegotiateKeys(t *testing.T) {
	prefs := DefaultPreferences()
	prefs.HeaderDigest, prefs.DataDigest = true, false
	prefs.DefaultTime2Wait, prefs.DefaultTime2Retain = 5, 20
	for _, tc := range []struct {
		key, offer string
		discovery  bool
		want       string // "" = no answer
		check      func(p Params) bool
	}{
		// Lists.
		{key: "HeaderDigest", offer: "CRC32C,None", want: "CRC32C", check: func(p Params) bool { return p.HeaderDigest }},
		{key: "HeaderDigest", offer: "None,CRC32C", want: "None", check: func(p Params) bool { return !p.HeaderDigest }},
		{key: "HeaderDigest", offer: "Foo,CRC32C", want: "CRC32C"},
		{key: "HeaderDigest", offer: "Foo", want: "Reject", check: func(p Params) bool { return !p.HeaderDigest }},
		{key: "HeaderDigest", offer: "", want: "Reject"},
		{key: "HeaderDigest", offer: "CRC32C,", want: "Reject"},
		{key: "DataDigest", offer: "CRC32C,None", want: "None", check: func(p Params) bool { return !p.DataDigest }},
		{key: "DataDigest", offer: "CRC32C", want: "Reject"},
		{key: "TaskReporting", offer: "ResponseFence,RFC3720", want: "RFC3720"},
		{key: "TaskReporting", offer: "FastAbort", want: "Reject"},
		{key: "TaskReporting", offer: "RFC3720", discovery: true, want: "Irrelevant"},
		// Booleans: InitialR2T OR (we prefer No), ImmediateData AND.
		{key: "InitialR2T", offer: "Yes", want: "Yes", check: func(p Params) bool { return p.InitialR2T }},
		{key: "InitialR2T", offer: "No", want: "No", check: func(p Params) bool { return !p.InitialR2T }},
		{key: "InitialR2T", offer: "yes", want: "Reject", check: func(p Params) bool { return p.InitialR2T }},
		{key: "InitialR2T", offer: "Yes", discovery: true, want: "Irrelevant"},
		{key: "ImmediateData", offer: "Yes", want: "Yes", check: func(p Params) bool { return p.ImmediateData }},
		{key: "ImmediateData", offer: "No", want: "No", check: func(p Params) bool { return !p.ImmediateData }},
		{key: "DataPDUInOrder", offer: "No", want: "Yes", check: func(p Params) bool { return p.DataPDUInOrder }},
		{key: "DataSequenceInOrder", offer: "No", want: "Yes", check: func(p Params) bool { return p.DataSequenceInOrder }},
		{key: "DataSequenceInOrder", offer: "1", want: "Reject"},
		// Numbers: minimum.
		{key: "MaxBurstLength", offer: "1048576", want: "1048576", check: func(p Params) bool { return p.MaxBurstLength == 1048576 }},
		{key: "MaxBurstLength", offer: "33554431", want: "Reject"},
		{key: "MaxBurstLength", offer: "16777215", want: "16777215"},
		{key: "MaxBurstLength", offer: "0x1000", want: "4096"},
		{key: "MaxBurstLength", offer: "511", want: "Reject", check: func(p Params) bool { return p.MaxBurstLength == 262144 }},
		{key: "MaxBurstLength", offer: "-1", want: "Reject"},
		{key: "MaxBurstLength", offer: "+512", want: "Reject"},
		{key: "MaxBurstLength", offer: "1_000", want: "Reject"},
		{key: "MaxBurstLength", offer: "99999999999999999999999", want: "Reject"},
		{key: "MaxBurstLength", offer: "65536", discovery: true, want: "Irrelevant"},
		{key: "FirstBurstLength", offer: "16777215", want: "262144", check: func(p Params) bool { return p.FirstBurstLength == 262144 }},
		{key: "FirstBurstLength", offer: "4096", want: "4096"},
		{key: "MaxOutstandingR2T", offer: "64", want: "16", check: func(p Params) bool { return p.MaxOutstandingR2T == 16 }},
		{key: "MaxOutstandingR2T", offer: "0", want: "Reject"},
		{key: "MaxConnections", offer: "8", want: "1", check: func(p Params) bool { return p.MaxConnections == 1 }},
		{key: "MaxConnections", offer: "65536", want: "Reject"},
		{key: "MaxConnections", offer: "2", discovery: true, want: "Irrelevant"},
		{key: "DefaultTime2Retain", offer: "3600", want: "20", check: func(p Params) bool { return p.DefaultTime2Retain == 20 }},
		{key: "DefaultTime2Retain", offer: "0", want: "0"},
		{key: "DefaultTime2Retain", offer: "3601", want: "Reject"},
		{key: "ErrorRecoveryLevel", offer: "2", want: "0", check: func(p Params) bool { return p.ErrorRecoveryLevel == 0 }},
		{key: "ErrorRecoveryLevel", offer: "3", want: "Reject"},
		{key: "iSCSIProtocolLevel", offer: "2", want: "1"},
		{key: "iSCSIProtocolLevel", offer: "0", want: "0"},
		{key: "iSCSIProtocolLevel", offer: "32", want: "Reject"},
		// Numbers: maximum.
		{key: "DefaultTime2Wait", offer: "0", want: "5", check: func(p Params) bool { return p.DefaultTime2Wait == 5 }},
		{key: "DefaultTime2Wait", offer: "60", want: "60"},
		// Declarations.
		{key: "MaxRecvDataSegmentLength", offer: "65536", want: "", check: func(p Params) bool { return p.MaxXmitDataSegmentLength == 65536 }},
		{key: "MaxRecvDataSegmentLength", offer: "4096", discovery: true, want: "", check: func(p Params) bool { return p.MaxXmitDataSegmentLength == 4096 }},
		// Obsolete and foreign keys.
		{key: "IFMarker", offer: "No", want: "No"},
		{key: "OFMarker", offer: "Yes", want: "No"},
		{key: "OFMarker", offer: "Maybe", want: "Reject"},
		{key: "IFMarkInt", offer: "2048~8192", want: "Reject"},
		{key: "OFMarkInt", offer: "2048", want: "Reject"},
		{key: "RDMAExtensions", offer: "Yes", want: "No"},
		{key: "InitiatorRecvDataSegmentLength", offer: "8192", want: "Irrelevant"},
		{key: "X-com.example.foo", offer: "bar", want: "NotUnderstood"},
		{key: "X#NodeArchitecture", offer: "Linux", want: "NotUnderstood"},
		{key: "FooBar", offer: "1", want: "NotUnderstood"},
		{key: "sENDtARGETS", offer: "aLL", want: "NotUnderstood"},
		// Answers to offers never made.
		{key: "HeaderDigest", offer: "Reject", want: ""},
		{key: "MaxBurstLength", offer: "NotUnderstood", want: ""},
		// Over-long simple value.
		{key: "HeaderDigest", offer: "None," + string(make([]byte, 300)), want: "Reject"},
	} {
		n := newNegotiator(effectivePreferences(prefs), tc.discovery, nil)
		got, respond, err := n.negotiate(tc.key, tc.offer)
		if err != nil {
			t.Errorf("%s=%s: %v", tc.key, tc.offer, err)
			continue
		}
		if !respond {
			got = ""
		}
		if got != tc.want {
			t.Errorf("%s=%s (discovery %v): answered %q, want %q", tc.key, textQuote(tc.offer), tc.discovery, got, tc.want)
		}
		if tc.check != nil && !tc.check(n.params) {
			t.Errorf("%s=%s: params %+v", tc.key, tc.offer, n.params)
		}
	}
}

func TestNegotiateMaxRecvDSLInvalid(t *testing.T) {
	for _, v := range []string{"511", "16777216", "abc", "", "0x"} {
		n := newNegotiator(DefaultPreferences(), false, nil)
		if _, _, err := n.negotiate("MaxRecvDataSegmentLength", v); err == nil {
			t.Errorf("MaxRecvDataSegmentLength=%q accepted", v)
		}
	}
}

// TestNegotiateCrossKey checks the rules between keys: FirstBurstLength
// against MaxBurstLength and its irrelevance, the target burst cap.
func TestNegotiateCrossKey(t *testing.T) {
	n := newNegotiator(DefaultPreferences(), false, &Target{MaxBurstLength: 131072})
	if a, _, _ := n.negotiate("MaxBurstLength", "1048576"); a != "131072" {
		t.Errorf("capped MaxBurstLength answered %s", a)
	}
	if a, _, _ := n.negotiate("FirstBurstLength", "262144"); a != "131072" {
		t.Errorf("FirstBurstLength above MaxBurstLength answered %s", a)
	}

	prefs := DefaultPreferences()
	prefs.InitialR2T = true
	n = newNegotiator(prefs, false, nil)
	n.negotiate("InitialR2T", "Yes")
	n.negotiate("ImmediateData", "No")
	if a, _, _ := n.negotiate("FirstBurstLength", "65536"); a != "Irrelevant" {
		t.Errorf("FirstBurstLength with InitialR2T=Yes ImmediateData=No answered %s", a)
	}

	// Defaults that collide: MaxBurstLength below the default
	// FirstBurstLength of 65536.
	n = newNegotiator(DefaultPreferences(), false, nil)
	n.negotiate("MaxBurstLength", "8192")
	p := n.final(262144)
	if p.FirstBurstLength != 8192 || p.MaxRecvDataSegmentLength != 262144 || p.MaxXmitDataSegmentLength != 8192 {
		t.Errorf("final params %+v", p)
	}
}

// TestLoginFirstBurstAfterMaxBurst sends FirstBurstLength before
// MaxBurstLength in one request: the answer must respect the order-free
// rule "FirstBurstLength MUST NOT exceed MaxBurstLength".
func TestLoginFirstBurstAfterMaxBurst(t *testing.T) {
	e := newLoginEnv(t)
	in := newInitiator(t, e.newLogin(t))
	r, done, err := in.send(StageOperational, true, StageFullFeature, kv(
		"InitiatorName="+tInitiator, "TargetName="+tTarget,
		"FirstBurstLength=262144", "MaxBurstLength=16384"))
	mustOK(t, r, done, err)
	m := keyMap(t, r.Data)
	if m["FirstBurstLength"] != "16384" || m["MaxBurstLength"] != "16384" {
		t.Errorf("answers %v", m)
	}
	if p := in.l.result().Params; p.FirstBurstLength != 16384 || p.MaxBurstLength != 16384 {
		t.Errorf("params %+v", p)
	}
}

func TestEffectivePreferences(t *testing.T) {
	p := effectivePreferences(Preferences{MaxRecvDataSegmentLength: 100, MaxBurstLength: 1 << 30, FirstBurstLength: 1 << 29, DefaultTime2Wait: 9999})
	if p.MaxRecvDataSegmentLength != 512 || p.MaxBurstLength != maxDataSegment || p.FirstBurstLength != maxDataSegment ||
		p.MaxOutstandingR2T != 16 || p.MaxConnections != 1 || p.DefaultTime2Wait != 3600 {
		t.Errorf("effective preferences %+v", p)
	}
}
