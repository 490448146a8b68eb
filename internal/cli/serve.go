package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/gateway"
	"github.com/sluicehq/sluice/internal/http1"
	"github.com/sluicehq/sluice/internal/procs"
	"github.com/sluicehq/sluice/internal/rawio"
)

// sourceFlags choose the configuration: a file, one upstream given on the
// command line, or the embedded demo.
type sourceFlags struct {
	configPath string
	upstream   string
	era        string
	transport  string
	dataDir    string
	noAudit    bool
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); reloaded on SIGHUP and when it changes")
	cmd.Flags().StringVar(&f.upstream, "upstream", "", "URL of one upstream MCP server to front, instead of a configuration file")
	cmd.Flags().StringVar(&f.era, "upstream-era", config.EraAuto, "protocol era of the upstream: auto, legacy or modern")
	cmd.Flags().StringVar(&f.transport, "upstream-transport", "", "transport of the --upstream URL: streamable-http (default) or sse")
	cmd.Flags().BoolVar(&f.noAudit, "no-audit", false, "do not record calls in the audit log (for trials and benchmarks; overrides audit.enabled)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "directory for the audit log and its keys (default: data_dir, $SLUICE_DATA_DIR, $XDG_DATA_HOME/sluice or ~/.local/share/sluice)")
}

// gatewayOptions are the options every command that runs a gateway uses.
func (f *sourceFlags) gatewayOptions(cfg *config.Config, log *slog.Logger) (gateway.Options, error) {
	opts := gateway.Options{Logger: log, BaseEnv: gateway.MinimalEnv(), Version: version()}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	if f.noAudit {
		off := false
		if cfg.Audit == nil {
			cfg.Audit = &config.Audit{}
		}
		cfg.Audit.Enabled = &off
		log.Warn("auditing is off (--no-audit): calls are not recorded")
	}
	if cfg.AuditEnabled() {
		dir, err := audit.ResolveDataDir(cfg.DataDir)
		if err != nil {
			return opts, err
		}
		opts.DataDir = dir
	}
	return opts, nil
}

// load builds the configuration. command is the argv after "--", if any.
func (f *sourceFlags) load(command []string) (*config.Config, error) {
	switch {
	case f.configPath != "":
		if f.upstream != "" || len(command) > 0 {
			return nil, errors.New("--config cannot be combined with --upstream or a command")
		}
		return config.Load(f.configPath)
	case f.upstream != "" || len(command) > 0:
		if f.upstream != "" && len(command) > 0 {
			return nil, errors.New("give either --upstream or a command after --, not both")
		}
		srv := &config.Server{Era: f.era}
		if f.upstream != "" {
			srv.URL = f.upstream
			srv.Transport = f.transport
		} else {
			srv.Command = command
		}
		cfg := &config.Config{Servers: map[string]*config.Server{"upstream": srv}, Source: "(command line)"}
		cfg.ApplyDefaults()
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	return config.Default(selfExe()), nil
}

func newServe() *cobra.Command {
	var (
		src     sourceFlags
		logs    logFlags
		listen  string
		profile string
	)
	cmd := &cobra.Command{
		Use:   "serve [flags] [-- COMMAND ARGS...]",
		Short: "Serve MCP over HTTP in front of the configured servers",
		Long: `Serve MCP's Streamable HTTP transport (both protocol eras) at /mcp, and at
/mcp/<profile> for each profile, in front of the configured upstream servers.

With no configuration, Sluice serves a built-in demo server. To front one
server without a configuration file, give its URL with --upstream, or its
command after "--".`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := src.load(args)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			log, err := newLogger(cmd.ErrOrStderr(), cfg, logs)
			if err != nil {
				return err
			}
			if profile != "" {
				stop, err := startCPUProfile(profile)
				if err != nil {
					return err
				}
				defer stop()
			}
			opts, err := src.gatewayOptions(cfg, log)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, src.configPath, opts, logs)
		},
	}
	src.register(cmd)
	logs.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default "+config.DefaultListen+")")
	cmd.Flags().StringVar(&profile, "cpu-profile", "", "write a CPU profile to this file until shutdown (for benchmarking)")
	_ = cmd.Flags().MarkHidden("cpu-profile")
	return cmd
}

