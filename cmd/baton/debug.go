package main

import (
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves Go's profiler on addr, on a listener of its own so that
// it is never exposed where the API is. It returns a function that stops it.
func serveDebug(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --debug-listen %s: %w", addr, err)
	}
	srv := &nethttp.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("the profiler is reachable from other machines and has no authentication; bind --debug-listen to 127.0.0.1", "addr", ln.Addr().String())
	}
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// debugMux serves the profiles, but not /debug/pprof/cmdline: the command
// line holds the store URL, password included.
func debugMux() *nethttp.ServeMux {
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
