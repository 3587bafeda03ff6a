// Command createdb creates Postgres databases that do not exist yet; `make dev`
// runs it so that each service finds its own database on the local server.
//
//	go run ./pkg/cmd/createdb postgres://postgres@127.0.0.1:5432/stampede_user ...
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/stampede-shop/stampede/pkg/db"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, url := range os.Args[1:] {
		if err := db.EnsureDatabase(ctx, url); err != nil {
			fmt.Fprintln(os.Stderr, "createdb:", err)
			os.Exit(1)
		}
	}
}
