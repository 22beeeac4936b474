package conf

import (
	"slices"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/discover"
)

func TestAutoExportResolved(t *testing.T) {
	src := `
portal "a" {
  listen = "127.0.0.1:3260"
}
portal "b" {
  listen = "127.0.0.1:3261"
  group  = 2
}
auto_export "shelf" {
  target     = "IQN.2026-11.io.sanbridge:Shelf"
  portals    = ["b"]
  transports = ["SAS", "virtual"]
  types      = ["disk", "cdrom"]
  vendor     = ["seagate", "HGST*"]
  read_only  = true
}
auto_export "each" {
  target     = "iqn.2026-11.io.sanbridge:dev"
  per_device = true
}
admin {
  listen = "[::1]:9164"
}
`
	cfg, diags := Parse([]byte(src), "auto.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, d := range diags {
		if d.Summary == "No targets" {
			t.Errorf("warned %q although auto_export blocks export devices", d.Summary)
		}
	}
	if len(cfg.AutoExports) != 2 {
		t.Fatalf("%d auto_export blocks", len(cfg.AutoExports))
	}
	a, e := cfg.AutoExports[0], cfg.AutoExports[1]
	if a.Name != "shelf" || a.Target != "iqn.2026-11.io.sanbridge:shelf" || a.PerDevice || !a.ReadOnly ||
		!slices.Equal(a.Portals, []string{"b"}) || !slices.Equal(a.Transports, []string{"sas", "virtual"}) ||
		!slices.Equal(a.Vendors, []string{"seagate", "hgst*"}) {
		t.Errorf("shelf: %+v", a)
	}
	if !e.PerDevice || !slices.Equal(e.Portals, []string{"a", "b"}) || e.Transports != nil {
		t.Errorf("each: %+v", e)
	}
	if cfg.Admin == nil || cfg.Admin.Listen != "[::1]:9164" || cfg.Admin.Socket != "" {
		t.Errorf("admin: %+v", cfg.Admin)
	}
	dev := func(kind discover.TransportKind, typ discover.PeripheralType, vendor, product string) *discover.Device {
		return &discover.Device{Transport: discover.Transport{Kind: kind}, Type: typ, Vendor: vendor, Product: product}
	}
	for _, c := range []struct {
		d    *discover.Device
		want bool
	}{
		{dev(discover.TransportSAS, discover.TypeDisk, "SEAGATE ", "ST4000NM0023"), true},
		{dev(discover.TransportVirtual, discover.TypeCDROM, "HGST", "X"), true},
		{dev(discover.TransportSAS, discover.TypeTape, "SEAGATE", "X"), false},
		{dev(discover.TransportUSB, discover.TypeDisk, "SEAGATE", "X"), false},
		{dev(discover.TransportSAS, discover.TypeDisk, "QEMU", "X"), false},
	} {
		if got := a.Matches(c.d); got != c.want {
			t.Errorf("Matches(%s %s %q): %v, want %v", c.d.Transport.Kind, c.d.Type, c.d.Vendor, got, c.want)
		}
		if !e.Matches(c.d) {
			t.Errorf("an empty selector does not match %s %s %q", c.d.Transport.Kind, c.d.Type, c.d.Vendor)
		}
	}
}
