package main

import (
	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/config"
)

// Config is the order service's configuration, read once at start.
type Config struct {
	config.Common
	JWTSecret        config.Secret // verifies the user service's tokens
	UserServiceURL   string
	SearchServiceURL string
}

func loadConfig(getenv func(string) string) (Config, error) {
	e := config.New(getenv)
	c := Config{
		Common:           config.LoadCommon(e, "order", ":8083", ":9083"),
		JWTSecret:        e.Secret("JWT_SECRET", auth.DevSecret),
		UserServiceURL:   e.DevDefault("USER_SERVICE_URL", "http://127.0.0.1:8081"),
		SearchServiceURL: e.DevDefault("SEARCH_SERVICE_URL", "http://127.0.0.1:8082"),
	}
	e.URL("USER_SERVICE_URL", c.UserServiceURL, "http", "https")
	e.URL("SEARCH_SERVICE_URL", c.SearchServiceURL, "http", "https")
	return c, e.Err()
}
