package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge"
	"github.com/sanbridge/sanbridge/bridge/isns"
	"github.com/sanbridge/sanbridge/bridge/metrics"
	"github.com/sanbridge/sanbridge/conf"
)

// loadConfig loads path (or the embedded demo when empty) and prints
// diagnostics with source snippets. It fails on any error diagnostic,
// with an error that lists each one with its file:line.
func loadConfig(path string, stderr io.Writer) (*conf.Config, error) {
	p := conf.NewParser()
	var cfg *conf.Config
	var diags hcl.Diagnostics
	if path == "" {
		cfg, diags = p.Parse(conf.DefaultSource(), "embedded:demo.hcl")
	} else {
		cfg, diags = p.LoadFile(path)
	}
	if len(diags) > 0 {
		if err := p.WriteDiagnostics(stderr, diags, false); err != nil {
			return nil, err
		}
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("configuration %s has errors: %s", displayName(path), diagList(diags))
	}
	return cfg, nil
}

// diagList renders the error diagnostics on one line each,
// "file:line,col: summary: detail".
func diagList(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Subject != nil {
			s = d.Subject.String() + ": " + s
		}
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func displayName(path string) string {
	if path == "" {
		return "(embedded demo)"
	}
	return path
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "configuration `file` (default: the embedded demo: one 64 MiB memory disk on 127.0.0.1:3260)")
	level := fs.String("log-level", "", "log `level`: trace, debug, info, warn, error (default: the config's log_level, else info)")
	format := fs.String("log-format", "auto", "log `format`: auto (console on a terminal, else JSON), json, console")
	stateDir := fs.String("state-dir", defaultStateDir, "`directory` keeping persistent reservations made with APTPL and the LUN numbers of auto-exported devices across restarts; \"\" keeps them in memory")
	adminSocket := fs.String("admin-socket", "", "`path` of the admin socket (sanbridge status, reload); default: the config's admin.socket, else "+defaultAdminSocket+" (or STATE-DIR/admin.sock); \"none\" for no socket")
	watch := fs.Bool("watch-devices", true, "follow device arrivals and removals (kernel uevents and a periodic rescan)")
	rescan := fs.Duration("rescan-interval", 30*time.Second, "`interval` of the periodic device rescan")
	drain := fs.Duration("drain-timeout", 15*time.Second, "how long the graceful stop waits for sessions to log out and finish their commands")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	stateDirSet := false
	fs.Visit(func(f *flag.Flag) { stateDirSet = stateDirSet || f.Name == "state-dir" })
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	hup := catchHangups()
	defer hup.stop()
	cfg, err := loadConfig(*config, stderr)
	if err != nil {
		return err
	}
	lvl := cfg.LogLevel
	if *level != "" {
		l, err := zerolog.ParseLevel(*level)
		if err != nil || *level == "" {
			fmt.Fprintf(stderr, "serve: bad --log-level %q\n", *level)
			return errUsage
		}
		lvl = l
	}
	switch *format {
	case "auto", "json", "console":
	default:
		fmt.Fprintf(stderr, "serve: bad --log-format %q\n", *format)
		return errUsage
	}
	log := newLogger(stderr, lvl, *format)
	dir := *stateDir
	if !stateDirSet && !usableDir(dir) {
		log.Warn().Str("state_dir", dir).Msg("state directory not writable: persistent reservations with APTPL and auto-exported LUN numbers will not survive a restart (set --state-dir)")
		dir = ""
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var reg *metrics.Registry
	if cfg.Metrics != nil {
		reg = metrics.New(version)
		if _, err := reg.Listen(ctx, cfg.Metrics.Listen); err != nil {
			return fmt.Errorf("%s: %w", cfg.Metrics.ListenRange, err)
		}
		log.Info().Str("listen", cfg.Metrics.Listen).Msg("metrics listening")
	}
	notify := newNotifier(log)
	svc := &services{log: log}
	b, err := bridge.New(cfg, bridge.Options{
		Log:            log,
		StateDir:       dir,
		Metrics:        reg,
		Load:           func() (*conf.Config, error) { return loadConfig(*config, stderr) },
		AroundReload:   notify.Reload,
		Applied:        svc.applied,
		WatchDevices:   *watch,
		RescanInterval: *rescan,
		DrainTimeout:   *drain,
	})
	if err != nil {
		return err
	}
	addrs, err := b.Listen(ctx)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		fmt.Fprintf(stdout, "listening on %s\n", a)
	}
	if err := svc.startISNS(ctx, cfg); err != nil {
		return err
	}
	if sock, tcp := adminAddrs(*adminSocket, cfg, dir, log); sock != "" || tcp != "" {
		ls, err := bridge.AdminListeners(sock, tcp)
		if err != nil {
			log.Warn().Err(err).Msg("admin endpoint unavailable: sanbridge status and reload will not reach this gateway (SIGHUP still reloads)")
		} else {
			done := make(chan struct{})
			go func() { bridge.ServeAdmin(ctx, b.AdminHandler(), ls, log); close(done) }()
			defer func() { <-done }()
			defer cancel()
		}
	}
	st := b.Status()
	notify.Ready(fmt.Sprintf("serving %d target(s) on %d portal(s)", len(st.Targets), len(addrs)))
	stopWatchdog := notify.StartWatchdog(ctx, nil)
	stopReload := watchReload(ctx, log, hup, func() { b.ReloadFile() })
	stopNotify := context.AfterFunc(ctx, notify.Stopping)
	err = b.Serve(ctx)
	stopReload()
	stopWatchdog()
	if stopNotify() { // Serve ended on its own: the stop was not announced yet
		notify.Stopping()
	}
	cancel()
	svc.wait()
	log.Info().Msg("stopped")
	return err
}

