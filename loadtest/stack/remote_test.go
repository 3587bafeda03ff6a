package stack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// -target breaks the compose stack through its Toxiproxy's HTTP API. Here the
// API is Toxiproxy's own (the module the compose image is built from, at the
// same version), loaded with the proxies of the compose file's
// toxiproxy.json pointed at this machine: Postgres and NATS are cut and come
// back, Redis goes silent and answers again, and the user service's latency
// toxic is added and removed.
func TestRemoteFaultsThroughToxiproxy(t *testing.T) {
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv := httptest.NewServer(api.Routes())
	defer srv.Close()
	defer api.Collection.Clear()

	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer users.Close()
	var proxies []map[string]any
	data, err := os.ReadFile("../../deploy/compose/toxiproxy/toxiproxy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &proxies); err != nil {
		t.Fatal(err)
	}
	redisAt, err := hostPort(testkit.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	upstream := map[string]string{"postgres": "127.0.0.1:5432", "nats": strings.TrimPrefix(testkit.NATSURL(), "nats://"),
		"redis": redisAt, "users": strings.TrimPrefix(users.URL, "http://")}
	for _, p := range proxies {
		name, _ := p["name"].(string)
		if upstream[name] == "" {
			t.Fatalf("toxiproxy.json has a proxy %q the replay does not use", name)
		}
		p["listen"], p["upstream"] = "127.0.0.1:0", upstream[name]
	}
	if len(proxies) != len(upstream) {
		t.Fatalf("toxiproxy.json has %d proxies, want postgres, nats, redis and users", len(proxies))
	}
	body, _ := json.Marshal(proxies)
	resp, err := http.Post(srv.URL+"/populate", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var populated struct {
		Proxies []struct{ Name, Listen string }
	}
	err = json.NewDecoder(resp.Body).Decode(&populated)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("populate: %d %v", resp.StatusCode, err)
	}
	listen := map[string]string{}
	for _, p := range populated.Proxies {
		listen[p.Name] = p.Listen
	}

	r := &Remote{Toxiproxy: srv.URL}
	// Each cut: reachable through the proxy before, not while down, again after.
	for _, c := range []struct {
		what     string
		down     func(bool) error
		connects func() bool
	}{
		{"Postgres", r.PostgresDown, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, "postgres://postgres@"+listen["postgres"]+"/postgres?sslmode=disable")
			if err != nil {
				return false
			}
			defer conn.Close(ctx)
			return conn.Ping(ctx) == nil
		}},
		{"NATS", r.NATSDown, func() bool {
			nc, err := nats.Connect("nats://"+listen["nats"], nats.Timeout(2*time.Second))
			if err != nil {
				return false
			}
			defer nc.Close()
			return nc.Flush() == nil
		}},
		{"Redis", r.RedisDown, func() bool {
			rdb := redis.NewClient(&redis.Options{Addr: listen["redis"], MaxRetries: -1, ReadTimeout: 300 * time.Millisecond})
			defer rdb.Close()
			return rdb.Ping(context.Background()).Err() == nil
		}},
	} {
		if !c.connects() {
			t.Fatalf("%s is not reachable through the proxy before the fault", c.what)
		}
		if err := c.down(true); err != nil {
			t.Fatal(err)
		}
		if c.connects() {
			t.Errorf("%s is reachable through the proxy while it is down", c.what)
		}
		if err := c.down(false); err != nil {
			t.Fatal(err)
		}
		if !c.connects() {
			t.Errorf("%s is not reachable through the proxy after it came back", c.what)
		}
	}

	// Each slowing: one latency toxic on the answers while slow, none after.
	toxics := func(proxy string) []map[string]any {
		resp, err := http.Get(srv.URL + "/proxies/" + proxy + "/toxics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ts []map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	for _, c := range []struct {
		proxy   string
		latency time.Duration
		slow    func(time.Duration) error
	}{
		{"users", 2 * time.Second, r.SlowUsers},
		{"postgres", 200 * time.Millisecond, r.SlowPostgres},
	} {
		if err := c.slow(c.latency); err != nil {
			t.Fatal(err)
		}
		ts := toxics(c.proxy)
		if len(ts) != 1 || ts[0]["type"] != "latency" || ts[0]["stream"] != "downstream" {
			t.Fatalf("toxics on %s: %v", c.proxy, ts)
		}
		if attrs, _ := ts[0]["attributes"].(map[string]any); attrs["latency"] != float64(c.latency.Milliseconds()) {
			t.Fatalf("latency toxic on %s: %v, want %v", c.proxy, ts[0], c.latency)
		}
		if err := c.slow(0); err != nil {
			t.Fatal(err)
		}
		if ts := toxics(c.proxy); len(ts) != 0 {
			t.Fatalf("toxics left on %s: %v", c.proxy, ts)
		}
	}
	if err := (&Remote{}).PostgresDown(true); err == nil || !strings.Contains(err.Error(), "-toxiproxy") {
		t.Errorf("without -toxiproxy: %v", err)
	}
}
