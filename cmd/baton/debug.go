package main

import (
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/pprof"
	"time"
)

// serveAside serves h (the profiler, the metrics: name) on addr (the value
// of the flag named what), on a
// listener of its own so that it is never exposed where the API is, and
// without authentication: it warns when addr is not loopback. It returns a
// function that stops it.
func serveAside(what, name, addr string, h nethttp.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", what, addr, err)
	}
	srv := &nethttp.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("reachable from other machines without authentication; bind it to 127.0.0.1 or a private network", "flag", what, "addr", ln.Addr().String())
	}
	log.Info(name+" listening", "flag", what, "addr", ln.Addr().String())
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
