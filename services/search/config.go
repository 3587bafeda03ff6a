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
}

func loadConfig(getenv func(string) string) (Config, error) {
	e := config.New(getenv)
	c := Config{
		Common:       config.LoadCommon(e, "search", ":8082", ":9082"),
		CursorSecret: e.Secret("CURSOR_SECRET", "dev-only-cursor-secret"),
		SearchRate:   e.Int("SEARCH_RATE_PER_SECOND", 200, 1, 1_000_000),
	}
	return c, e.Err()
}
