package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the HTTP handler that serves the registry's families
// (text or protobuf exposition, as the scraper negotiates).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		Registry:            r.reg, // promhttp_metric_handler_errors_total
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// Server is a running metrics listener (see [Registry.Listen]).
type Server struct {
	ln   net.Listener
	done chan struct{}
	err  error
}

// shutdownGrace bounds how long a scrape in progress may finish once the
// listener's context ends.
const shutdownGrace = 2 * time.Second

// Listen binds addr (host:port; port 0 picks a free one) and serves
// /metrics (and "/" with a pointer to it) until ctx ends. Bind errors are
// returned at once; afterwards [Server.Wait] reports how serving ended.
func (r *Registry) Listen(ctx context.Context, addr string) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "sanbridge metrics: /metrics")
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	go func() {
		defer close(s.done)
		select {
		case err := <-served:
			s.err = fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			if hs.Shutdown(sctx) != nil {
				hs.Close()
			}
			cancel()
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				s.err = fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
			}
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Wait blocks until the server stopped (its context ended and the
// scrapes in progress finished or were cut off) and returns why it
// stopped if that was not the context.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}
