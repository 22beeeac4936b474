package iscsi

import (
	"sync/atomic"
	"time"
)

// Limits bound what initiators can make the server hold: memory for
// command data, sessions, connections that have not logged in yet, tasks,
// task management requests, negotiation text, and how fast CHAP secrets
// can be guessed. The zero value of every field stands for its default.
//
// What happens when a limit bites:
//
//	Memory                   new commands get TASK SET FULL; above the
//	                         high-water mark (3/4) the CmdSN window of the
//	                         sessions holding more than their fair share
//	                         stops opening (MaxCmdSN backpressure)
//	MaxTransfer              the command gets CHECK CONDITION, ILLEGAL
//	                         REQUEST, INVALID FIELD IN CDB
//	MaxTasksPerSession       TASK SET FULL
//	MaxSessions(PerInitiator) the login fails with "out of resources"
//	MaxPendingLogins(PerSource) the connection is closed at once
//	MaxPendingTMF            the request is answered "function rejected"
//	MaxTextKeys              the login fails (initiator error); a Text
//	                         Request is rejected
//	Auth                     the Login Response to a CHAP response is
//	                         delayed, then the login fails (locked out)
//
// Each bite is counted ([Server.LimitStats]) and logged at most once per
// limit every 10 seconds, with how many were not logged.
type Limits struct {
	// Memory is the most command data (read and write buffers, pooled
	// ones included) all sessions together hold, in bytes; default
	// DefaultMemoryBudget.
	Memory int64
	// SessionMemoryMin is what any one session may hold whatever its
	// fair share (Memory divided by the sessions that hold or want
	// memory); default max(Memory/16, min(Memory, 16 MiB)). A session
	// that holds nothing may always start one command that fits Memory.
	SessionMemoryMin int64
	// MaxTransfer bounds the data of one command in each direction for
	// handlers that do not implement [Admitter] (which bound their own):
	// the target's MaxBurstLength when set, else this; default 16 MiB.
	MaxTransfer uint32
	// MaxSessions bounds the sessions (normal and discovery) of the
	// server; default 1024. MaxSessionsPerInitiator bounds those of one
	// initiator name; default 64.
	MaxSessions             int
	MaxSessionsPerInitiator int
	// MaxPendingLogins bounds the connections still in the login phase;
	// default 64. MaxPendingLoginsPerSource bounds those from one source
	// address (IPv6: one /64); default 8. Config.LoginTimeout bounds how
	// long each may take.
	MaxPendingLogins          int
	MaxPendingLoginsPerSource int
	// MaxTasksPerSession bounds the tasks one session has in the task
	// table (the CmdSN window bounds the others, immediate commands only
	// this); default CmdWindow + 32.
	MaxTasksPerSession int
	// MaxOutstandingR2T caps the MaxOutstandingR2T the target accepts
	// (1..16); default the Preferences' value.
	MaxOutstandingR2T uint32
	// MaxPendingTMF bounds the task management requests of one session
	// waiting for aborted tasks; default 16.
	MaxPendingTMF int
	// MaxTextKeys bounds the keys of one login or text request sequence;
	// default 256. (The sequence's bytes are bounded at 64 KiB, and each
	// PDU by MaxRecvDataSegmentLength.)
	MaxTextKeys int
	// Auth throttles CHAP failures.
	Auth AuthLimits
}

// AuthLimits throttle online guessing of CHAP secrets (target and
// discovery CHAP, mutual CHAP included). Failed authentications are
// counted per source address (IPv6: per /64) and per initiator name.
// Once either has more than FreeFailures, the Login Response that
// answers the initiator's CHAP response (whatever its verdict, so that
// its timing tells nothing) waits Delay, doubling with every further
// failure up to MaxDelay; after LockoutAfter failures the source or name
// is locked out for Lockout: its logins fail whatever they send. Counts
// are forgotten after Forget without failures, and the table holds at
// most TableSize sources and names (the least recently failed go first).
// A login from another source with another name is never delayed.
type AuthLimits struct {
	FreeFailures int           // default 3
	Delay        time.Duration // default 250 ms
	MaxDelay     time.Duration // default 4 s (at most half the login timeout)
	LockoutAfter int           // default 10
	Lockout      time.Duration // default 5 min
	Forget       time.Duration // default 15 min
	TableSize    int           // default 4096
}

// DefaultMemoryBudget is the default Limits.Memory.
const DefaultMemoryBudget = 1 << 30

// Defaults of Limits.
const (
	defaultMaxTransfer       = 16 << 20
	defaultMaxSessions       = 1024
	defaultSessionsPerInit   = 64
	defaultPendingLogins     = 64
	defaultPendingPerSource  = 8
	defaultMaxPendingTMF     = 16
	defaultMaxTextKeys       = 256
	defaultAuthFree          = 3
	defaultAuthDelay         = 250 * time.Millisecond
	defaultAuthMaxDelay      = 4 * time.Second
	defaultAuthLockoutAfter  = 10
	defaultAuthLockout       = 5 * time.Minute
	defaultAuthForget        = 15 * time.Minute
	defaultAuthTableSize     = 4096
	immediateTaskAllowance   = 32
	sessionMemoryMinFraction = 16
)

