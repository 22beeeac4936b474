package iscsi

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeNameValid(t *testing.T) {
	long := "iqn.2001-04.com.example:" + strings.Repeat("x", nameMaxBytes-len("iqn.2001-04.com.example:"))
	for _, tc := range []struct{ in, want string }{
		{"iqn.2001-04.com.example", "iqn.2001-04.com.example"},
		{"iqn.2001-04.com.example:storage:diskarrays-sn-a8675309", "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309"},
		{"iqn.2001-04.com.example:storage.tape1.sys1.xyz", "iqn.2001-04.com.example:storage.tape1.sys1.xyz"},
		{"IQN.2001-04.COM.Example:Storage.Disk2", "iqn.2001-04.com.example:storage.disk2"},
		{"iqn.1994-05.com.redhat:5b3b1b2c3d4e", "iqn.1994-05.com.redhat:5b3b1b2c3d4e"},
		{"iqn.1991-05.com.microsoft:host1.corp.example.com", "iqn.1991-05.com.microsoft:host1.corp.example.com"},
		{"iqn.2003-01.org.linux-iscsi.host.x8664:sn.0123456789ab", "iqn.2003-01.org.linux-iscsi.host.x8664:sn.0123456789ab"},
		{"iqn.2026-11.io.sanbridge:demo", "iqn.2026-11.io.sanbridge:demo"},
		{"iqn.2000-12.com.3par", "iqn.2000-12.com.3par"},
		{"eui.02004567A425678D", "eui.02004567a425678d"},
		{"EUI.0123456789abcdef", "eui.0123456789abcdef"},
		{"naa.52004567BA64678D", "naa.52004567ba64678d"},
		{"naa.6001405abcdef0123456789abcdef012", "naa.6001405abcdef0123456789abcdef012"},
		{long, long},
	} {
		got, err := NormalizeName(tc.in)
		if err != nil {
			t.Errorf("NormalizeName(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if err := ValidateName(tc.in); err != nil {
			t.Errorf("ValidateName(%q): %v", tc.in, err)
		}
	}
}

func TestNormalizeNameInvalid(t *testing.T) {
	for _, tc := range []struct {
		in     string
		offset int
		reason string // substring of NameError.Reason
	}{
		{"", -1, "empty name"},
		{"iqn.2001-04.com.example:" + strings.Repeat("x", nameMaxBytes), -1, "at most 223 bytes"},
		{"iqn.2001-04.com.example:disk 1", 28, `' ' at offset 28 is not allowed`},
		{"iqn.2001-04.com.example:disk_1", 28, `'_' at offset 28 is not allowed`},
		{"iqn.2001-04.com.example/disk", 23, `'/' at offset 23`},
		{"iqn.2001-04.com.exämple", 18, "non-ASCII byte 0xc3 at offset 18"},
		{"iqn.2001-04.com.example:\x00", 24, `'\x00' at offset 24`},
		{"iqn.2001-13.com.example", 9, "month 13 is not 01-12"},
		{"iqn.2001-00.com.example", 9, "month 00 is not 01-12"},
		{"iqn.01-04.com.example", 4, "date YYYY-MM"},
		{"iqn.2001-4.com.example", 4, "date YYYY-MM"},
		{"iqn.2001-04com.example", 4, "date YYYY-MM"},
		{"iqn.2001-04", 4, "date YYYY-MM"},
		{"IQN.", -1, "date YYYY-MM"},
		{"iqn.2001-04.", -1, "missing naming authority"},
		{"iqn.2001-04.:disk", 12, "missing naming authority"},
		{"iqn.2001-04.com..example", 16, "empty label"},
		{"iqn.2001-04.com.example.", -1, "empty label"},
		{"iqn.2001-04.com.example:", 23, "nothing follows ':'"},
		{"iqn", 0, "unknown name type"},
		{"iqn:2001-04.com.example", 0, "unknown name type"},
		{"example.com", 0, "unknown name type"},
		{"eui.02004567A425678", -1, "16 hexadecimal digits"},
		{"eui.02004567A425678DD", -1, "16 hexadecimal digits"},
		{"eui.02004567A425678G", 19, "not a hexadecimal digit"},
		{"naa.0123456789abcdef0123", -1, "16 or 32 hexadecimal digits"},
		{"naa.0123456789abcdef:", 20, "not a hexadecimal digit"},
	} {
		got, err := NormalizeName(tc.in)
		if err == nil {
			t.Errorf("NormalizeName(%q) = %q, want an error", tc.in, got)
			continue
		}
		if got != "" {
			t.Errorf("NormalizeName(%q) returned %q with an error", tc.in, got)
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("NormalizeName(%q): %v does not match ErrInvalidName", tc.in, err)
		}
		var ne *NameError
		if !errors.As(err, &ne) {
			t.Errorf("NormalizeName(%q): %T is not *NameError", tc.in, err)
			continue
		}
		if ne.Name != tc.in {
			t.Errorf("NormalizeName(%q): NameError.Name = %q", tc.in, ne.Name)
		}
		if ne.Offset != tc.offset {
			t.Errorf("NormalizeName(%q): Offset = %d, want %d (%v)", tc.in, ne.Offset, tc.offset, err)
		}
		if !strings.Contains(ne.Reason, tc.reason) {
			t.Errorf("NormalizeName(%q): reason %q does not contain %q", tc.in, ne.Reason, tc.reason)
		}
		if ValidateName(tc.in) == nil {
			t.Errorf("ValidateName(%q) accepted what NormalizeName rejected", tc.in)
		}
	}
}

func TestNameErrorMessageBounded(t *testing.T) {
	huge := strings.Repeat("A", 1<<16)
	err := ValidateName(huge)
	if err == nil {
		t.Fatal("ValidateName accepted a 64 KiB name")
	}
	if n := len(err.Error()); n > 2*nameShownMax+200 {
		t.Errorf("error message is %d bytes long; it should quote a bounded prefix", n)
	}
	if !strings.Contains(err.Error(), "at most 223 bytes") {
		t.Errorf("error %q does not give the limit", err)
	}
}

// nameFuzzSeeds are the f.Add seeds of FuzzValidateName; testdata/fuzz/
// FuzzValidateName holds more.
var nameFuzzSeeds = []string{
	"iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
	"IQN.2026-11.IO.SANBRIDGE:DEMO",
	"eui.02004567A425678D",
	"naa.6001405abcdef0123456789abcdef012",
	"iqn.2001-13.com.example",
	"iqn.2001-04.com..example:",
	"iqn.2001-04.com.exämple",
	"",
	"eui.",
}

func FuzzValidateName(f *testing.F) {
	for _, s := range nameFuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		norm, err := NormalizeName(name)
		if (err == nil) != (ValidateName(name) == nil) {
			t.Fatalf("NormalizeName and ValidateName disagree on %q", name)
		}
		if err != nil {
			var ne *NameError
			if !errors.As(err, &ne) || !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v (%T) is not a *NameError matching ErrInvalidName", err, err)
			}
			if ne.Offset < -1 || ne.Offset >= len(name) {
				t.Fatalf("offset %d out of range for %q", ne.Offset, name)
			}
			if norm != "" {
				t.Fatalf("NormalizeName(%q) returned %q with an error", name, norm)
			}
			return
		}
		if len(norm) != len(name) || len(norm) > nameMaxBytes {
			t.Fatalf("NormalizeName(%q) = %q: bad length", name, norm)
		}
		if !strings.EqualFold(norm, name) || strings.ToLower(norm) != norm {
			t.Fatalf("NormalizeName(%q) = %q is not the lower-case fold", name, norm)
		}
		again, err := NormalizeName(norm)
		if err != nil || again != norm {
			t.Fatalf("NormalizeName is not idempotent on %q: %q, %v", norm, again, err)
		}
		for i := 0; i < len(norm); i++ {
			c := norm[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
				t.Fatalf("accepted name %q contains %q", name, rune(c))
			}
		}
		if p := norm[:4]; p != "iqn." && p != "eui." && p != "naa." {
			t.Fatalf("accepted name %q has type %q", name, p)
		}
	})
}

func BenchmarkNormalizeName(b *testing.B) {
	const name = "IQN.1994-05.com.redhat:5b3b1b2c3d4e"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NormalizeName(name); err != nil {
			b.Fatal(err)
		}
	}
}
