package isns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/sanbridge/sanbridge/conf"
)

const configSrc = `
portal "lo" {
  listen = "127.0.0.1:0"
}
portal "pub" {
  listen    = "0.0.0.0:3261"
  advertise = "san.example.com:3261"
  group     = 2
}
isns {
  server    = "127.0.0.1"
  entity_id = "gw-test"
}
target "iqn.2026-11.io.sanbridge:all" {
  alias = "everything"
  initiator "iqn.1994-05.com.redhat:h" {
    chap {
      username = "h"
      secret   = "h-secret-1234"
    }
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
target "iqn.2026-11.io.sanbridge:local" {
  portals = ["lo"]
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
`

func TestRegistrationFromConfig(t *testing.T) {
	cfg, diags := conf.Parse([]byte(configSrc), "isns.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// DNS is not reachable from tests: the advertise name resolves here.
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "san.example.com" {
			return nil, errors.New("no such host")
		}
		return []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("::ffff:192.0.2.11")}, nil
	}
	bound := []netip.AddrPort{ap("127.0.0.1:40123"), ap("0.0.0.0:3261")}
	reg, err := RegistrationFromConfig(context.Background(), cfg, bound, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if reg.EntityID != "gw-test" {
		t.Errorf("entity %q", reg.EntityID)
	}
	wantPortals := []Portal{{ap("127.0.0.1:40123"), 1}, {ap("192.0.2.10:3261"), 2}, {ap("192.0.2.11:3261"), 2}}
	if !slices.Equal(reg.Portals, wantPortals) {
		t.Errorf("portals %v, want %v", reg.Portals, wantPortals)
	}
	if len(reg.Nodes) != 2 {
		t.Fatalf("nodes %+v", reg.Nodes)
	}
	all, local := reg.Nodes[0], reg.Nodes[1]
	if all.Name != "iqn.2026-11.io.sanbridge:all" || all.Alias != "everything" || len(all.Portals) != 3 {
		t.Errorf("node %+v", all)
	}
	if local.Name != "iqn.2026-11.io.sanbridge:local" || !slices.Equal(local.Portals, []netip.AddrPort{ap("127.0.0.1:40123")}) {
		t.Errorf("node %+v", local)
	}
	if o := OptionsFromConfig(cfg.ISNS); o.Server != "127.0.0.1:3205" || o.ESIListen != "" || o.ESIInterval != conf.DefaultESIInterval {
		t.Errorf("options %+v", o)
	}

	// A name that does not resolve, a wildcard without advertise: errors.
	if _, err := RegistrationFromConfig(context.Background(), cfg, bound, func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("no such host")
	}); err == nil {
		t.Error("unresolvable advertise name accepted")
	}
	cfg.Portals[1].Advertise = ""
	if _, err := RegistrationFromConfig(context.Background(), cfg, bound, lookup); err == nil {
		t.Error("wildcard portal without advertise accepted")
	}
}
