package main

import (
	"time"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/config"
)

// Config is the user service's configuration, read once at start.
type Config struct {
	config.Common
	JWTSecret  config.Secret
	TokenTTL   time.Duration
	BcryptCost int
	ProfileTTL time.Duration
	// Per-client budgets of the rate_limit fix (requests per second).
	LoginRate  int
	DetailRate int
}

func loadConfig(getenv func(string) string) (Config, error) {
	e := config.New(getenv)
	c := Config{
		Common:     config.LoadCommon(e, "user", ":8081", ":9081"),
		JWTSecret:  e.Secret("JWT_SECRET", auth.DevSecret),
		TokenTTL:   e.Duration("TOKEN_TTL", time.Hour),
		BcryptCost: e.Int("BCRYPT_COST", 10, 4, 14),
		ProfileTTL: e.Duration("PROFILE_CACHE_TTL", 5*time.Minute),
		LoginRate:  e.Int("LOGIN_RATE_PER_SECOND", 10, 1, 100000),
		DetailRate: e.Int("DETAIL_RATE_PER_SECOND", 100, 1, 100000),
	}
	if n := len(c.JWTSecret.Reveal()); e.Err() == nil && n < 32 && e.Production() {
		return c, &config.Error{Var: "JWT_SECRET", Problem: "must be at least 32 bytes in production"}
	}
	return c, e.Err()
}
