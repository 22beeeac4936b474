package conf

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const servicesSrc = `
portal "lo" {
  listen = "127.0.0.1:3260"
}
portal "any" {
  listen    = "[::]:3261"
  advertise = "san.example.com:3261"
}
metrics {
  listen = "[::1]:0"
}
isns {
  server     = "2001:db8::5"
  esi_listen = "0.0.0.0:0"
}
target "iqn.2026-11.io.sanbridge:s" {
  chap {
    username = "user"
    secret   = "secret-12345"
  }
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
`

func TestServices(t *testing.T) {
	cfg, diags := Parse([]byte(servicesSrc), "services.hcl")
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	if m := cfg.Metrics; m == nil || m.Listen != "[::1]:0" || m.ListenRange.Start.Line != 10 {
		t.Errorf("metrics %+v", m)
	}
	n := cfg.ISNS
	if n == nil || n.Server != "[2001:db8::5]:3205" || n.EntityID != "" || n.ESIListen != "0.0.0.0:0" || n.ESIInterval != DefaultESIInterval {
		t.Fatalf("isns %+v", n)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"metrics":{"listen":"[::1]:0"}`, `"isns":{"server":"[2001:db8::5]:3205","esi_listen":"0.0.0.0:0","esi_interval":"1m0s"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}

	// Neither block: neither service.
	cfg, diags = Parse([]byte(strings.Split(servicesSrc, "metrics {")[0]+strings.Split(servicesSrc, "}\n}\n")[1]), "none.hcl")
	if diags.HasErrors() || cfg.Metrics != nil || cfg.ISNS != nil {
		t.Fatalf("without blocks: %v %+v %+v", diags, cfg.Metrics, cfg.ISNS)
	}
}

func TestISNSServer(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.5":             "192.0.2.5:3205",
		"192.0.2.5:4000":        "192.0.2.5:4000",
		"isns.example.com":      "isns.example.com:3205",
		"isns.example.com:3205": "isns.example.com:3205",
		"[2001:db8::5]:3205":    "[2001:db8::5]:3205",
		"2001:db8::5":           "[2001:db8::5]:3205",
	} {
		if got, msg := isnsServer(in); got != want || msg != "" {
			t.Errorf("isnsServer(%q) = %q, %q; want %q", in, got, msg, want)
		}
	}
	for _, in := range []string{"", "0.0.0.0", "host:0", "host:x", "bad name!", "[::]:3205"} {
		if got, msg := isnsServer(in); msg == "" {
			t.Errorf("isnsServer(%q) = %q, accepted", in, got)
		}
	}
	if DefaultESIInterval != 60*time.Second {
		t.Errorf("default ESI interval %v", DefaultESIInterval)
	}
}
