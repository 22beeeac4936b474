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

	"github.com/sanbridge/sanbridge/sgio/bot"
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
hidden unless --all is given. The table ends with the USB mass-storage
interfaces, which a usb { } block selects (--usb lists only them).

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
	usbOnly := fs.Bool("usb", false, "list the USB mass-storage interfaces (whether or not a kernel driver holds them) instead of the SCSI devices")
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
	if *usbOnly {
		return scanUSB(cfg, *asJSON, stdout, stderr)
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
	usb, err := discover.ScanUSB(cfg)
	if err != nil {
		log.Debug().Err(err).Msg("no USB listing")
	}
	if len(devs) == 0 && len(usb) == 0 {
		fmt.Fprintln(stderr, "no SCSI devices found")
		return nil
	}
	if len(devs) > 0 {
		printTable(stdout, shown)
	}
	if len(usb) > 0 {
		fmt.Fprintln(stdout, "\nUSB mass-storage interfaces (usb { path = INTERFACE } or { vid, pid, serial }):")
		printUSBTable(stdout, usb)
	}
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

// scanUSB implements "sanbridge scan --usb".
func scanUSB(cfg discover.Config, asJSON bool, stdout, stderr io.Writer) error {
	usb, err := discover.ScanUSB(cfg)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if asJSON {
		if usb == nil {
			usb = []discover.USBInterface{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(usb)
	}
	if len(usb) == 0 {
		fmt.Fprintln(stderr, "no USB mass-storage interfaces found")
		return nil
	}
	printUSBTable(stdout, usb)
	return nil
}

// printUSBTable writes one line per USB mass-storage interface.
func printUSBTable(w io.Writer, usb []discover.USBInterface) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tVID:PID\tSERIAL\tPRODUCT\tPROTOCOL\tDRIVER\tLUNS\tBACKENDS")
	for i := range usb {
		u := &usb[i]
		product := strings.TrimSpace(u.Manufacturer + " " + u.Product)
		fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			u.Name, u.VendorID, u.ProductID, dash(u.Serial, u.Serial), dash(product, product),
			usbProtocol(u), usbDriver(u), usbLUNs(u), strings.Join(usbBackends(u), ", "))
	}
	tw.Flush()
}

// usbProtocol names the interface's current protocol, and Bulk-Only when
// another alternate setting offers it.
func usbProtocol(u *discover.USBInterface) string {
	var p string
	switch {
	case u.Subclass == 0x06 && u.Protocol == 0x50:
		return "bulk-only"
	case u.Subclass == 0x06 && u.Protocol == 0x62:
		p = "uas"
	case u.Protocol == 0x00 || u.Protocol == 0x01:
		p = "cbi"
	default:
		p = fmt.Sprintf("%02x/%02x", u.Subclass, u.Protocol)
	}
	if u.BulkOnly {
		p += " (+bulk-only)"
	}
	return p
}

// usbDriver says who holds the interface.
func usbDriver(u *discover.USBInterface) string {
	switch u.Driver {
	case "":
		return "-"
	case "usbfs":
		return "usbfs (a program)"
	}
	return u.Driver
}

// usbLUNs lists the LUNs a kernel driver made ("0:sg4 1:sg2"), or "?"
// when no kernel driver drives the interface (GET MAX LUN tells when it
// is opened).
func usbLUNs(u *discover.USBInterface) string {
	if len(u.LUNs) == 0 {
		return "?"
	}
	var f []string
	for _, l := range u.LUNs {
		node := filepath.Base(l.SG)
		if l.SG == "" {
			node = "no sg"
		}
		f = append(f, fmt.Sprintf("%d:%s", l.LUN, node))
	}
	return strings.Join(f, " ")
}

// usbBackends lists what can serve the interface's LUNs, preferred
// first: "bot" (usb { } in the configuration: sanbridge drives the
// Bulk-Only transport itself, detaching the kernel driver) when the
// interface speaks it and this binary has USB support, and "sg" (device
// { }: SG_IO through the kernel driver's sg nodes) while a kernel driver
// holds it.
func usbBackends(u *discover.USBInterface) []string {
	var b []string
	switch {
	case u.BulkOnly && bot.BuiltIn:
		b = append(b, "bot")
	case u.BulkOnly:
		b = append(b, "bot (not built in)")
	}
	for _, l := range u.LUNs {
		if l.SG != "" && u.KernelDriven() {
			b = append(b, "sg")
			break
		}
	}
	if len(b) == 0 {
		b = append(b, "-")
	}
	return b
}
