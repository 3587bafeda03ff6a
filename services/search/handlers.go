package main

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/web"
	"github.com/stampede-shop/stampede/services/search/products"
)

// The answers carry "stale": true when served from the last good copy.
type (
	pageResponse struct {
		products.Page
		Stale bool `json:"stale,omitempty"`
	}
	productResponse struct {
		products.Product
		Stale bool `json:"stale,omitempty"`
	}
)

func handleSearch(log *slog.Logger, svc *products.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, problems := products.ParseQuery(c.Request.URL.Query())
		if len(problems) > 0 {
			fail(c, log, web.Invalid(problems))
			return
		}
		page, isStale, err := svc.Search(c.Request.Context(), q)
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusOK, pageResponse{page, isStale})
	}
}

func handleProduct(log *slog.Logger, svc *products.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := strconv.ParseInt(c.Param("id"), 10, 64)
		if err != nil || id <= 0 {
			fail(c, log, web.Invalid(map[string]string{"id": "must be a positive integer"}))
			return
		}
		p, isStale, err := svc.Product(c.Request.Context(), id)
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusOK, productResponse{p, isStale})
	}
}

// fail maps the domain's errors to the JSON error shape, in one place.
func fail(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, products.ErrNotFound):
		err = web.NewError(http.StatusNotFound, "not_found", "no such product")
	case errors.Is(err, products.ErrBadCursor):
		err = web.Invalid(map[string]string{"cursor": "is not a cursor of this query"})
	}
	web.Abort(c, log, err)
}