// defaultStateDir keeps the gateway's state when --state-dir is not given
// and the directory can be written.
const defaultStateDir = "/var/lib/sanbridge"

// defaultAdminSocket is the admin socket without --admin-socket or an
// admin block (systemd's RuntimeDirectory=sanbridge, $RUNTIME_DIRECTORY,
// wins when set).
const defaultAdminSocket = "/run/sanbridge/admin.sock"

// adminAddrs decides where the admin endpoint listens: the unix socket
// (flag, config, $RUNTIME_DIRECTORY, /run/sanbridge, the state
// directory) and the config's TCP address.
func adminAddrs(flagSocket string, cfg *conf.Config, stateDir string, log zerolog.Logger) (sock, tcp string) {
	if cfg.Admin != nil {
		tcp = cfg.Admin.Listen
	}
	switch {
	case flagSocket == "none":
		return "", tcp
	case flagSocket != "":
		return flagSocket, tcp
	case cfg.Admin != nil && cfg.Admin.Socket != "":
		return cfg.Admin.Socket, tcp
	}
	for _, s := range adminSocketCandidates(stateDir) {
		if usableDir(filepath.Dir(s)) {
			return s, tcp
		}
	}
	log.Warn().Msg("no directory for the admin socket (set --admin-socket): sanbridge status and reload will not reach this gateway")
	return "", tcp
}

// adminSocketCandidates are where a gateway's admin socket is looked
// for, in order (serve takes the first usable, status and reload the
// first that exists).
func adminSocketCandidates(stateDir string) []string {
	var out []string
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		out = append(out, filepath.Join(strings.Split(d, ":")[0], "admin.sock"))
	}
	out = append(out, defaultAdminSocket)
	if stateDir != "" {
		out = append(out, filepath.Join(stateDir, "admin.sock"))
	}
	return out
}

// usableDir reports whether dir exists or can be created, and files can
// be written in it.
func usableDir(dir string) bool {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	return os.Remove(f.Name()) == nil
}

// services runs what follows the running configuration: the iSNS
// registration.
type services struct {
	log  zerolog.Logger
	done chan struct{}

	mu        sync.Mutex
	isns      *isns.Client
	lastCfg   *conf.Config // the running configuration, as last applied
	lastBound []netip.AddrPort
	gen       uint64 // changes applied; an update of an older one is skipped
}

// applied is bridge.Options.Applied: the iSNS registration follows the
// running configuration. It does not block (a name in advertise may
// need a DNS lookup).
func (s *services) applied(cfg *conf.Config, bound []netip.AddrPort) {
	s.mu.Lock()
	s.lastCfg, s.lastBound = cfg, bound
	s.gen++
	gen, c := s.gen, s.isns
	s.mu.Unlock()
	if c == nil || cfg.ISNS == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		reg, err := isns.RegistrationFromConfig(ctx, cfg, bound, nil)
		s.mu.Lock()
		defer s.mu.Unlock()
		if gen != s.gen {
			return // a newer change follows
		}
		if err == nil {
			err = c.Update(reg)
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("iSNS: the registration was not updated")
		}
	}()
}

// startISNS starts the iSNS client when the configuration has an isns
// block (a reload does not start or stop it: a changed server needs a
// restart).
func (s *services) startISNS(ctx context.Context, cfg *conf.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.ISNS == nil || s.lastCfg == nil {
		return nil
	}
	reg, err := isns.RegistrationFromConfig(ctx, s.lastCfg, s.lastBound, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.ISNS.DeclRange, err)
	}
	opts := isns.OptionsFromConfig(cfg.ISNS)
	opts.Log = s.log.With().Str("component", "isns").Logger()
	c, err := isns.New(opts, reg)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.ISNS.DeclRange, err)
	}
	s.isns = c
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error().Err(err).Msg("iSNS client stopped")
		}
	}()
	return nil
}

// wait waits for the services to end (the iSNS deregistration).
func (s *services) wait() {
	if s.done != nil {
		<-s.done
	}
}
