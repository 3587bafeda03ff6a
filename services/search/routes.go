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
	// client IP, shared by every replica through Redis (p.Limiter).
	limit := resilience.RateLimit(p.Limiter("search", cfg.SearchRate), resilience.ByClientIP("search"), board, log)

	v1 := r.Group("/v1", limit)
	v1.GET("/products", handleSearch(log, svc))
	v1.GET("/products/:id", handleProduct(log, svc))

	// For other services (the order service's price lookups); the gateway
	// does not route /internal. Each calling service has a budget of its
	// own, ten times a browser's by default: a caller that must ask for a
	// price before it can sell is not a scraper, but a runaway one must still
	// not take the catalog down.
	internal := resilience.RateLimit(p.Limiter("search-internal", cfg.InternalRate), resilience.ByClientIP("internal"), board, log)
	r.GET("/internal/v1/products/:id", internal, handleProduct(log, svc))
}
