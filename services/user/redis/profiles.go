// Package redis is the user service's account.ProfileCache on Redis.
package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/services/user/account"
)

// Profiles caches profiles for ttl; writes to a user invalidate the entry.
type Profiles struct {
	store *cache.Store
	ttl   time.Duration
}

// NewProfiles returns a profile cache over store.
func NewProfiles(store *cache.Store, ttl time.Duration) *Profiles {
	return &Profiles{store: store, ttl: ttl}
}

var _ account.ProfileCache = (*Profiles)(nil)

func key(id int64) string { return "profile:" + strconv.FormatInt(id, 10) }

// Get returns the cached profile of id, if any.
func (p *Profiles) Get(ctx context.Context, id int64) (account.Profile, bool, error) {
	var prof account.Profile
	ok, err := p.store.Get(ctx, key(id), &prof)
	return prof, ok, err
}

// Set caches prof.
func (p *Profiles) Set(ctx context.Context, prof account.Profile) error {
	return p.store.Set(ctx, key(prof.ID), prof, p.ttl)
}

// Delete drops the cached profile of id.
func (p *Profiles) Delete(ctx context.Context, id int64) error {
	return p.store.Delete(ctx, key(id))
}
