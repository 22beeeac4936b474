package conf

import (
	"cmp"
	"encoding/json"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// The limits block bounds what initiators can make the gateway hold (see
// iscsi.Limits for what happens when each bites):
//
//	limits {
//	  memory                        = "1GiB"   # command data of all sessions
//	  max_transfer                  = "16MiB"  # per command, LUs without their own limit
//	  max_sessions                  = 1024
//	  max_sessions_per_initiator    = 64
//	  max_pending_logins            = 64
//	  max_pending_logins_per_source = 8
//	  login_timeout                 = "15s"
//	  max_tasks_per_session         = 160
//	  max_outstanding_r2t           = 16
//	  max_pending_task_management   = 16
//	  max_text_keys                 = 256
//	  auth_free_failures            = 3
//	  auth_delay                    = "250ms"
//	  auth_max_delay                = "4s"
//	  auth_lockout_after            = 10
//	  auth_lockout                  = "5m"
//	  auth_forget                   = "15m"
//	  auth_table_size               = 4096
//	}
//
// Every attribute is optional; absent ones keep the gateway's defaults
// (memory: a quarter of the machine's memory, at most 4 GiB).

// Bounds of the limits block's attributes.
const (
	// MinMemory and MaxMemory bound limits.memory.
	MinMemory = 16 << 20
	MaxMemory = 1 << 40
	// MinMaxTransfer bounds limits.max_transfer from below (and memory
	// from above).
	MinMaxTransfer = 64 << 10
	// MaxMaxTransfer is the largest max_transfer: an iSCSI data length
	// is 32 bits.
	MaxMaxTransfer = 1<<32 - 1
	// MinLoginTimeout and MaxLoginTimeout bound limits.login_timeout.
	MinLoginTimeout = time.Second
	MaxLoginTimeout = 10 * time.Minute
	// MinTextKeys is the smallest max_text_keys: initiators send about
	// twenty keys in their first login request.
	MinTextKeys = 32
	// The gateway's defaults the cross-checks compare with (iscsi.Config
	// and iscsi.AuthLimits).
	defaultLoginTimeout     = 15 * time.Second
	defaultAuthFreeFailures = 3
)

// Limits is the limits block. Zero fields were not set: the gateway's
// defaults apply.
type Limits struct {
	// Memory is the budget for command data in flight, all sessions
	// together, in bytes.
	Memory int64 `json:"memory,omitempty"`
	// MaxTransfer bounds one command's data for logical units that set
	// no limit of their own, in bytes.
	MaxTransfer int64 `json:"max_transfer,omitempty"`
	// MaxSessions and MaxSessionsPerInitiator bound the sessions, in all
	// and per initiator name.
	MaxSessions             int `json:"max_sessions,omitempty"`
	MaxSessionsPerInitiator int `json:"max_sessions_per_initiator,omitempty"`
	// MaxPendingLogins and MaxPendingLoginsPerSource bound the
	// connections still logging in, in all and per source address.
	MaxPendingLogins          int `json:"max_pending_logins,omitempty"`
	MaxPendingLoginsPerSource int `json:"max_pending_logins_per_source,omitempty"`
	// LoginTimeout bounds a login phase.
	LoginTimeout time.Duration `json:"login_timeout,omitempty"`
	// MaxTasksPerSession bounds one session's task table.
	MaxTasksPerSession int `json:"max_tasks_per_session,omitempty"`
	// MaxOutstandingR2T caps the negotiated MaxOutstandingR2T (1-16).
	MaxOutstandingR2T int `json:"max_outstanding_r2t,omitempty"`
	// MaxPendingTMF bounds one session's task management requests
	// waiting for their tasks.
	MaxPendingTMF int `json:"max_pending_task_management,omitempty"`
	// MaxTextKeys bounds the keys of one login or text request.
	MaxTextKeys int `json:"max_text_keys,omitempty"`
	// Auth throttles failed CHAP authentications.
	AuthFreeFailures int           `json:"auth_free_failures,omitempty"`
	AuthDelay        time.Duration `json:"auth_delay,omitempty"`
	AuthMaxDelay     time.Duration `json:"auth_max_delay,omitempty"`
	AuthLockoutAfter int           `json:"auth_lockout_after,omitempty"`
	AuthLockout      time.Duration `json:"auth_lockout,omitempty"`
	AuthForget       time.Duration `json:"auth_forget,omitempty"`
	AuthTableSize    int           `json:"auth_table_size,omitempty"`

	// DeclRange is where the limits block is defined.
	DeclRange hcl.Range `json:"-"`
}

// MarshalJSON implements json.Marshaler with durations as strings
// ("15s").
func (l Limits) MarshalJSON() ([]byte, error) {
	type plain Limits
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return json.Marshal(struct {
		plain
		LoginTimeout string `json:"login_timeout,omitempty"`
		AuthDelay    string `json:"auth_delay,omitempty"`
		AuthMaxDelay string `json:"auth_max_delay,omitempty"`
		AuthLockout  string `json:"auth_lockout,omitempty"`
		AuthForget   string `json:"auth_forget,omitempty"`
	}{plain(l), dur(l.LoginTimeout), dur(l.AuthDelay), dur(l.AuthMaxDelay), dur(l.AuthLockout), dur(l.AuthForget)})
}

type rawLimits struct {
	Memory                    hcl.Expression `hcl:"memory,optional"`
	MaxTransfer               hcl.Expression `hcl:"max_transfer,optional"`
	MaxSessions               hcl.Expression `hcl:"max_sessions,optional"`
	MaxSessionsPerInitiator   hcl.Expression `hcl:"max_sessions_per_initiator,optional"`
	MaxPendingLogins          hcl.Expression `hcl:"max_pending_logins,optional"`
	MaxPendingLoginsPerSource hcl.Expression `hcl:"max_pending_logins_per_source,optional"`
	LoginTimeout              hcl.Expression `hcl:"login_timeout,optional"`
	MaxTasksPerSession        hcl.Expression `hcl:"max_tasks_per_session,optional"`
	MaxOutstandingR2T         hcl.Expression `hcl:"max_outstanding_r2t,optional"`
	MaxPendingTMF             hcl.Expression `hcl:"max_pending_task_management,optional"`
	MaxTextKeys               hcl.Expression `hcl:"max_text_keys,optional"`
	AuthFreeFailures          hcl.Expression `hcl:"auth_free_failures,optional"`
	AuthDelay                 hcl.Expression `hcl:"auth_delay,optional"`
	AuthMaxDelay              hcl.Expression `hcl:"auth_max_delay,optional"`
	AuthLockoutAfter          hcl.Expression `hcl:"auth_lockout_after,optional"`
	AuthLockout               hcl.Expression `hcl:"auth_lockout,optional"`
	AuthForget                hcl.Expression `hcl:"auth_forget,optional"`
	AuthTableSize             hcl.Expression `hcl:"auth_table_size,optional"`
	DefRange                  hcl.Range      `hcl:",def_range"`
}

// limits resolves the limits block (absent: every default).
func (r *resolver) limits(rl *rawLimits) {
	if rl == nil {
		return
	}
	l := &r.cfg.Limits
	l.DeclRange = rl.DefRange
	l.Memory = r.byteSize(rl.Memory, "memory", MinMemory, MaxMemory,
		"the budget for data of commands in flight, all sessions together")
	l.MaxTransfer = r.byteSize(rl.MaxTransfer, "max_transfer", MinMaxTransfer, MaxMaxTransfer,
		"the most data one command may move on a logical unit without a limit of its own")
	if l.Memory != 0 && l.MaxTransfer > l.Memory {
		r.errorf(rl.MaxTransfer.Range(), "max_transfer exceeds memory",
			"max_transfer (%s) is larger than the memory budget (%s), so such a command could never run; lower max_transfer or raise memory.", formatSize(l.MaxTransfer), formatSize(l.Memory))
	}
	count := func(expr hcl.Expression, name string, lo, hi int64) int {
		n, st := r.integer(expr, name, lo, hi)
		if st != attrOK {
			return 0
		}
		return int(n)
	}
	l.MaxSessions = count(rl.MaxSessions, "max_sessions", 1, 1<<20)
	l.MaxSessionsPerInitiator = count(rl.MaxSessionsPerInitiator, "max_sessions_per_initiator", 1, 1<<20)
	if l.MaxSessions != 0 && l.MaxSessionsPerInitiator > l.MaxSessions {
		r.warnf(rl.MaxSessionsPerInitiator.Range(), "Per-initiator limit above the total",
			"max_sessions_per_initiator (%d) is larger than max_sessions (%d): one initiator can take every session.", l.MaxSessionsPerInitiator, l.MaxSessions)
	}
	l.MaxPendingLogins = count(rl.MaxPendingLogins, "max_pending_logins", 1, 1<<16)
	l.MaxPendingLoginsPerSource = count(rl.MaxPendingLoginsPerSource, "max_pending_logins_per_source", 1, 1<<16)
	l.LoginTimeout = r.limitDuration(rl.LoginTimeout, "login_timeout", MinLoginTimeout, MaxLoginTimeout)
	l.MaxTasksPerSession = count(rl.MaxTasksPerSession, "max_tasks_per_session", 1, 1<<16)
	l.MaxOutstandingR2T = count(rl.MaxOutstandingR2T, "max_outstanding_r2t", 1, 16)
	l.MaxPendingTMF = count(rl.MaxPendingTMF, "max_pending_task_management", 1, 1024)
	l.MaxTextKeys = count(rl.MaxTextKeys, "max_text_keys", MinTextKeys, 1<<14)
	l.AuthFreeFailures = count(rl.AuthFreeFailures, "auth_free_failures", 1, 1000)
	l.AuthDelay = r.limitDuration(rl.AuthDelay, "auth_delay", time.Millisecond, time.Minute)
	l.AuthMaxDelay = r.limitDuration(rl.AuthMaxDelay, "auth_max_delay", time.Millisecond, 5*time.Minute)
	l.AuthLockoutAfter = count(rl.AuthLockoutAfter, "auth_lockout_after", 1, 1000000)
	l.AuthLockout = r.limitDuration(rl.AuthLockout, "auth_lockout", time.Second, 24*time.Hour)
	l.AuthForget = r.limitDuration(rl.AuthForget, "auth_forget", time.Second, 7*24*time.Hour)
	l.AuthTableSize = count(rl.AuthTableSize, "auth_table_size", 16, 1<<22)

	if l.AuthDelay != 0 && l.AuthMaxDelay != 0 && l.AuthDelay > l.AuthMaxDelay {
		r.errorf(rl.AuthDelay.Range(), "auth_delay exceeds auth_max_delay",
			"auth_delay (%s), the first delay, is longer than auth_max_delay (%s), the longest; lower auth_delay or raise auth_max_delay.", l.AuthDelay, l.AuthMaxDelay)
	}
	if timeout := cmp.Or(l.LoginTimeout, defaultLoginTimeout); l.AuthMaxDelay != 0 && l.AuthMaxDelay > timeout/2 {
		r.errorf(rl.AuthMaxDelay.Range(), "auth_max_delay too long for the login timeout",
			"auth_max_delay (%s) must be at most half the login timeout (%s), or delayed logins time out instead of failing; lower auth_max_delay or raise login_timeout.", l.AuthMaxDelay, timeout)
	}
	free := cmp.Or(l.AuthFreeFailures, defaultAuthFreeFailures)
	if l.AuthLockoutAfter != 0 && l.AuthLockoutAfter <= free {
		r.warnf(rl.AuthLockoutAfter.Range(), "Lockout before any delay",
			"auth_lockout_after (%d) is not above auth_free_failures (%d): a source is locked out before its attempts are ever slowed down.", l.AuthLockoutAfter, free)
	}
}

// byteSize evaluates a size attribute (a number of bytes or a string with
// a unit) within [lo, hi]; 0 when absent or invalid (diagnosed).
func (r *resolver) byteSize(expr hcl.Expression, name string, lo, hi int64, what string) int64 {
	v, st := r.value(expr, name, cty.DynamicPseudoType, "a number or a string")
	if st != attrOK {
		return 0
	}
	n, err := sizeValue(v)
	switch {
	case err != nil:
		r.errorf(expr.Range(), "Invalid "+name, "%v. %s.", err, sizeSyntax)
	case n < lo || n > hi:
		r.errorf(expr.Range(), "Invalid "+name, "%s, %s, is %s; it must be from %s to %s.", name, what, sizeHint(n), formatSize(lo), formatSize(hi))
	default:
		return n
	}
	return 0
}

// limitDuration evaluates a duration attribute within [lo, hi]; 0 when
// absent or invalid (diagnosed).
func (r *resolver) limitDuration(expr hcl.Expression, name string, lo, hi time.Duration) time.Duration {
	s, st := r.str(expr, name)
	if st != attrOK {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		r.errorf(expr.Range(), "Invalid "+name, `%s is a duration such as "250ms", "15s" or "5m": %v.`, name, err)
	case d < lo || d > hi:
		r.errorf(expr.Range(), "Invalid "+name, "%s must be from %s to %s; it is %s.", name, lo, hi, d)
	default:
		return d
	}
	return 0
}
