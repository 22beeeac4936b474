package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge"
	"github.com/sanbridge/sanbridge/conf"
)

// runCheck implements "sanbridge check": the configuration is validated,
// then checked against this machine's devices (unless --no-devices): a
// device block that selects no device or several, a device in use or
// itself an iSCSI LUN, an auto_export block that selects nothing; each
// problem with its file:line. It also says what auto_export would
// export.
func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "configuration `file` to check (default: the embedded demo)")
	noDevices := fs.Bool("no-devices", false, "validate the file only, without looking at this machine's devices")
	stateDir := fs.String("state-dir", defaultStateDir, "`directory` with the LUN numbers of auto-exported devices (read only)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 1 && *config == "" {
		*config = fs.Arg(0)
	}
	p := conf.NewParser()
	var cfg *conf.Config
	var diags hcl.Diagnostics
	if *config == "" {
		cfg, diags = p.Parse(conf.DefaultSource(), "embedded:demo.hcl")
	} else {
		cfg, diags = p.LoadFile(*config)
	}
	var notes []string
	devices := 0
	if !diags.HasErrors() && !*noDevices && needsDevices(cfg) {
		inv, err := bridge.ScanInventory(zerolog.Nop())
		if err != nil {
			return fmt.Errorf("scanning this machine's devices: %w (--no-devices checks the file only)", err)
		}
		devices = len(inv.Devices)
		var more hcl.Diagnostics
		more, notes = bridge.CheckDevices(cfg, inv, *stateDir)
		diags = append(diags, more...)
	}
	if len(diags) > 0 {
		if err := p.WriteDiagnostics(stderr, diags, false); err != nil {
			return err
		}
	}
	if diags.HasErrors() {
		return fmt.Errorf("configuration %s has errors: %s", displayName(*config), diagList(diags))
	}
	luns := 0
	for _, t := range cfg.Targets {
		luns += len(t.LUNs)
		for _, v := range t.Views {
			luns += len(v.LUNs)
		}
	}
	fmt.Fprintf(stdout, "%s: OK: %d portal(s), %d target(s), %d LUN(s)", displayName(*config), len(cfg.Portals), len(cfg.Targets), luns)
	if len(cfg.AutoExports) > 0 {
		fmt.Fprintf(stdout, ", %d auto_export block(s)", len(cfg.AutoExports))
	}
	if needsDevices(cfg) && !*noDevices {
		fmt.Fprintf(stdout, "; checked against %d local device(s)", devices)
	}
	fmt.Fprintln(stdout)
	for _, n := range notes {
		fmt.Fprintln(stdout, n)
	}
	return nil
}

// needsDevices reports whether a configuration refers to local devices.
func needsDevices(cfg *conf.Config) bool {
	if len(cfg.AutoExports) > 0 {
		return true
	}
	for _, be := range cfg.Backends {
		if be.Device != nil {
			return true
		}
	}
	return false
}
