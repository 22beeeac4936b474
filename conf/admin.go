package conf

import (
	"net/netip"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
)

// The admin endpoint (sanbridge status, sanbridge reload):
//
//	admin {
//	  socket = "/run/sanbridge/admin.sock"   # default: see sanbridge serve --admin-socket
//	  listen = "127.0.0.1:9164"              # optional, loopback only
//	}
//
// The unix socket is made accessible to its owner only; the TCP
// listener, when asked for, is reachable by every local user and is
// refused on anything but a loopback address.

// Admin configures the admin endpoint.
type Admin struct {
	// Socket is the unix socket's path; empty: the command line's (or
	// the default).
	Socket string `json:"socket,omitempty"`
	// Listen is a loopback IP:port for the same endpoint over TCP;
	// empty: none.
	Listen string `json:"listen,omitempty"`

	// DeclRange is where the admin block is defined; ListenRange the
	// listen attribute (for diagnostics at bind time).
	DeclRange   hcl.Range `json:"-"`
	ListenRange hcl.Range `json:"-"`
}

type rawAdmin struct {
	Socket   hcl.Expression `hcl:"socket,optional"`
	Listen   hcl.Expression `hcl:"listen,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
}

// admin resolves the admin block.
func (r *resolver) admin(ra *rawAdmin) {
	if ra == nil {
		return
	}
	a := &Admin{DeclRange: ra.DefRange}
	r.cfg.Admin = a
	if s, st := r.str(ra.Socket, "socket"); st == attrOK {
		if s == "" || !filepath.IsAbs(s) || len(s) > 107 {
			r.errorf(ra.Socket.Range(), "Invalid socket path",
				"socket is the absolute path of the admin unix socket, at most 107 bytes (the kernel's limit), such as \"/run/sanbridge/admin.sock\"; it is %q.", s)
		} else {
			a.Socket = filepath.Clean(s)
		}
	}
	if l, st := r.str(ra.Listen, "listen"); st == attrOK {
		ap, err := netip.ParseAddrPort(l)
		switch {
		case err != nil:
			r.errorf(ra.Listen.Range(), "Invalid listen address",
				`listen is a loopback IP:port such as "127.0.0.1:9164" or "[::1]:9164": %v.`, err)
		case !ap.Addr().IsLoopback():
			r.errorf(ra.Listen.Range(), "Admin listener not on loopback",
				"The admin endpoint reloads the configuration and lists sessions without authentication, so it listens on loopback addresses only (127.0.0.1, ::1); %s is not one. Use the unix socket from other machines through ssh.", ap.Addr())
		default:
			a.Listen = ap.String()
			a.ListenRange = ra.Listen.Range()
			for i, p := range r.cfg.Portals {
				if lp, ok := r.listen[i]; ok && ap.Port() != 0 && lp.Port() == ap.Port() && (lp == ap || listenOverlaps(lp.Addr(), ap.Addr())) {
					r.errorf(ra.Listen.Range(), "Admin listen address taken",
						"Portal %q already listens on %s (%s); give the admin listener another port.", p.Name, lp, p.ListenRange)
				}
			}
			if m := r.cfg.Metrics; m != nil && m.Listen == a.Listen && ap.Port() != 0 {
				r.errorf(ra.Listen.Range(), "Admin listen address taken",
					"The metrics listener (%s) uses %s already; give the admin listener another port.", m.ListenRange, m.Listen)
			}
		}
	}
}
