package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge"
	"github.com/sanbridge/sanbridge/conf"
)

// loadConfig loads path (or the embedded demo when empty) and prints
// diagnostics with source snippets. It fails on any error diagnostic.
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
		return nil, fmt.Errorf("configuration %s has errors", displayName(path))
	}
	return cfg, nil
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
	stateDir := fs.String("state-dir", defaultStateDir, "`directory` keeping persistent reservations made with APTPL across restarts; \"\" keeps them in memory")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	stateDirSet := false
	fs.Visit(func(f *flag.Flag) { stateDirSet = stateDirSet || f.Name == "state-dir" })
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
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
		log.Warn().Str("state_dir", dir).Msg("state directory not writable: persistent reservations with APTPL will not survive a restart (set --state-dir)")
		dir = ""
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Garbage is collected before it crowds the command data budget.
		budget := bridge.MemoryBudget(&cfg.Limits)
		debug.SetMemoryLimit(bridge.GoMemoryLimit(budget))
		log.Info().Int64("memory_budget", budget).Int64("go_memory_limit", bridge.GoMemoryLimit(budget)).Msg("memory limits")
	}
	b, err := bridge.New(cfg, bridge.Options{Log: log, StateDir: dir})
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
	for _, t := range cfg.Targets {
		log.Info().Str("target", t.Name).Int("luns", len(t.LUNs)).Msg("exporting")
	}
	notify := newNotifier(log)
	notify.Ready(fmt.Sprintf("serving %d target(s) on %d portal(s)", len(cfg.Targets), len(addrs)))
	stopWatchdog := notify.StartWatchdog(ctx, nil)
	stopReload := watchReload(ctx, notify, log, func() error { return checkReload(*config, stderr, log) })
	stopNotify := context.AfterFunc(ctx, notify.Stopping)
	err = b.Serve(ctx)
	stopReload()
	stopWatchdog()
	if stopNotify() { // Serve ended on its own: the stop was not announced yet
		notify.Stopping()
	}
	log.Info().Msg("stopped")
	return err
}

// defaultStateDir keeps the gateway's state when --state-dir is not given
// and the directory can be written.
const defaultStateDir = "/var/lib/sanbridge"

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

func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "configuration `file` to check (default: the embedded demo)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 1 && *config == "" {
		*config = fs.Arg(0)
	}
	cfg, err := loadConfig(*config, stderr)
	if err != nil {
		return err
	}
	luns := 0
	for _, t := range cfg.Targets {
		luns += len(t.LUNs)
	}
	fmt.Fprintf(stdout, "%s: OK: %d portal(s), %d target(s), %d LUN(s)\n", displayName(*config), len(cfg.Portals), len(cfg.Targets), luns)
	return nil
}
