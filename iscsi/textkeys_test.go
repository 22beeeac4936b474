package iscsi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // pairs as k=v joined by '|', or "error"
	}{
		{"", ""},
		{"A=1\x00", "A=1"},
		{"A=1\x00B=\x00", "A=1|B="},
		{"A=1\x00\x00\x00\x00B=2\x00", "A=1|B=2"},
		{"A=x=y\x00", "A=x=y"},
		{"X-com.example.k_1@+#=v\x00", "X-com.example.k_1@+#=v"},
		{"lower=1\x00", "lower=1"},
		{"A=1", "error"},
		{"A=1\x00B=2", "error"},
		{"A\x00", "error"},
		{"=1\x00", "error"},
		{"A B=1\x00", "error"},
		{"A:B=1\x00", "error"},
		{strings.Repeat("K", 63) + "=1\x00", strings.Repeat("K", 63) + "=1"},
		{strings.Repeat("K", 64) + "=1\x00", "error"},
		{"A=" + strings.Repeat("v", 8192) + "\x00", "A=" + strings.Repeat("v", 8192)},
		{"A=" + strings.Repeat("v", 8193) + "\x00", "error"},
		{"A=\xff\xfe\x00", "error"},
		{"A=h\xc3\xa9\x00", "A=h\u00e9"},
	} {
		pairs, err := parseText([]byte(tc.in))
		var got string
		if err != nil {
			var se *textSyntaxError
			if !errors.As(err, &se) {
				t.Errorf("%q: error %T", tc.in, err)
			}
			got = "error"
		} else {
			var s []string
			for _, p := range pairs {
				s = append(s, p.Key+"="+p.Value)
			}
			got = strings.Join(s, "|")
		}
		if got != tc.want {
			show := tc.in
			if len(show) > 80 {
				show = show[:80]
			}
			t.Errorf("parseText(%q) = %q, want %q", show, got, tc.want)
		}
	}
}

func TestTextRoundTrip(t *testing.T) {
	var b []byte
	b = appendTextPair(b, "TargetName", "iqn.2024-01.com.example:a")
	b = appendTextPair(b, "TargetAddress", "[::1]:3260,1")
	if !bytes.Equal(b, []byte("TargetName=iqn.2024-01.com.example:a\x00TargetAddress=[::1]:3260,1\x00")) {
		t.Fatalf("encoded %q", b)
	}
	pairs, err := parseText(b)
	if err != nil || len(pairs) != 2 || pairs[1].Value != "[::1]:3260,1" {
		t.Fatalf("%v %v", pairs, err)
	}
}

func TestParseTextNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"0x200", 512, true}, {"0X1f", 31, true},
		{"00012", 12, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"0xffffffffffffffff", 1<<64 - 1, true},
		{"0x1ffffffffffffffff", 0, false}, {"", 0, false},
		{"0x", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1e3", 0, false},
		{" 1", 0, false}, {"1_0", 0, false}, {"0b11", 0, false},
	} {
		got, ok := parseTextNumber(tc.in)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("parseTextNumber(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseTextList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"CRC32C,None", "[CRC32C None]"}, {"None", "[None]"}, {"", "bad"}, {",None", "bad"},
		{"None,", "bad"}, {"a,,b", "bad"}, {strings.Repeat("a", 256), "bad"},
	} {
		items, ok := parseTextList(tc.in)
		got := fmt.Sprint(items)
		if !ok {
			got = "bad"
		}
		if got != tc.want {
			t.Errorf("parseTextList(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzTextKeys feeds arbitrary bytes to the parser: it must not panic,
// every pair it returns must be well formed, and encoding the pairs
// again must parse to the same pairs.
func FuzzTextKeys(f *testing.F) {
	f.Add([]byte("InitiatorName=iqn.2024-01.org.example:h\x00SessionType=Normal\x00"))
	f.Add([]byte("HeaderDigest=CRC32C,None\x00\x00\x00\x00"))
	f.Add([]byte("A=1\x00B"))
	f.Add([]byte("CHAP_C=0x0102\x00CHAP_R=0bAQI=\x00"))
	f.Add([]byte("=\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs, err := parseText(data)
		if err != nil {
			return
		}
		var enc []byte
		for _, p := range pairs {
			if p.Key == "" || len(p.Key) > textKeyMaxLen || strings.ContainsAny(p.Key, "=\x00") ||
				strings.Contains(p.Value, "\x00") || len(p.Value) > textBinaryMaxLen {
				t.Fatalf("bad pair %q", p)
			}
			enc = appendTextPair(enc, p.Key, p.Value)
		}
		again, err := parseText(enc)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(pairs) {
			t.Fatalf("round trip: %v %v vs %v", err, again, pairs)
		}
	})
}
