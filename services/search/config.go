package main

import (
	"github.com/stampede-shop/stampede/pkg/config"
)

// Config is the search service's configuration, read once at start.
type Config struct {
	config.Common
	// CursorSecret signs pagination cursors.
	CursorSecret config.Secret
	// SearchRate is the per-client budget of the rate_limit fix (requests per second).
	SearchRate int
	// InternalRate is the same for the shop's own services on /internal:
	// the order service looks up the price of every SKU it has not cached,
	// hundreds a second in a promotion, from one address.
	InternalRate int
}

func loadConfig(getenv func(string) string) (Config, error) {
	e := config.New(getenv)
	c := Config{
		Common:       config.LoadCommon(e, "search", ":8082", ":9082"),
		CursorSecret: e.Secret("CURSOR_SECRET", "dev-only-cursor-secret"),
		SearchRate:   e.Int("SEARCH_RATE_PER_SECOND", 200, 1, 1_000_000),
		InternalRate: e.Int("SEARCH_INTERNAL_RATE_PER_SECOND", 2000, 1, 1_000_000),
	}
	return c, e.Err()
}
