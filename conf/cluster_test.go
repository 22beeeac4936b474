package conf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const clusterSrc = `
portal "lo" {
  listen = "127.0.0.1:3260"
  group  = 3
}
backend "shelf1" {
  shared = true
  device {
    wwn = "naa.5000c50015ea71a0"
  }
}
backend "local" {
  emulated {
    size = "1MiB"
  }
}
cluster {
  node_id   = "7"
  endpoints = ["https://127.0.0.1:2379", "https://127.0.0.2:2379"]
  username  = "sanbridge"
  password  = "etcd-Password-1"
  lease_ttl = "4s"
  alua      = "explicit"
  preferred = true
  tls {
    ca_file = "/etc/sanbridge/etcd-ca.pem"
  }
}
target "iqn.2026-11.io.sanbridge:c" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    backend = "shelf1"
  }
  lun "1" {
    backend = "local"
  }
}
`

func TestCluster(t *testing.T) {
	cfg, diags := Parse([]byte(clusterSrc), "cluster.hcl")
	if diags.HasErrors() || len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	c := cfg.Cluster
	if c == nil {
		t.Fatal("no cluster")
	}
	want := Cluster{
		NodeID: "7", PortGroup: 7, Endpoints: []string{"https://127.0.0.1:2379", "https://127.0.0.2:2379"},
		Username: "sanbridge", Password: "etcd-Password-1", LeaseTTL: 4 * time.Second, Prefix: DefaultClusterPrefix,
		ALUA: ALUAExplicit, Preferred: true,
	}
	got := *c
	got.TLS, got.DeclRange = nil, want.DeclRange
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) || strings.Join(got.Endpoints, ",") != strings.Join(want.Endpoints, ",") {
		t.Errorf("cluster %#v, want %#v", got, want)
	}
	if c.TLS == nil || c.TLS.CAFile != "/etc/sanbridge/etcd-ca.pem" {
		t.Errorf("tls %+v", c.TLS)
	}
	if got, want := cfg.SharedBackends(), []string{"shelf1"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("shared backends %q, want %q", got, want)
	}
	if id := c.RelTargetPortID(0); id != 7<<8|1 {
		t.Errorf("relative target port id of port 0: %#x", id)
	}

	// The password appears in no printed, marshaled or logged form.
	var logged bytes.Buffer
	log := zerolog.New(&logged)
	log.Info().Object("config", cfg).Object("cluster", c).Msg("")
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"String": cfg.String(), "GoString": fmt.Sprintf("%#v", cfg), "cluster String": c.String(),
		"cluster GoString": fmt.Sprintf("%#v", *c), "%v": fmt.Sprintf("%v", *c), "JSON": string(js), "log": logged.String(),
	} {
		if strings.Contains(s, "etcd-Password-1") {
			t.Errorf("%s shows the etcd password: %s", name, s)
		}
	}
	if !strings.Contains(string(js), `"password":"REDACTED"`) || !strings.Contains(string(js), `"lease_ttl":"4s"`) {
		t.Errorf("JSON: %s", js)
	}
}

// TestClusterDefaults: a minimal cluster block gets the documented
// defaults, and no cluster block means none.
func TestClusterDefaults(t *testing.T) {
	src := strings.Replace(clusterSrc, `  node_id   = "7"`, `  node_id   = "gw-a"
  port_group = 2`, 1)
	src = strings.Replace(src, `  endpoints = ["https://127.0.0.1:2379", "https://127.0.0.2:2379"]`, `  endpoints = ["http://127.0.0.1:2379"]`, 1)
	for _, drop := range []string{`  username  = "sanbridge"`, `  password  = "etcd-Password-1"`, `  lease_ttl = "4s"`, `  alua      = "explicit"`, `  preferred = true`} {
		src = strings.Replace(src, drop+"\n", "", 1)
	}
	src = strings.Replace(src, "  tls {\n    ca_file = \"/etc/sanbridge/etcd-ca.pem\"\n  }\n", "", 1)
	cfg, diags := Parse([]byte(src), "defaults.hcl")
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	c := cfg.Cluster
	if c.NodeID != "gw-a" || c.PortGroup != 2 || c.LeaseTTL != DefaultLeaseTTL || c.Prefix != DefaultClusterPrefix ||
		c.ALUA != ALUAImplicit || c.Preferred || c.TLS != nil || c.Username != "" {
		t.Errorf("defaults: %#v", *c)
	}
	plain, diags := Default()
	if diags.HasErrors() || plain.Cluster != nil || len(plain.SharedBackends()) != 0 {
		t.Errorf("demo config: cluster %v, shared %v", plain.Cluster, plain.SharedBackends())
	}
}
