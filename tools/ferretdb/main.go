// The MongoDB-wire server for development and tests: FerretDB 1.24.2 with its SQLite backend,
// embedded as a library (the plain cmd/ferretdb build panics without build/version/version.txt).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address")
	dir := flag.String("dir", "./data", "SQLite data directory")
	// SQLite's default, "full", syncs the disk at every commit (as MongoDB does for a journaled write,
	// the default of a replica set since 5.0). "normal" syncs at checkpoints only: a committed write
	// survives a crash of the server, the last ones may be lost to a power cut.
	synchronous := flag.String("synchronous", "full", "SQLite synchronous pragma: full or normal")
	flag.Parse()
	if *synchronous != "normal" && *synchronous != "full" {
		fmt.Fprintln(os.Stderr, "ferretdb: -synchronous must be normal or full")
		os.Exit(2)
	}
	os.MkdirAll(*dir, 0o755)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/?_pragma=synchronous(" + *synchronous + ")",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("ferretdb listening on", *listen)
	f.Run(ctx)
}
