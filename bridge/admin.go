package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
)

// The admin endpoint is HTTP on a unix socket (and, when configured, on a
// loopback TCP address):
//
//	GET  /status   the Status as JSON
//	POST /reload   ReloadFile; the ReloadResult as JSON, 200 when it
//	               applied, 409 when it did not (nothing changed)
//	GET  /healthz  "ok"
//
// sanbridge status and sanbridge reload are its clients.

// AdminHandler returns the admin endpoint's handler.
func (b *Bridge) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		res := b.ReloadFile()
		code := http.StatusOK
		if !res.OK {
			code = http.StatusConflict
		}
		writeJSON(w, code, res)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// AdminListeners opens the admin endpoint's listeners: the unix socket
// (its directory made if needed, the socket readable and writable by its
// owner only; a stale socket of a previous run is replaced, a live one
// is an error) and, when tcp is not empty, a TCP listener.
func AdminListeners(socket, tcp string) ([]net.Listener, error) {
	var out []net.Listener
	if socket != "" {
		if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another sanbridge answers on it", socket)
		}
		if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
		l, err := net.Listen("unix", socket)
		if err != nil {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
		if err := os.Chmod(socket, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("admin socket: %w", err)
		}
		out = append(out, l)
	}
	if tcp != "" {
		l, err := net.Listen("tcp", tcp)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("admin listener: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// ServeAdmin serves h on ls until ctx ends; the unix socket file goes
// with it.
func ServeAdmin(ctx context.Context, h http.Handler, ls []net.Listener, log zerolog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	for _, l := range ls {
		go func() {
			log.Info().Str("admin", l.Addr().String()).Msg("admin endpoint listening")
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn().Err(err).Str("admin", l.Addr().String()).Msg("admin endpoint failed")
			}
			done <- struct{}{}
		}()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	for range ls {
		<-done
	}
}

// AdminClient talks to a gateway's admin endpoint: addr is a unix socket
// path (absolute) or a TCP host:port.
func AdminClient(addr string) (*http.Client, string) {
	if filepath.IsAbs(addr) {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}}
		return &http.Client{Transport: tr, Timeout: 5 * time.Minute}, "http://sanbridge"
	}
	return &http.Client{Timeout: 5 * time.Minute}, "http://" + addr
}
