package httpclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/services/order/orders"
)

// Users asks the user service whether a buyer exists.
type Users struct {
	caller
	base  string
	cache *resilience.Fallback[bool]
}

// NewUsers calls the user service at base.
func NewUsers(base string, c *cache.Store, board *fixes.Board, obs *resilience.Observer) *Users {
	return &Users{caller: newCaller("user_service", 500*time.Millisecond, board, obs), base: base,
		cache: resilience.NewFallback[bool](c, time.Minute, 24*time.Hour, board, obs)}
}

// Exists returns nil for a known user and orders.ErrUnknownUser otherwise.
func (u *Users) Exists(ctx context.Context, userID int64) error {
	_, _, err := u.cache.Get(ctx, fmt.Sprintf("user:%d", userID), func(ctx context.Context) (bool, error) {
		var profile struct{ ID int64 }
		err := u.getJSON(ctx, fmt.Sprintf("%s/internal/v1/users/%d", u.base, userID), &profile)
		return err == nil, err
	})
	if errors.Is(err, errNotFound) {
		return orders.ErrUnknownUser
	}
	return err
}

// Catalog asks the search service for prices.
type Catalog struct {
	caller
	base  string
	cache *resilience.Fallback[int64]
}

// NewCatalog calls the search service at base.
func NewCatalog(base string, c *cache.Store, board *fixes.Board, obs *resilience.Observer) *Catalog {
	return &Catalog{caller: newCaller("search_service", 500*time.Millisecond, board, obs), base: base,
		cache: resilience.NewFallback[int64](c, time.Minute, 24*time.Hour, board, obs)}
}

// Price returns a product's price in cents.
func (c *Catalog) Price(ctx context.Context, productID int64) (int64, error) {
	price, _, err := c.cache.Get(ctx, fmt.Sprintf("price:%d", productID), func(ctx context.Context) (int64, error) {
		var p struct {
			PriceCents int64 `json:"price_cents"`
		}
		err := c.getJSON(ctx, fmt.Sprintf("%s/internal/v1/products/%d", c.base, productID), &p)
		return p.PriceCents, err
	})
	if errors.Is(err, errNotFound) {
		return 0, orders.ErrUnknownProduct
	}
	return price, err
}
