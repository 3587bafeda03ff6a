package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/pkg/catalog"
)

// Shop is a running shop the replay drives: one it started itself
// (*Native), or one that runs already (*Remote: the compose stack).
type Shop interface {
	API(svc string) string
	Admin(svc string) string
	// Restarts returns each service's restarts, or nil when the replay
	// does not supervise the services (the orchestrator does).
	Restarts() map[string]int
	Up() map[string]bool
	PostgresDown(down bool) error
	SlowPostgres(latency time.Duration) error
	NATSDown(down bool) error
	RedisDown(down bool) error
	SlowUsers(latency time.Duration) error
	Check(ctx context.Context, acknowledged []string, products int, settle time.Duration) (Invariants, error)
	Close()
}

var (
	_ Shop = (*Native)(nil)
	_ Shop = (*Remote)(nil)
)

// Remote is a shop that is already running, such as the compose stack: the
// replay sends it traffic, switches its fixes through the admin API instead
// of restarting it, breaks or slows its dependencies through its Toxiproxy,
// and checks the invariants in its databases.
type Remote struct {
	APIs       map[string]string // service → API base URL
	Admins     map[string]string // service → admin base URL
	Databases  map[string]string // service → database URL, for the invariants
	Toxiproxy  string            // Toxiproxy's API, with proxies "postgres", "nats", "redis" and "users" (each where a fault needs it)
	AdminToken string
	HTTP       *http.Client

	// cpuWait is each service's CPU-wait target as it was before the
	// replay first changed it, to put back.
	cpuWait map[string]string
}

// ParseTargets reads "user=URL,search=URL,order=URL" into a map, checking
// that every service is there.
func ParseTargets(flag, value string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(value, ",") {
		name, url, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || url == "" {
			return nil, fmt.Errorf("-%s: %q is not service=URL", flag, kv)
		}
		m[name] = url
	}
	for _, svc := range Services {
		if m[svc] == "" {
			return nil, fmt.Errorf("-%s: no URL for the %s service (want user=…,search=…,order=…)", flag, svc)
		}
	}
	return m, nil
}

