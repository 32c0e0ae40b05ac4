package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/stoa-rtc/stoa/auth"
	"github.com/stoa-rtc/stoa/signalling"
	"github.com/stoa-rtc/stoa/web"
)

const (
	// shutdownTimeout bounds how long serve waits for HTTP requests in
	// flight after a signal. WebSockets are hijacked and not waited for;
	// signalling.Server.Close ends them. It stays below systemd's default
	// TimeoutStopSec of 90s (deploy/stoa.service sets 20s).
	shutdownTimeout = 10 * time.Second
	// readHeaderTimeout drops clients that open a connection and never
	// finish their request headers (slowloris). It does not limit WebSockets.
	readHeaderTimeout = 10 * time.Second
)

// serve runs the server until ctx is done, then shuts it down.
func serve(ctx context.Context, args []string, sys system) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(sys.stderr)
	dev := fs.Bool("dev", false, "development mode: listen on 127.0.0.1, API key devkey, secret secret, debug log")
	path := fs.String("config", "", "YAML config `file`")
	var binds []string
	fs.Func("bind", "listen on this IP `address` for HTTP and ICE (repeatable; overrides the config)", func(s string) error {
		binds = append(binds, s)
		return nil
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	cfg, err := loadConfig(loadOptions{dev: *dev, path: *path, getenv: sys.getenv, binds: binds})
	if err != nil {
		return err
	}
	level, _ := cfg.logLevel() // validated by loadConfig
	logger := slog.New(slog.NewTextHandler(sys.stderr, &slog.HandlerOptions{Level: level}))
	for _, k := range cfg.weakKeys() {
		logger.Warn("API secret is shorter than 32 characters; use a long random one", "key", k)
	}
	if cfg.dev {
		logger.Warn("development mode: do not expose this server", "key", devKey)
	}

	links, err := web.NewLinks(cfg.linksStore())
	if err != nil {
		return fmt.Errorf("meeting links: %w", err)
	}

	relay := &observerRelay{}
	scfg := cfg.signalling(logger)
	scfg.Observer = relay
	srv, err := signalling.NewServer(scfg)
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	// The meeting page that links open, and its assets (web/handler.go).
	page := web.Handler()
	srv.Handle(web.PagePath, page)
	srv.Handle(web.AssetsPath, page)
	listeners, err := listen(ctx, cfg.httpAddrs())
	if err != nil {
		return errors.Join(err, srv.Close())
	}
	linksCfg := cfg.linksAPI(links, listeners[0].Addr(), logger)
	linksAPI, err := web.NewAPI(linksCfg)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return errors.Join(fmt.Errorf("meeting links: %w", err), srv.Close())
	}
	srv.Handle(web.LinksPath, linksAPI)
	srv.Handle(web.LinksPath+"/", linksAPI)
	logger.Info("meeting links API on", "path", web.LinksPath, "guests_connect_to", linksCfg.PublicURL, "file", cfg.Links.Path)
	authCtx, stopAuth := context.WithCancel(context.Background())
	authDone := make(chan error, 1)
	if acfg, ok := cfg.authConfig(listeners[0].Addr(), logger); ok {
		// "!stoa link" in a Matrix room creates a link in the same store
		// the links API serves, with the URL the API would give.
		if base, err := web.PageBase(linksCfg.PublicURL); err == nil {
			acfg.Links = chatLinkMaker{links: links, base: base}
		}
		svc, err := auth.New(acfg, srv)
		if err != nil {
			stopAuth()
			for _, l := range listeners {
				l.Close()
			}
			return errors.Join(fmt.Errorf("authorisation service: %w", err), srv.Close())
		}
		for _, p := range authRoutes() {
			srv.Handle(p, svc.Handler())
		}
		relay.to.Store(svc)
		go func() { authDone <- svc.Run(authCtx) }()
		logger.Info("MatrixRTC authorisation service on", "url", acfg.PublicURL)
	} else {
		authDone <- nil
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// One slot per listener so that no Serve goroutine blocks on sending
	// its error after serve stopped receiving.
	errc := make(chan error, len(listeners))
	addrs := make([]net.Addr, len(listeners))
	for i, l := range listeners {
		addrs[i] = l.Addr()
		go func() { errc <- hs.Serve(l) }()
	}
	logger.Info("HTTP listening", "addrs", addrs)
	if sys.ready != nil {
		sys.ready(addrs)
	}

	var serveErr error
	pending := len(listeners)
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-errc:
		pending--
		// serve returns serveErr; main reports it.
		logger.Info("shutting down after an HTTP server error")
	}

	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shutdownErr := hs.Shutdown(sctx)
	if shutdownErr != nil {
		shutdownErr = fmt.Errorf("HTTP shutdown: %w", errors.Join(shutdownErr, hs.Close()))
	}
	for ; pending > 0; pending-- {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) && serveErr == nil {
			serveErr = err
		}
	}
	stopAuth()
	authErr := <-authDone
	if authErr != nil && !errors.Is(authErr, context.Canceled) {
		authErr = fmt.Errorf("authorisation service: %w", authErr)
	} else {
		authErr = nil
	}
	closeErr := srv.Close()
	if closeErr != nil {
		closeErr = fmt.Errorf("close server: %w", closeErr)
	}
	if serveErr != nil {
		serveErr = fmt.Errorf("HTTP server: %w", serveErr)
	}
	err = errors.Join(serveErr, shutdownErr, authErr, closeErr)
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// listen opens a TCP listener on each address, or none.
func listen(ctx context.Context, addrs []string) ([]net.Listener, error) {
	var lc net.ListenConfig
	listeners := make([]net.Listener, 0, len(addrs))
	for _, a := range addrs {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("listen: %w", err)
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

// chatLinkMaker is the auth package's auth.LinkMaker over the links store:
// links made by the "!stoa link" chat command.
type chatLinkMaker struct {
	links *web.Links
	base  string // web.PageBase of the links API's public URL
}

// MakeLink implements auth.LinkMaker.
func (m chatLinkMaker) MakeLink(room string, ttl time.Duration, viewOnly bool) (string, error) {
	l, err := m.links.Create(web.LinkOptions{Room: room, TTL: ttl, ViewOnly: viewOnly})
	if err != nil {
		return "", err
	}
	return m.base + web.PagePath + l.Slug, nil
}
