package main

import (
	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/services/search/products"
)

// addRoutes is the whole API surface of the search service. The probes, the
// shared middleware and the admin listener come from package server.
func addRoutes(r *gin.Engine, p *platform.Platform, cfg Config, svc *products.Service) {
	log, board := p.Log, p.Board
	// Browsing is cheap for one client and ruinous for a scraper: a budget per
	// client IP, shared by every replica through Redis.
	limit := resilience.RateLimit(
		resilience.NewRedisLimiter(p.Redis, p.Config.RedisPrefix+"rate:search:", cfg.SearchRate, cfg.SearchRate, p.Observer),
		resilience.ByClientIP("search"), board, log)

	v1 := r.Group("/v1", limit)
	v1.GET("/products", handleSearch(log, svc))
	v1.GET("/products/:id", handleProduct(log, svc))
}