func (r *Remote) client() *http.Client {
	if r.HTTP != nil {
		return r.HTTP
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// SetFixes switches every service to fixes, at run time, through
// PUT /admin/fixes.
func (r *Remote) SetFixes(ctx context.Context, fixes string) error {
	for _, svc := range Services {
		if err := r.call(ctx, http.MethodPut, r.Admins[svc]+"/admin/fixes", "Bearer "+r.AdminToken,
			fmt.Sprintf(`{"fixes":%q}`, fixes), nil); err != nil {
			return fmt.Errorf("%s: %w", svc, err)
		}
	}
	return nil
}

// SetCPUWait sets every service's CPU-wait target at run time, through PUT
// /admin/shedding: "off", a duration, or "" for the target each had before
// the replay first changed it (nothing to do if it never did). It is what
// SHED_TARGET_CPU_WAIT sets on a shop the replay starts.
func (r *Remote) SetCPUWait(ctx context.Context, value string) error {
	for _, svc := range Services {
		url := r.Admins[svc] + "/admin/shedding"
		v := value
		before, saved := r.cpuWait[svc]
		switch {
		case v == "" && !saved:
			continue
		case v == "":
			v = before
		case !saved:
			var got struct {
				CPUWait string `json:"cpu_wait"`
			}
			if err := r.call(ctx, http.MethodGet, url, "Bearer "+r.AdminToken, "", &got); err != nil {
				return fmt.Errorf("%s: %w", svc, err)
			}
			if r.cpuWait == nil {
				r.cpuWait = map[string]string{}
			}
			r.cpuWait[svc] = got.CPUWait
		}
		if err := r.call(ctx, http.MethodPut, url, "Bearer "+r.AdminToken, fmt.Sprintf(`{"cpu_wait":%q}`, v), nil); err != nil {
			return fmt.Errorf("%s: %w", svc, err)
		}
	}
	return nil
}

// API returns a service's API base URL.
func (r *Remote) API(svc string) string { return r.APIs[svc] }

// Admin returns a service's admin base URL.
func (r *Remote) Admin(svc string) string { return r.Admins[svc] }

// Restarts is nil: the orchestrator supervises a remote shop.
func (r *Remote) Restarts() map[string]int { return nil }

// Up reports which services answer /livez now.
func (r *Remote) Up() map[string]bool {
	m := map[string]bool{}
	for _, svc := range Services {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		m[svc] = r.call(ctx, http.MethodGet, r.APIs[svc]+"/livez", "", "", nil) == nil
		cancel()
	}
	return m
}

// PostgresDown disables or enables Toxiproxy's "postgres" proxy.
func (r *Remote) PostgresDown(down bool) error { return r.cut("postgres", down) }

// NATSDown disables or enables Toxiproxy's "nats" proxy.
func (r *Remote) NATSDown(down bool) error { return r.cut("nats", down) }

// RedisDown adds or removes a toxic on Toxiproxy's "redis" proxy that lets
// nothing through (see Native.RedisDown).
func (r *Remote) RedisDown(down bool) error { return r.setToxic("redis", "hang", hangToxic, down) }

// SlowPostgres adds or removes a latency toxic on Toxiproxy's "postgres" proxy.
func (r *Remote) SlowPostgres(latency time.Duration) error {
	return r.setToxic("postgres", "slow", slowToxic(latency), latency > 0)
}

// SlowUsers adds or removes a latency toxic on Toxiproxy's "users" proxy.
func (r *Remote) SlowUsers(latency time.Duration) error {
	return r.setToxic("users", "slow", slowToxic(latency), latency > 0)
}

// cut disables (down) or enables a proxy of Toxiproxy's.
func (r *Remote) cut(proxy string, down bool) error {
	return r.toxiproxy(http.MethodPatch, "/proxies/"+proxy, fmt.Sprintf(`{"enabled":%t}`, !down)) // POST is deprecated
}

// setToxic adds toxic (its JSON, named name) to a proxy of Toxiproxy's, or
// removes it.
func (r *Remote) setToxic(proxy, name, toxic string, on bool) error {
	if !on {
		return r.toxiproxy(http.MethodDelete, "/proxies/"+proxy+"/toxics/"+name, "")
	}
	return r.toxiproxy(http.MethodPost, "/proxies/"+proxy+"/toxics", toxic)
}

func (r *Remote) toxiproxy(method, path, body string) error {
	if r.Toxiproxy == "" {
		return errors.New("no Toxiproxy given (-toxiproxy)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.call(ctx, method, r.Toxiproxy+path, "", body, nil)
}

// Check counts the invariants in the shop's databases.
func (r *Remote) Check(ctx context.Context, acknowledged []string, products int, settle time.Duration) (Invariants, error) {
	if len(r.Databases) == 0 {
		return Invariants{}, errors.New("no databases given (-target-db): the invariants cannot be checked")
	}
	return check(ctx, r.Databases, acknowledged, products, settle, nil)
}

// HotStock is what is left of the flash-sale SKU in the order service's
// database. A running shop keeps its data from one profile to the next, so
// the hot SKU a first profile sold out is sold out for the second.
func (r *Remote) HotStock(ctx context.Context) (int64, error) {
	if r.Databases["order"] == "" {
		return 0, errors.New("no databases given (-target-db)")
	}
	conn, err := pgx.Connect(ctx, r.Databases["order"])
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var left int64
	err = conn.QueryRow(ctx, `SELECT stock FROM inventory WHERE product_id = $1`, catalog.HotProductID).Scan(&left)
	return left, err
}

// Close does nothing: the shop was running before the replay and goes on.
func (r *Remote) Close() {}

// call sends a request and, if out is not nil, decodes the JSON answer into it.
func (r *Remote) call(ctx context.Context, method, url, auth, body string, out any) error {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return nil
}
