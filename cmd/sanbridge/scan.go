package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio/discover"
)

// runScan implements "sanbridge scan": it lists the local SCSI devices,
// their identities and whether the gateway would export them.
func runScan(ctx context.Context, args []string, stdout, stderr io.Writer, log zerolog.Logger) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: sanbridge scan [flags]

Lists the local SCSI devices (through sysfs and SG_IO) with the names a
configuration can select them by: the WWN, "serial:VENDOR:PRODUCT:SERIAL"
or "path:..." (STABLE NAME). Devices that are in use (mounted, swap, held
by md/dm) or that come over iSCSI are not exported by default and are
hidden unless --all is given.

flags:
`)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print every field as JSON instead of a table")
	all := fs.Bool("all", false, "include devices not exported by default (in use, iSCSI-backed)")
	sysfsRoot := fs.String("sysfs-root", "/sys", "where sysfs is mounted; another root (a captured tree) implies --no-query")
	procRoot := fs.String("proc-root", "", "where procfs is mounted (default /proc; with --sysfs-root DIR, DIR/../proc)")
	devRoot := fs.String("dev-root", "/dev", "device directory for node names and disk/by-id, by-path links")
	noQuery := fs.Bool("no-query", false, "do not open the devices: identity and size from sysfs only")
	timeout := fs.Duration("timeout", discover.DefaultCommandTimeout, "timeout of each command sent to a device")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg := discover.Config{
		SysfsRoot:      *sysfsRoot,
		ProcRoot:       *procRoot,
		DevRoot:        *devRoot,
		CommandTimeout: *timeout,
		Logger:         log,
	}
	live := filepath.Clean(*sysfsRoot) == "/sys"
	if cfg.ProcRoot == "" && !live {
		// A captured tree keeps procfs beside sysfs (or has none).
		cfg.ProcRoot = filepath.Join(filepath.Dir(filepath.Clean(*sysfsRoot)), "proc")
	}
	if live && !*noQuery && runtime.GOOS == "linux" {
		cfg.Open = discover.OpenSG
	}
	start := time.Now()
	devs, err := discover.Scan(ctx, cfg)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	log.Debug().Int("devices", len(devs)).Dur("took", time.Since(start)).Msg("scan done")

	shown := devs[:0:0]
	hidden := 0
	for _, d := range devs {
		if d.Exportable() || *all {
			shown = append(shown, d)
		} else {
			hidden++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if shown == nil {
			shown = []discover.Device{}
		}
		return enc.Encode(shown)
	}
	if len(devs) == 0 {
		fmt.Fprintln(stderr, "no SCSI devices found")
		return nil
	}
	printTable(stdout, shown)
	if hidden > 0 {
		fmt.Fprintf(stdout, "\n%d device(s) not exported by default (in use or iSCSI-backed) not shown; --all shows them.\n", hidden)
	}
	problems := 0
	for _, d := range shown {
		problems += len(d.Problems)
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "\n%d problem(s) reading devices; --json lists them.\n", problems)
	}
	return nil
}

// printTable writes one line per device.
func printTable(w io.Writer, devs []discover.Device) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HCTL\tSG\tDEV\tTYPE\tVENDOR\tPRODUCT\tREV\tSIZE\tTRANSPORT\tADDRESS\tSTABLE NAME\tSTATUS")
	for i := range devs {
		d := &devs[i]
		node := d.Block
		if node == "" {
			node = d.Tape
		}
		transport := d.Transport.Kind.String()
		if d.Transport.HostDriver != "" {
			transport += " (" + d.Transport.HostDriver + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			d.HCTL, dash(filepath.Base(d.SG), d.SG), dash(filepath.Base(node), node), d.Type,
			dash(d.Vendor, d.Vendor), dash(d.Product, d.Product), dash(d.Revision, d.Revision),
			size(d.SizeBytes), transport, dash(d.Transport.Address(), d.Transport.Address()),
			d.StableName, status(d))
	}
	tw.Flush()
}

func dash(s, cond string) string {
	if cond == "" {
		return "-"
	}
	return s
}

// status summarises why a device would not be exported, or "ok".
func status(d *discover.Device) string {
	var s []string
	if d.State != "" && d.State != "running" {
		s = append(s, d.State)
	}
	for _, u := range d.InUse {
		s = append(s, u.String())
	}
	if d.Transport.Kind == discover.TransportISCSI {
		s = append(s, "iSCSI-backed")
	}
	if len(s) == 0 {
		s = append(s, "ok")
	}
	if n := len(d.Problems); n > 0 {
		s = append(s, fmt.Sprintf("%d problem(s)", n))
	}
	return strings.Join(s, "; ")
}

// size formats a capacity in binary units ("256 MiB", "3.64 TiB").
func size(n uint64) string {
	if n == 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[exp]
	if v == float64(uint64(v)) {
		return fmt.Sprintf("%d %s", uint64(v), suffix)
	}
	return fmt.Sprintf("%.2f %s", v, suffix)
}
