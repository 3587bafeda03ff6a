package replay

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// A shop the replay is done with leaves nothing behind: once Close returns,
// no service is running or listening, and the shop's databases are gone.
// Close stops the three services at once; it must still wait for every one
// of them.
func TestCloseLeavesNothingBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	native, err := stack.StartNative(ctx, testDeps(), services(t), stack.Options{Fixes: "resilient", Products: 100,
		LogDir: t.TempDir(), Probe: stack.KubeletProbe})
	if err != nil {
		t.Fatal(err)
	}
	// What a run leaves in Redis, more than one page of SCAN of it.
	rdb, _ := testkit.Redis(t)
	pipe := rdb.Pipeline()
	for i := range 1500 {
		pipe.Set(ctx, fmt.Sprintf("%s:order:key%d", native.Namespace(), i), i, time.Minute)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	native.Close()

	conn, err := pgx.Connect(ctx, testDeps().Postgres)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, svc := range stack.Services {
		if native.Up()[svc] {
			t.Errorf("%s: still up after Close", svc)
		}
		api, _ := url.Parse(native.API(svc))
		if c, err := net.DialTimeout("tcp", api.Host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s: still listening on %s after Close", svc, api.Host)
		}
		database, _ := url.Parse(native.Database(svc))
		var n int
		name := strings.TrimPrefix(database.Path, "/")
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: database %s after Close: %d of it (%v)", svc, name, n, err)
		}
	}
	left := 0
	iter := rdb.Scan(ctx, 0, native.Namespace()+":*", 1000).Iterator()
	for iter.Next(ctx) {
		left++
	}
	if left != 0 || iter.Err() != nil {
		t.Errorf("%d of the shop's keys in Redis after Close (%v)", left, iter.Err())
	}
}
