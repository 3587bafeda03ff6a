package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/web"
	"github.com/stampede-shop/stampede/services/order/nats"
	"github.com/stampede-shop/stampede/services/order/orders"
)

func handlePlace(log *slog.Logger, svc *orders.Service, relay *nats.Relay, m *metrics) gin.HandlerFunc {
	render := func(o *orders.Order) orders.Reply {
		b, _ := json.Marshal(o) // plain fields: cannot fail
		return orders.Reply{Status: http.StatusCreated, Body: b}
	}
	return func(c *gin.Context) {
		key := c.GetHeader("Idempotency-Key")
		if problem := keyProblem(key); problem != "" {
			m.rejected.WithLabelValues("invalid").Inc()
			fail(c, log, web.Invalid(map[string]string{"Idempotency-Key": problem}))
			return
		}
		req, err := web.Decode[orders.Request](c)
		if err != nil {
			m.rejected.WithLabelValues("invalid").Inc()
			fail(c, log, err)
			return
		}
		reply, replayed, err := svc.Place(c.Request.Context(), auth.UserID(c), key, req, render)
		if err != nil {
			m.rejected.WithLabelValues(fail(c, log, err)).Inc()
			return
		}
		if replayed {
			c.Header("Idempotent-Replayed", "true")
		} else {
			m.created.Inc()
			relay.Nudge()
		}
		c.Data(reply.Status, "application/json; charset=utf-8", reply.Body)
	}
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "is required: one key per order you mean to place, reused on retries"
	case len(key) > orders.MaxKeyBytes:
		return "must be at most 255 bytes"
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return "must be printable ASCII without spaces"
		}
	}
	return ""
}

func handleGet(log *slog.Logger, svc *orders.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		o, stale, err := svc.Get(c.Request.Context(), auth.UserID(c), c.Param("id"))
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusOK, struct {
			orders.Order
			Stale bool `json:"stale,omitempty"`
		}{o, stale})
	}
}

type listPage struct {
	Items      []orders.Order `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func handleList(log *slog.Logger, svc *orders.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		limit := 20
		if s := c.Query("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 100 {
				fail(c, log, web.Invalid(map[string]string{"limit": "must be an integer from 1 to 100"}))
				return
			}
			limit = n
		}
		var before *orders.ListCursor
		if s := c.Query("cursor"); s != "" {
			// The cursor needs no signature: it only ever pages through the
			// caller's own orders. Its id must still be an order id as this
			// service writes one, or Postgres may refuse the comparison (a
			// 500, where the client deserves a 400).
			b, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil || json.Unmarshal(b, &before) != nil || !canonicalUUID(before.ID) || before.CreatedAt.IsZero() {
				fail(c, log, web.Invalid(map[string]string{"cursor": "is not a cursor"}))
				return
			}
		}
		list, err := svc.List(c.Request.Context(), auth.UserID(c), before, limit+1)
		if err != nil {
			fail(c, log, err)
			return
		}
		page := listPage{Items: list}
		if page.Items == nil {
			page.Items = []orders.Order{}
		}
		if len(list) > limit {
			last := list[limit-1]
			b, _ := json.Marshal(orders.ListCursor{CreatedAt: last.CreatedAt, ID: last.ID})
			page.Items, page.NextCursor = list[:limit], base64.RawURLEncoding.EncodeToString(b)
		}
		c.JSON(http.StatusOK, page)
	}
}

// canonicalUUID says whether s is a UUID in the one spelling this service
// writes (uuid.Parse also reads "urn:uuid:…", which Postgres does not).
func canonicalUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// fail maps the domain's errors to the JSON error shape, in one place, and
// returns the code it answered with (the rejection reason in the metrics).
func fail(c *gin.Context, log *slog.Logger, err error) string {
	// A dependency's 5xx or 429 is an *httpclient.UnavailableError, which
	// web.Abort answers as a 503 with Retry-After (web.Overload).
	switch {
	case errors.Is(err, orders.ErrSoldOut):
		err = web.NewError(http.StatusConflict, "sold_out", "not enough stock left for this order")
	case errors.Is(err, orders.ErrNotFound):
		err = web.NewError(http.StatusNotFound, "not_found", "no such order")
	case errors.Is(err, orders.ErrUnknownProduct):
		err = web.NewError(http.StatusBadRequest, "unknown_product", "the order names a product that does not exist")
	case errors.Is(err, orders.ErrUnknownUser):
		err = web.NewError(http.StatusUnauthorized, "unknown_user", "the token's user does not exist")
	case errors.Is(err, orders.ErrKeyReused):
		err = web.NewError(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different order")
	case errors.Is(err, orders.ErrInProgress):
		err = &web.Error{Status: http.StatusConflict, Code: "request_in_progress", Message: "an order with this Idempotency-Key is being placed", RetryAfter: time.Second}
	}
	web.Abort(c, log, err)
	var we *web.Error
	var ol web.Overload
	switch {
	case errors.As(err, &we):
		return we.Code
	case errors.As(err, &ol):
		return ol.Code()
	}
	return "internal"
}