// checkListen refuses addresses other than loopback unless authentication
// is configured: without it, anyone who can reach the port could use every
// server.
func checkListen(addr string, auth *config.Auth) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" || auth != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s: a non-loopback address would expose every upstream server to the network without authentication; configure auth (OAuth, API keys or mTLS) or listen on 127.0.0.1 or localhost", addr)
}

func serve(ctx context.Context, cfg *config.Config, path string, opts gateway.Options, logs logFlags) error {
	log := opts.Logger
	if err := checkListen(cfg.Listen, cfg.Auth); err != nil {
		return err
	}
	var tlsConf *tls.Config
	if cfg.TLS != nil {
		c, err := authn.ServerTLS(cfg.TLS, cfg.Auth)
		if err != nil {
			return err
		}
		tlsConf = c
	}
	g, err := gateway.New(cfg, opts)
	if err != nil {
		return err
	}
	defer g.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	ln = rawio.Listener{Listener: ln}
	handler := gateway.NewHTTPHandler(g, gateway.HTTPOptions{AllowedOrigins: cfg.HTTP.AllowedOrigins, AllowedHosts: cfg.HTTP.AllowedHosts})
	mux := http.NewServeMux()
	mux.Handle("/mcp", handler)
	mux.Handle("/mcp/", handler)
	mux.Handle(authn.WellKnownPath, handler)
	mux.Handle(authn.WellKnownPath+"/", handler)
	// Approvers authenticate as callers of /mcp do; without auth configured
	// the endpoint refuses everyone.
	approvals := handler.Approvals(handler.Authenticate)
	mux.Handle("/approvals", approvals)
	mux.Handle("/approvals/", approvals)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if procs.Enabled() {
		go procs.Adapt(ctx, procs.Config{})
	}
	go g.Start(ctx)

	watchConfig(ctx, path, log, func(next *config.Config) error {
		if next.Listen != cfg.Listen {
			log.Warn("listen address changes need a restart; keeping the old one", "listen", cfg.Listen)
			next.Listen = cfg.Listen
		}
		if !reflect.DeepEqual(next.TLS, cfg.TLS) {
			log.Warn("tls changes need a restart; keeping the old listener")
		}
		if err := checkListen(next.Listen, next.Auth); err != nil {
			// Removing auth from a public listener would open it to anyone.
			return err
		}
		return g.Reload(next)
	})

	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		srv.TLSConfig = tlsConf
		ln = tls.NewListener(ln, tlsConf)
	}
	errc := make(chan error, 2)
	var front *http1.Server
	if tlsConf == nil {
		// Plain connections: the hot path's requests are read and answered
		// by http1, everything else by srv.
		front = &http1.Server{Handler: mux, ReadHeaderTimeout: srv.ReadHeaderTimeout, ErrorLog: srv.ErrorLog}
		go func() { errc <- front.Serve(ln) }()
		go func() { errc <- srv.Serve(front.Fallback()) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	log.Info("sluice serving", "addr", scheme+"://"+ln.Addr().String()+"/mcp", "auth", cfg.Auth != nil, "servers", cfg.ServerNames(), "config", cfg.Source, "version", version())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; draining in-flight calls", "timeout", time.Duration(cfg.Limits.ShutdownTimeout))
	g.BeginShutdown()
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Limits.ShutdownTimeout))
	defer cancel()
	var ferr error
	if front != nil {
		ferr = front.Shutdown(sctx)
	}
	if err := errors.Join(ferr, srv.Shutdown(sctx)); err != nil {
		log.Warn("shutdown timed out; closing remaining connections", "err", err)
		if front != nil {
			front.Close()
		}
		srv.Close()
	}
	return nil
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// watchConfig reloads the configuration at path on SIGHUP and whenever the
// file changes, until ctx ends. A file that fails to load or validate is
// refused with the reason logged, and the running configuration stays.
func watchConfig(ctx context.Context, path string, log *slog.Logger, apply func(*config.Config) error) {
	if path == "" {
		return
	}
	reload := func(why string) {
		next, err := config.Load(path)
		if err == nil {
			err = apply(next)
		}
		if err != nil {
			log.Error("configuration reload failed; keeping the running configuration", "trigger", why, "err", err)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				reload("SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		if err := config.Watch(ctx, path, func() { reload("file change") }); err != nil && ctx.Err() == nil {
			log.Warn("not watching the configuration file", "err", err)
		}
	}()
}
