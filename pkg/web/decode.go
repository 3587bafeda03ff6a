package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Validator is implemented by request types: Valid returns the problems by
// field, or an empty map when the request can be acted on.
type Validator interface {
	Valid(ctx context.Context) map[string]string
}

// Decode reads one JSON object from the request body into a T and validates
// it. Every way a body can be wrong is a client error: malformed JSON, a wrong
// type, an unknown field or trailing data is a 400, a body over the cap
// (fix: body_limit, see package server) is a 413, and a failed validation is a
// 400 with the problems by field.
func Decode[T Validator](c *gin.Context) (T, error) {
	var v T
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return v, errTooLarge
		}
		return v, NewError(http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")
	}
	if problems := v.Valid(c.Request.Context()); len(problems) > 0 {
		return v, Invalid(problems)
	}
	return v, nil
}

var errTooLarge = NewError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is too large")

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case tooLarge(err):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return NewError(http.StatusBadRequest, "invalid_json", "the request body is empty")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return NewError(http.StatusBadRequest, "invalid_json", "the request body is not valid JSON")
	case errors.As(err, &typ):
		return NewError(http.StatusBadRequest, "invalid_json", fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type))
	default:
		// Unknown fields and the other errors encoding/json words for people.
		return NewError(http.StatusBadRequest, "invalid_json", err.Error())
	}
}
