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
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the driver FerretDB uses; the WAL checkpointer opens the same files
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	dir := flag.String("dir", "data", "directory holding the SQLite database files (one per MongoDB database)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	mmapSize := flag.String("mmap-size", "4294967296", "SQLite mmap_size in bytes (0 turns memory-mapped reads off)")
	walLimit := flag.Int64("wal-limit", 64<<20, "reset a database's write-ahead log once it is larger than this many bytes (0: never)")
	pprofAddr := flag.String("pprof", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	flag.Parse()

	if *pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil { //nolint:gosec // a local debugging aid
				fmt.Fprintf(os.Stderr, "ferretdb-launcher: pprof: %v\n", err)
			}
		}()
	}

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
	// mmap_size lets SQLite read pages from the OS page cache shared by all connections instead of a
	// pread per page into each connection's small private cache (a third of an update's CPU at a
	// million tickets).
	sqliteURL := "file:" + strings.TrimSuffix(filepath.ToSlash(absDir), "/") + "/?_pragma=mmap_size(" + *mmapSize + ")"

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

	if *walLimit > 0 {
		go checkpointer(ctx, absDir, *walLimit)
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

// checkpointer keeps every database's write-ahead log bounded. SQLite's automatic checkpoint is PASSIVE:
// it copies the log into the database but can reset the log only at an instant when no connection is
// reading from it, and FerretDB's pool keeps readers busy without pause under load. The log then grows
// without end (gigabytes at a few hundred updates a second) and every later automatic checkpoint walks
// all of it. A TRUNCATE checkpoint waits briefly for the current readers to finish, then empties the log.
func checkpointer(ctx context.Context, dir string, limit int64) {
	conns := map[string]*sql.DB{}
	defer func() {
		for _, db := range conns {
			_ = db.Close()
		}
	}()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		wals, _ := filepath.Glob(filepath.Join(dir, "*.sqlite-wal"))
		for _, wal := range wals {
			info, err := os.Stat(wal)
			if err != nil || info.Size() <= limit {
				continue
			}
			file := strings.TrimSuffix(wal, "-wal")
			db := conns[file]
			if db == nil {
				// busy_timeout bounds how long writers wait while the checkpoint waits for readers.
				db, err = sql.Open("sqlite", "file:"+filepath.ToSlash(file)+"?_pragma=busy_timeout(200)&_pragma=journal_size_limit(0)")
				if err != nil {
					slog.Warn("wal checkpointer: open", "file", file, "error", err)
					continue
				}
				db.SetMaxOpenConns(1)
				conns[file] = db
			}
			var busy, logFrames, done int
			err = db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
			if err != nil {
				slog.Warn("wal checkpointer: checkpoint", "file", file, "error", err)
				continue
			}
			slog.Debug("wal checkpointer", "file", file, "busy", busy, "frames", logFrames, "checkpointed", done)
		}
	}
}
