package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// httpTimeouts bound how long one HTTP client may hold a connection and a
// goroutine: a client that sends its headers or body byte by byte, or never
// reads the answer, or keeps an idle connection open, is cut off. A WebSocket
// is not bound by them: the gateway's upgrade clears the deadlines and the
// gateway keeps its own (heartbeats, the IDENTIFY deadline).
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

func (t *httpTimeouts) flags(fs *flag.FlagSet) {
	fs.DurationVar(&t.readHeader, "http-read-header-timeout", 10*time.Second, "time to read a request's headers")
	fs.DurationVar(&t.read, "http-read-timeout", 30*time.Second, "time to read a whole request, body included")
	fs.DurationVar(&t.write, "http-write-timeout", 30*time.Second, "time from the end of a request's headers to the end of its answer")
	fs.DurationVar(&t.idle, "http-idle-timeout", 120*time.Second, "how long a keep-alive connection may wait for its next request")
}

func (t httpTimeouts) server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
	}
}

// serveMetrics serves GET /metrics alone on addr (--metrics-addr), so that the
// public address need not expose it; the returned function stops it.
func serveMetrics(addr string, metrics http.Handler, t httpTimeouts, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := t.server(mux)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics http", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
