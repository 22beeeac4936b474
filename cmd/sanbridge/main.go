// Command sanbridge is the sanbridge gateway: it exports local SCSI
// devices (and emulated disks) as iSCSI targets.
//
// Usage:
//
//	sanbridge serve [--config FILE] [--log-level LEVEL] [--state-dir DIR] [--admin-socket PATH]
//	sanbridge check --config FILE [--no-devices]
//	sanbridge status [--json] [--admin PATH|HOST:PORT]
//	sanbridge reload [--admin PATH|HOST:PORT]
//	sanbridge scan [--json]
//	sanbridge bench [--qd N] [--count N] [--bs BYTES] DEVICE
//	sanbridge version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "sanbridge:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: sanbridge <command> [flags]

commands:
  serve     run the gateway (default config: the embedded demo)
  check     validate a configuration file, against this machine's devices too
  status    show what the running gateway does (sessions, LUNs, devices, last reload)
  reload    make the running gateway read its configuration again (as SIGHUP)
  scan      list the local SCSI devices the gateway can export
  bench     read a local SCSI device through the gateway's SG_IO backend
  version   print the version
Run 'sanbridge <command> -h' for a command's flags.
`)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "reload":
		return runReload(ctx, rest, stdout, stderr)
	case "scan":
		return runScan(ctx, rest, stdout, stderr, newLogger(stderr, zerolog.WarnLevel, "auto"))
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "sanbridge", version)
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	fmt.Fprintf(stderr, "sanbridge: unknown command %q\n", cmd)
	usage(stderr)
	return errUsage
}

// newLogger returns a zerolog logger: console format on a terminal, JSON
// otherwise (format "auto"), or as forced by format "json"/"console".
func newLogger(w io.Writer, level zerolog.Level, format string) zerolog.Logger {
	console := format == "console"
	if format == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(level).Hook(timestampHook{})
}

// timestampHook stamps every event with millisecond precision without
// touching zerolog's package-level TimeFieldFormat.
type timestampHook struct{}

// Run implements zerolog.Hook.
func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}
