package resilience

import (
	"context"
	"errors"

	"github.com/stampede-shop/stampede/pkg/web"
)

// Outcome is what a call's error says about the health of the dependency.
type Outcome int

const (
	// Success: the dependency did its job — including answering "no such
	// thing" or "your request is wrong", which are the caller's problem.
	Success Outcome = iota
	// Failure: the dependency failed or was too slow (5xx, deadline exceeded,
	// connection refused). Failures trip breakers and may be retried.
	Failure
	// Ignore: the call says nothing about the dependency. A caller that
	// cancels (the client hung up) must not open a breaker for everyone.
	Ignore
)

// ClientError can be implemented by an error to say that the request, not
// the dependency, was at fault (a 404, a validation error).
type ClientError interface {
	ClientError() bool
}

// Classify is the default classifier.
func Classify(err error) Outcome {
	var ce ClientError
	var we *web.Error
	switch {
	case err == nil:
		return Success
	case errors.Is(err, context.Canceled):
		return Ignore
	case errors.Is(err, context.DeadlineExceeded):
		return Failure
	case errors.As(err, &ce) && ce.ClientError():
		return Success
	case errors.As(err, &we) && we.Status < 500:
		return Success
	default:
		return Failure
	}
}

// NotFound wraps err so that classifiers count it as a success: the
// dependency answered, the thing just is not there.
func NotFound(err error) error { return clientError{err} }

type clientError struct{ error }

func (clientError) ClientError() bool { return true }
func (e clientError) Unwrap() error   { return e.error }
