package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/health"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/server"
	"github.com/stampede-shop/stampede/pkg/telemetry"
)

// One running server, one board; each fix is switched off and on again
// through PUT /admin/fixes, and a probe request shows the difference.
func TestEverySwitchActsAtRunTime(t *testing.T) {
	b := fixes.NewBoard(fixes.Resilient, quiet)
	checks := health.New(b, 50*time.Millisecond)
	checks.Add("postgres", func(context.Context) error { return errors.New("down") })
	cfg := config.Common{Service: "test", HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", AdminToken: config.NewSecret("tok"),
		Requests: config.Requests{Timeout: time.Second, BodyLimit: 1 << 10, ShutdownGrace: time.Second, DrainDelay: time.Millisecond}}
	shedder := resilience.NewShedder(resilience.ShedSettings{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, QueueSize: 1, QueueWait: time.Millisecond}, nil)
	srv := server.New(server.Options{Config: cfg, Log: quiet, Board: b, Registry: telemetry.NewRegistry(), Health: checks, Shedder: shedder})
	api := srv.API()
	hold := make(chan struct{})
	held := make(chan struct{}, 1)
	api.GET("/hold", func(c *gin.Context) { held <- struct{}{}; <-hold; c.Status(204) })
	api.GET("/deadline", func(c *gin.Context) {
		_, ok := c.Request.Context().Deadline()
		c.JSON(200, gin.H{"deadline": ok})
	})
	api.POST("/echo", func(c *gin.Context) {
		buf := make([]byte, 4<<10)
		n, err := c.Request.Body.Read(buf)
		for err == nil {
			var m int
			m, err = c.Request.Body.Read(buf)
			n += m
		}
		if strings.Contains(err.Error(), "too large") {
			c.JSON(413, gin.H{"error": gin.H{"code": "body_too_large"}})
			return
		}
		c.JSON(200, gin.H{"read": n})
	})
	api.GET("/panic", func(*gin.Context) { panic("boom") })
	limited := resilience.NewLocalLimiter(1, 1, 10)
	api.GET("/limited", resilience.RateLimit(limited, resilience.ByClientIP("t"), b, quiet), func(c *gin.Context) { c.Status(204) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx, func(context.Context) error { return nil })
	var apiURL, adminURL string
	select {
	case a := <-srv.Listening():
		apiURL, adminURL = "http://"+a.API, "http://"+a.Admin
	case <-time.After(5 * time.Second):
		t.Fatal("server never listened")
	}
	// Readiness fails on the dead "postgres" check for good, so it cannot
	// tell when start-up is done; before it is, every route answers 503
	// "starting".
	waitStarted(t, checks)

	set := func(value string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, adminURL+"/admin/fixes", strings.NewReader(`{"fixes":"`+value+`"}`))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("PUT /admin/fixes %s: %v %v", value, resp, err)
		}
		resp.Body.Close()
	}
	status := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, apiURL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1 // connection cut: what an unrecovered panic looks like
		}
		defer resp.Body.Close()
		if path == "/deadline" && resp.StatusCode == 200 {
			var buf [64]byte
			n, _ := resp.Body.Read(buf[:])
			if strings.Contains(string(buf[:n]), "true") {
				return 1
			}
			return 0
		}
		return resp.StatusCode
	}
	big := strings.Repeat("x", 4<<10)

	probes := []struct {
		fix        fixes.Name
		probe      func() int
		on, off    int
		whatOnMean string
	}{
		{fixes.Timeouts, func() int { return status("GET", "/deadline", "") }, 1, 0, "requests carry a deadline"},
		{fixes.BodyLimit, func() int { return status("POST", "/echo", big) }, 413, 200, "oversized bodies are refused"},
		{fixes.Recovery, func() int { return status("GET", "/panic", "") }, 500, -1, "a panic answers 500"},
		{fixes.Probes, func() int { return status("GET", "/livez", "") }, 200, 503, "liveness ignores the database"},
		{fixes.RateLimit, func() int { status("GET", "/limited", ""); return status("GET", "/limited", "") }, 429, 204, "a client over budget gets 429"},
		{fixes.Shedding, func() int {
			go status("GET", "/hold", "")
			select {
			case <-held:
			case <-time.After(10 * time.Second):
				return -2 // /hold never entered: no slot was taken
			}
			defer func() { hold <- struct{}{} }()
			return status("GET", "/deadline", "") // any route: the one slot is taken
		}, 503, 1, "excess concurrency is shed"},
	}
	for _, p := range probes {
		t.Run(string(p.fix), func(t *testing.T) {
			set("resilient")
			if got := p.probe(); got != p.on {
				t.Fatalf("on: got %d, want %d (%s)", got, p.on, p.whatOnMean)
			}
			set("resilient,-" + string(p.fix))
			if got := p.probe(); got != p.off {
				t.Fatalf("off: got %d, want %d", got, p.off)
			}
			set("resilient")
			if got := p.probe(); got != p.on {
				t.Fatalf("on again: got %d, want %d", got, p.on)
			}
		})
	}
}
