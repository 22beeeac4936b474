package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sanbridge/sanbridge/bridge"
)

// adminFlags are the flags that find a running gateway's admin endpoint.
type adminFlags struct {
	addr     *string
	stateDir *string
}

func newAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		addr:     fs.String("admin", "", "the gateway's admin endpoint: a unix socket `path` or a loopback host:port (default: the first of $RUNTIME_DIRECTORY/admin.sock, "+defaultAdminSocket+", STATE-DIR/admin.sock that exists)"),
		stateDir: fs.String("state-dir", defaultStateDir, "the gateway's state `directory` (where its admin socket may be)"),
	}
}

// endpoint returns the admin endpoint to talk to.
func (a adminFlags) endpoint() (string, error) {
	if *a.addr != "" {
		return *a.addr, nil
	}
	cands := adminSocketCandidates(*a.stateDir)
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.Mode()&os.ModeSocket != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("no admin socket found (looked at %s): is sanbridge serve running? Give --admin", strings.Join(cands, ", "))
}

// call sends a request to the admin endpoint and returns the status code
// and body.
func (a adminFlags) call(ctx context.Context, method, path string) (int, []byte, error) {
	addr, err := a.endpoint()
	if err != nil {
		return 0, nil, err
	}
	client, base := bridge.AdminClient(addr)
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("admin endpoint %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("admin endpoint %s: %w", addr, err)
	}
	return resp.StatusCode, body, nil
}

// runStatus implements "sanbridge status": what the running gateway does
// (portals, targets and LUNs, sessions, logical units and their devices,
// the last reload), as tables or, with --json, as the admin endpoint's
// JSON.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	af := newAdminFlags(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	code, body, err := af.call(ctx, http.MethodGet, "/status")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("admin endpoint: %d: %s", code, bytes.TrimSpace(body))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st bridge.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	printStatus(stdout, &st)
	return nil
}

// printStatus prints a status as tables.
func printStatus(w io.Writer, st *bridge.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORTAL\tBOUND\tGROUP\tADVERTISE")
	for _, p := range st.Portals {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", p.Listen, p.Bound, p.Group, p.Advertise)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TARGET\tLUN\tBACKEND\tVIEW")
	for _, t := range st.Targets {
		name := t.Name
		if t.AutoExport != "" {
			name += " (auto_export " + t.AutoExport + ")"
		}
		if len(t.LUNs) == 0 && len(t.Views) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t\n", name)
		}
		for _, l := range t.LUNs {
			fmt.Fprintf(tw, "%s\t%d\t%s%s\tdefault\n", name, l.LUN, l.Backend, ro(l.ReadOnly))
		}
		for g, ls := range t.Views {
			for _, l := range ls {
				fmt.Fprintf(tw, "%s\t%d\t%s%s\t%s\n", name, l.LUN, l.Backend, ro(l.ReadOnly), g)
			}
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SESSION TARGET\tINITIATOR\tISID\tPORTAL\tREMOTE\tLOGIN\tIN FLIGHT\tBURST/XMIT\tDIGESTS")
	for _, s := range st.Sessions {
		target := s.Target
		if s.Discovery {
			target = "(discovery)"
		}
		digests := "none"
		if s.Params.HeaderDigest || s.Params.DataDigest {
			digests = fmt.Sprintf("header=%v data=%v", s.Params.HeaderDigest, s.Params.DataDigest)
		}
		login := s.LoginTime.Local().Format(time.DateTime)
		if s.LogoutRequested != nil {
			login += " (logout requested)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s,%d\t%s\t%s\t%d\t%d/%d\t%s\n", target, s.Initiator, s.ISID, s.Portal, s.PortalGroup,
			s.Remote, login, s.InFlight, s.Params.MaxBurstLength, s.Params.MaxXmitDataSegmentLength, digests)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "LOGICAL UNIT\tKIND\tSTATE\tIDENTITY\tSG\tRESERVATION\tREGISTRATIONS")
	for _, l := range st.LUs {
		res := "-"
		switch {
		case l.PRType != "":
			res = l.PRType + " by " + strings.Join(l.PRHolders, ", ")
		case l.SPC2Holder != "":
			res = "RESERVE by " + l.SPC2Holder
		}
		ident := l.Identity
		if ident == "" {
			ident = l.Key
		}
		state := l.State
		if l.Returns > 0 {
			state += fmt.Sprintf(" (back %d time(s))", l.Returns)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", l.Backend, l.Kind, state, ident, l.SG, res, len(l.Registrations))
	}
	tw.Flush()
	r := st.LastReload
	fmt.Fprintln(w)
	if r.OK {
		fmt.Fprintf(w, "last reload: ok at %s: %s\n", r.Time.Local().Format(time.DateTime), r.Summary)
	} else {
		fmt.Fprintf(w, "last reload: FAILED at %s (nothing changed): %s\n", r.Time.Local().Format(time.DateTime), r.Error)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(w, "  %s\n", c)
	}
	if len(r.Restart) > 0 {
		fmt.Fprintf(w, "  needs a restart to apply: %s\n", strings.Join(r.Restart, ", "))
	}
	if !st.WatchingDevices {
		fmt.Fprintln(w, "device arrivals and removals are not followed (serve --watch-devices=false)")
	}
}

func ro(b bool) string {
	if b {
		return " (read-only)"
	}
	return ""
}

// errReloadFailed marks a reload the gateway refused (exit status 1).
var errReloadFailed = errors.New("reload failed; the running configuration is unchanged")

// runReload implements "sanbridge reload": the running gateway reads its
// configuration again and applies it (as SIGHUP does); the result is
// printed, and a failure (nothing changed) is exit status 1.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	af := newAdminFlags(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	code, body, err := af.call(ctx, http.MethodPost, "/reload")
	if err != nil {
		return err
	}
	var r bridge.ReloadResult
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("admin endpoint: %d: %s", code, bytes.TrimSpace(body))
	}
	if *asJSON {
		stdout.Write(body)
	} else if r.OK {
		fmt.Fprintf(stdout, "reloaded: %s\n", r.Summary)
		for _, c := range r.Changes {
			fmt.Fprintf(stdout, "  %s\n", c)
		}
		if r.LoggedOut > 0 {
			fmt.Fprintf(stdout, "  %d session(s) that lost their access asked to log out\n", r.LoggedOut)
		}
		if len(r.Restart) > 0 {
			fmt.Fprintf(stdout, "  needs a restart to apply: %s\n", strings.Join(r.Restart, ", "))
		}
	} else {
		fmt.Fprintf(stderr, "%s\n", r.Error)
	}
	if !r.OK {
		return errReloadFailed
	}
	return nil
}
