package bridge

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// tool runs an external initiator tool and returns its combined output.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	p := peerTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, args...).CombinedOutput()
	return string(out), err
}

const chapConfig = `
portal "lo" {
  listen = "127.0.0.1:0"
}
discovery {
  chap {
    username = "disco"
    secret   = "discovery-secret-1"
  }
}
target "iqn.2026-11.io.sanbridge:chap" {
  chap {
    username = "host"
    secret   = "host-secret-123"
  }
  initiator "iqn.2026-11.io.sanbridge:mutual" {
    chap {
      username        = "mhost"
      secret          = "mutual-host-secret"
      mutual_username = "tgt"
      mutual_secret   = "mutual-target-secret"
    }
  }
  initiator "iqn.2026-11.io.sanbridge:oneway" {
  }
  lun "0" {
    emulated {
      size = "8MiB"
    }
  }
}
`

// TestLibiscsiToolsOpen: discovery, INQUIRY and READ CAPACITY(16) with
// libiscsi's tools against an open target.
func TestLibiscsiToolsOpen(t *testing.T) {
	addr := startGateway(t, conformanceConfig(""))
	out, err := tool(t, "iscsi-ls", "-s", "iscsi://"+addr)
	if err != nil || !strings.Contains(out, "Target:"+conformanceTarget+" Portal:"+addr+",1") || !strings.Contains(out, "Lun:0") {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	url := fmt.Sprintf("iscsi://%s/%s/0", addr, conformanceTarget)
	out, err = tool(t, "iscsi-inq", url)
	if err != nil || !strings.Contains(out, "Peripheral Device Type:DIRECT_ACCESS") {
		t.Fatalf("iscsi-inq: %v\n%s", err, out)
	}
	out, err = tool(t, "iscsi-inq", "-e", "1", "-c", "128", url)
	if err != nil || !strings.Contains(out, "CONF0001") {
		t.Fatalf("iscsi-inq VPD 0x80: %v\n%s", err, out)
	}
	out, err = tool(t, "iscsi-readcapacity16", url)
	if err != nil || !strings.Contains(out, "Total size:67108864") {
		t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
	}
}

// TestLibiscsiToolsCHAP: one-way and mutual CHAP, discovery CHAP, and
// the failures: missing or wrong secrets, initiators not on the ACL.
func TestLibiscsiToolsCHAP(t *testing.T) {
	addr := startGateway(t, chapConfig)
	target := "iqn.2026-11.io.sanbridge:chap"
	url := func(cred string) string { return fmt.Sprintf("iscsi://%s%s/%s/0", cred, addr, target) }
	cases := []struct {
		name, initiator, url string
		ok                   bool
	}{
		{"one-way", "iqn.2026-11.io.sanbridge:oneway", url("host%host-secret-123@"), true},
		{"no credentials", "iqn.2026-11.io.sanbridge:oneway", url(""), false},
		{"wrong secret", "iqn.2026-11.io.sanbridge:oneway", url("host%host-secret-124@"), false},
		{"not on ACL", "iqn.2026-11.io.sanbridge:stranger", url("host%host-secret-123@"), false},
		{"mutual", "iqn.2026-11.io.sanbridge:mutual", url("mhost%mutual-host-secret@") + "?target_user=tgt&target_password=mutual-target-secret", true},
		{"mutual, wrong target secret", "iqn.2026-11.io.sanbridge:mutual", url("mhost%mutual-host-secret@") + "?target_user=tgt&target_password=not-the-secret", false},
		{"mutual required", "iqn.2026-11.io.sanbridge:mutual", url("mhost%mutual-host-secret@"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tool(t, "iscsi-inq", "-i", tc.initiator, tc.url)
			if got := err == nil && strings.Contains(out, "DIRECT_ACCESS"); got != tc.ok {
				t.Fatalf("login succeeded=%v, want %v: %v\n%s", got, tc.ok, err, out)
			}
		})
	}
	// Discovery needs its own CHAP; the target appears only to allowed initiators.
	out, err := tool(t, "iscsi-ls", "-i", "iqn.2026-11.io.sanbridge:oneway", "iscsi://disco%discovery-secret-1@"+addr)
	if err != nil || !strings.Contains(out, "Target:"+target) {
		t.Fatalf("discovery with CHAP: %v\n%s", err, out)
	}
	out, err = tool(t, "iscsi-ls", "-i", "iqn.2026-11.io.sanbridge:stranger", "iscsi://disco%discovery-secret-1@"+addr)
	if strings.Contains(out, "Target:"+target) {
		t.Fatalf("discovery shows the target to an initiator not on its ACL:\n%s", out)
	}
	if _, err := tool(t, "iscsi-ls", "-i", "iqn.2026-11.io.sanbridge:oneway", "iscsi://"+addr); err == nil {
		t.Fatal("discovery without CHAP succeeded")
	}
}
