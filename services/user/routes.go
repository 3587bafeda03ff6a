package main

import (
	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/services/user/account"
)

// addRoutes is the whole API surface of the user service. The probes, the
// shared middleware and the admin listener come from package server.
func addRoutes(r *gin.Engine, p *platform.Platform, cfg Config, svc *account.Service, tokens *auth.Tokens) {
	log, board := p.Log, p.Board
	// Budgets are shared by every replica through Redis (p.Limiter).
	// Login is where credential stuffing lands: a small budget per client IP.
	// A burst of the same size lets a person retry a typo without waiting.
	loginLimit := resilience.RateLimit(p.Limiter("login", cfg.LoginRate), resilience.ByClientIP("login"), board, log)
	detail := p.Limiter("detail", cfg.DetailRate)

	v1 := r.Group("/v1")
	v1.POST("/users", handleRegister(log, svc))
	v1.POST("/sessions", loginLimit, handleLogin(log, svc))
	v1.GET("/users/me", tokens.Require(log),
		resilience.RateLimit(detail, resilience.ByUserID("me", auth.UserID), board, log),
		handleMe(log, svc))

	// For other services (the order service checks its buyer here); the
	// gateway does not route /internal. Each calling client has a budget.
	r.GET("/internal/v1/users/:id",
		resilience.RateLimit(detail, resilience.ByClientIP("internal"), board, log),
		handleGetUser(log, svc))
}
