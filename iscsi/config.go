package iscsi

import (
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server.
type Config struct {
	// Portals are the listeners. Each becomes one listening socket.
	Portals []Portal
	// Targets are the exported targets.
	Targets Targets
	// DiscoveryCHAP, when non-nil, requires CHAP for discovery sessions.
	DiscoveryCHAP *CHAPSecret
	// Preferences are the negotiation offers; the zero value stands for
	// DefaultPreferences() (set every field when overriding any).
	Preferences Preferences
	// CmdWindow is how many commands a session may have queued beyond
	// ExpCmdSN (MaxCmdSN - ExpCmdSN + 1); default 128.
	CmdWindow uint32
	// LoginTimeout bounds the whole login phase; default 15 s.
	LoginTimeout time.Duration
	// NOPInterval is the idle time after which a NOP-In ping is sent;
	// default 10 s. NOPTimeout is how long the initiator has to answer
	// before the connection is dropped; default 15 s.
	NOPInterval, NOPTimeout time.Duration
	// Limits bound what initiators can make the server hold; the zero
	// value means the defaults (see Limits).
	Limits Limits
	// Log receives the server's logs. CHAP secrets are never logged.
	Log zerolog.Logger
	// Hooks are called on session and login events (admin.go).
	Hooks Hooks
}

func (c *Config) withDefaults() Config {
	out := *c
	d := DefaultPreferences()
	p := &out.Preferences
	if p.MaxRecvDataSegmentLength == 0 {
		*p = d
	}
	if out.CmdWindow == 0 {
		out.CmdWindow = 128
	}
	if out.LoginTimeout == 0 {
		out.LoginTimeout = 15 * time.Second
	}
	if out.NOPInterval == 0 {
		out.NOPInterval = 10 * time.Second
	}
	if out.NOPTimeout == 0 {
		out.NOPTimeout = 15 * time.Second
	}
	if out.Targets == nil {
		out.Targets = StaticTargets(nil)
	}
	out.Limits = out.Limits.withDefaults(out.CmdWindow, out.LoginTimeout)
	if m := out.Limits.MaxOutstandingR2T; m != 0 {
		p.MaxOutstandingR2T = min(max(p.MaxOutstandingR2T, 1), m)
	}
	return out
}
