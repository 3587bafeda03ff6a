package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

// PanicError is a panic caught in a goroutine started with Go.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Go runs fn in a new goroutine and delivers its error on the returned
// channel (buffered, so an abandoned result never leaks the goroutine).
//
// Gin's recovery only covers the handler's own goroutine: a panic in a
// goroutine the handler starts kills the whole process, every request in
// flight with it. With the recovery fix on, such a panic becomes a
// *PanicError (stack in the log) that the handler returns like any error.
func Go(ctx context.Context, log *slog.Logger, board *fixes.Board, fn func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	recovering := board.On(fixes.Recovery)
	go func() {
		if recovering {
			// fix: recovery — a panic here is an error, not the end of the process.
			defer func() {
				if p := recover(); p != nil {
					pe := &PanicError{Value: p, Stack: debug.Stack()}
					log.ErrorContext(ctx, "panic recovered in goroutine", "panic", fmt.Sprint(p), "stack", string(pe.Stack))
					done <- pe
				}
			}()
		}
		done <- fn(ctx)
	}()
	return done
}
