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

// Get returns the cached profile of id, or a miss with a fill ticket.
func (p *Profiles) Get(ctx context.Context, id int64) (account.Profile, bool, string, error) {
	var prof account.Profile
	found, ticket, err := p.store.Lookup(ctx, key(id), &prof)
	return prof, found, string(ticket), err
}

// Fill caches prof unless it was invalidated since the Get that gave ticket.
func (p *Profiles) Fill(ctx context.Context, prof account.Profile, ticket string) error {
	_, err := p.store.Fill(ctx, key(prof.ID), prof, p.ttl, cache.Ticket(ticket))
	return err
}

// Invalidate drops the cached profile of id and voids outstanding tickets.
func (p *Profiles) Invalidate(ctx context.Context, id int64) error {
	return p.store.Invalidate(ctx, key(id))
}
