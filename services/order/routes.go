package main

import (
	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/platform"
	"github.com/stampede-shop/stampede/services/order/nats"
	"github.com/stampede-shop/stampede/services/order/orders"
)

// addRoutes is the whole API surface of the order service. The probes, the
// shared middleware (shedding first) and the admin listener come from
// package server.
func addRoutes(r *gin.Engine, p *platform.Platform, tokens *auth.Tokens, svc *orders.Service, relay *nats.Relay, m *metrics) {
	log := p.Log
	v1 := r.Group("/v1", tokens.Require(log))
	v1.POST("/orders", handlePlace(log, svc, relay, m))
	v1.GET("/orders/:id", handleGet(log, svc))
	v1.GET("/orders", handleList(log, svc))
}
