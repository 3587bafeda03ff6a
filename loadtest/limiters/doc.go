// Package limiters puts Stampede's adaptive shedder side by side with the
// public libraries it learns from — failsafe-go's adaptive limiter and
// go-zero's adaptive shedder — on the same simulated overload
// (pkg/resilience/overload). The comparison lives in this module so that the
// services never link those libraries.
package limiters

import (
	"context"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/zeromicro/go-zero/core/load"

	"github.com/stampede-shop/stampede/pkg/resilience"
)

// Stampede adapts resilience.Shedder.
type Stampede struct{ *resilience.Shedder }

// Admit implements overload.Admission.
func (s Stampede) Admit(ctx context.Context) (func(), bool) {
	p, err := s.Acquire(ctx, resilience.Sheddable)
	if err != nil {
		return nil, false
	}
	return p.Release, true
}

// Failsafe adapts failsafe-go's adaptive limiter, with queueing so that it
// too can hold a request briefly rather than refuse it.
type Failsafe struct {
	L adaptivelimiter.AdaptiveLimiter[any]
}

// NewFailsafe returns failsafe-go's limiter with its defaults, queueing, and
// the same 5 ms maximum wait as Stampede's queue.
func NewFailsafe() Failsafe {
	return Failsafe{adaptivelimiter.NewBuilder[any]().WithQueueing(2, 3).WithMaxWaitTime(5 * time.Millisecond).Build()}
}

// Admit implements overload.Admission.
func (f Failsafe) Admit(ctx context.Context) (func(), bool) {
	p, err := f.L.AcquirePermit(ctx)
	if err != nil {
		return nil, false
	}
	return p.Record, true
}

// GoZero adapts go-zero's adaptive shedder.
type GoZero struct{ S load.Shedder }

// NewGoZero returns go-zero's shedder with its defaults.
func NewGoZero() GoZero { return GoZero{load.NewAdaptiveShedder()} }

// Admit implements overload.Admission.
func (g GoZero) Admit(context.Context) (func(), bool) {
	p, err := g.S.Allow()
	if err != nil {
		return nil, false
	}
	return p.Pass, true
}
