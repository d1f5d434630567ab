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
	flag.Parse()
	os.MkdirAll(*dir, 0o755)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
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
