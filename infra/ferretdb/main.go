// Command ferretdb-launcher runs an embedded FerretDB v1 (MongoDB wire
// protocol) with its SQLite backend, for local development and tests on
// machines without mongod or a container engine.
//
// Usage:
//
//	ferretdb-launcher -listen 127.0.0.1:27017 -dir .data/stack/store
//
// It exits cleanly (status 0) on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	dir := flag.String("dir", "data", "directory holding the SQLite database files (one per MongoDB database)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: bad -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	absDir, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}
	if err = os.MkdirAll(absDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}
	// FerretDB wants a directory URI ending with a slash: file:/abs/dir/
	sqliteURL := "file:" + strings.TrimSuffix(filepath.ToSlash(absDir), "/") + "/"

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}

	go func() {
		// MongoDBURI blocks until the listener is bound.
		fmt.Fprintf(os.Stdout, "ferretdb-launcher: listening on %s (sqlite %s)\n", f.MongoDBURI(), sqliteURL)
	}()

	if err = f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-launcher: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stdout, "ferretdb-launcher: stopped")
}
