package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
)

// notifier tells systemd (Type=notify, sd_notify(3)) what serve is doing:
// READY=1 once the portals listen, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 when the graceful stop begins, and WATCHDOG=1 every
// half WATCHDOG_USEC while the gateway is healthy. Without NOTIFY_SOCKET
// (not started by systemd) every call is a no-op.
type notifier struct {
	log zerolog.Logger
	// mu orders the state messages (a reload racing the stop).
	mu sync.Mutex
}

func newNotifier(log zerolog.Logger) *notifier { return &notifier{log: log} }

// send sends one notification of newline-separated assignments.
func (n *notifier) send(lines ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		n.log.Warn().Err(err).Str("state", lines[0]).Msg("sd_notify failed")
	}
}

// Ready reports that the gateway serves; status is shown by systemctl.
func (n *notifier) Ready(status string) { n.send(daemon.SdNotifyReady, "STATUS="+status) }

// Stopping reports that the graceful stop began.
func (n *notifier) Stopping() { n.send(daemon.SdNotifyStopping, "STATUS=stopping") }

// Reload brackets a configuration reload with RELOADING=1 (with the
// MONOTONIC_USEC that Type=notify-reload units need) and READY=1, and
// returns reload's error. The status line says how the reload ended.
// The reload path (SIGHUP, `sanbridge reload`) calls it.
func (n *notifier) Reload(reload func() error) error {
	n.send(daemon.SdNotifyReloading, daemon.SdNotifyMonotonicUsec(), "STATUS=reloading")
	err := reload()
	status := "STATUS=serving (reloaded)"
	if err != nil {
		status = "STATUS=serving (reload failed: " + firstLine(err.Error()) + ")"
	}
	n.send(daemon.SdNotifyReady, status)
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// StartWatchdog pings the systemd watchdog every half WATCHDOG_USEC while
// healthy (nil: always healthy) returns true, until ctx ends or the
// returned stop is called; stop waits for the pinger to end. Without
// WATCHDOG_USEC (or for another WATCHDOG_PID) it does nothing.
func (n *notifier) StartWatchdog(ctx context.Context, healthy func() bool) (stop func()) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn().Err(err).Msg("systemd watchdog: bad WATCHDOG_USEC/WATCHDOG_PID")
	}
	if err != nil || interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			if healthy == nil || healthy() {
				n.send(daemon.SdNotifyWatchdog)
			} else {
				n.log.Warn().Msg("systemd watchdog: unhealthy, not pinging")
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// watchReload calls reload on every SIGHUP hup caught until ctx ends or
// the returned stop is called (which waits for a reload in progress). The
// reload itself tells systemd (bridge.Options.AroundReload is
// notifier.Reload) and logs how it ended.
func watchReload(ctx context.Context, log zerolog.Logger, hup *hangups, reload func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup.c:
				log.Info().Msg("SIGHUP: reloading the configuration")
				reload()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// hangups catches SIGHUP from the start of serve, so that one that
// arrives before the gateway can reload (systemd may send it as soon as
// READY=1 is out) is kept for watchReload instead of killing the process.
type hangups struct{ c chan os.Signal }

func catchHangups() *hangups {
	h := &hangups{c: make(chan os.Signal, 1)}
	signal.Notify(h.c, syscall.SIGHUP)
	return h
}

// stop stops catching SIGHUP.
func (h *hangups) stop() { signal.Stop(h.c) }