// withDefaults fills the zero fields; window is the CmdSN window and
// loginTimeout the login phase's bound.
func (l Limits) withDefaults(window uint32, loginTimeout time.Duration) Limits {
	if l.Memory <= 0 {
		l.Memory = DefaultMemoryBudget
	}
	if l.SessionMemoryMin <= 0 {
		l.SessionMemoryMin = max(l.Memory/sessionMemoryMinFraction, min(l.Memory, defaultMaxTransfer))
	}
	if l.MaxTransfer == 0 {
		l.MaxTransfer = defaultMaxTransfer
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = defaultMaxSessions
	}
	if l.MaxSessionsPerInitiator <= 0 {
		l.MaxSessionsPerInitiator = defaultSessionsPerInit
	}
	if l.MaxPendingLogins <= 0 {
		l.MaxPendingLogins = defaultPendingLogins
	}
	if l.MaxPendingLoginsPerSource <= 0 {
		l.MaxPendingLoginsPerSource = defaultPendingPerSource
	}
	if l.MaxTasksPerSession <= 0 {
		l.MaxTasksPerSession = int(window) + immediateTaskAllowance
	}
	if l.MaxOutstandingR2T > maxR2T {
		l.MaxOutstandingR2T = maxR2T
	}
	if l.MaxPendingTMF <= 0 {
		l.MaxPendingTMF = defaultMaxPendingTMF
	}
	if l.MaxTextKeys <= 0 {
		l.MaxTextKeys = defaultMaxTextKeys
	}
	a := &l.Auth
	if a.FreeFailures <= 0 {
		a.FreeFailures = defaultAuthFree
	}
	if a.Delay <= 0 {
		a.Delay = defaultAuthDelay
	}
	if a.MaxDelay <= 0 {
		a.MaxDelay = defaultAuthMaxDelay
	}
	// The delayed response must still beat the login timeout.
	a.MaxDelay = min(a.MaxDelay, loginTimeout/2)
	a.Delay = min(a.Delay, a.MaxDelay)
	if a.LockoutAfter <= 0 {
		a.LockoutAfter = defaultAuthLockoutAfter
	}
	if a.Lockout <= 0 {
		a.Lockout = defaultAuthLockout
	}
	if a.Forget <= 0 {
		a.Forget = defaultAuthForget
	}
	if a.TableSize <= 0 {
		a.TableSize = defaultAuthTableSize
	}
	return l
}

// LimitStats is a snapshot of the server's limit counters and memory
// gauges, for metrics. Counters only grow.
type LimitStats struct {
	// MemoryLimit is the budget; MemoryInFlight the bytes tasks hold;
	// MemoryCached the bytes of idle pooled buffers (also within the
	// budget: they are evicted before a new buffer would exceed it);
	// MemoryPeak the highest MemoryInFlight.
	MemoryLimit, MemoryInFlight, MemoryCached, MemoryPeak int64
	// MemoryFull counts commands answered TASK SET FULL for the memory
	// budget (the whole budget, or this session's share of it).
	MemoryFull uint64
	// TaskTableFull counts commands answered TASK SET FULL because their
	// session's task table was full.
	TaskTableFull uint64
	// TransferRefused counts commands answered at once, without running,
	// because of what their CDB asks for (beyond the logical unit's
	// transfer limit, beyond the medium, or more than MaxTransfer).
	TransferRefused uint64
	// WindowWithheld counts CmdSN window openings withheld under memory
	// pressure.
	WindowWithheld uint64
	// SessionsRefused counts logins failed for MaxSessions or
	// MaxSessionsPerInitiator; PendingLoginsRefused connections closed
	// for MaxPendingLogins or MaxPendingLoginsPerSource.
	SessionsRefused, PendingLoginsRefused uint64
	// TMFRejected counts task management requests rejected for
	// MaxPendingTMF; TextKeysRefused login or text requests with too many
	// keys.
	TMFRejected, TextKeysRefused uint64
	// AuthFailures counts failed CHAP authentications; AuthDelayed the
	// Login Responses delayed for earlier failures; AuthLockouts the
	// lockouts begun; AuthLockedOut the logins refused during one.
	AuthFailures, AuthDelayed, AuthLockouts, AuthLockedOut uint64
}

// limitCounters are the counters behind LimitStats.
type limitCounters struct {
	memoryFull, taskTableFull, transferRefused, windowWithheld        atomic.Uint64
	sessionsRefused, pendingRefused, tmfRejected, textKeysRefused     atomic.Uint64
	authFailures, authDelayed, authLockouts, authLockedOut            atomic.Uint64
	logMemory, logTasks, logTransfer, logSessions, logPending, logTMF rateLog
	logText, logAuth                                                  rateLog
}

// LimitStats returns the limit counters and memory gauges.
func (s *Server) LimitStats() LimitStats {
	c := &s.lim
	return LimitStats{
		MemoryLimit:          s.mem.limit,
		MemoryInFlight:       s.mem.inflight.Load(),
		MemoryCached:         s.pool.cached.Load(),
		MemoryPeak:           s.mem.peak.Load(),
		MemoryFull:           c.memoryFull.Load(),
		TaskTableFull:        c.taskTableFull.Load(),
		TransferRefused:      c.transferRefused.Load(),
		WindowWithheld:       c.windowWithheld.Load(),
		SessionsRefused:      c.sessionsRefused.Load(),
		PendingLoginsRefused: c.pendingRefused.Load(),
		TMFRejected:          c.tmfRejected.Load(),
		TextKeysRefused:      c.textKeysRefused.Load(),
		AuthFailures:         c.authFailures.Load(),
		AuthDelayed:          c.authDelayed.Load(),
		AuthLockouts:         c.authLockouts.Load(),
		AuthLockedOut:        c.authLockedOut.Load(),
	}
}

// rateLogEvery is how often one limit may log.
const rateLogEvery = 10 * time.Second

// rateLog lets one log line through per rateLogEvery and counts the
// ones it held back.
type rateLog struct {
	next       atomic.Int64 // unix nanoseconds
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged now, and how many were held
// back since the last one.
func (r *rateLog) allow() (bool, uint64) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(rateLogEvery)) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}
