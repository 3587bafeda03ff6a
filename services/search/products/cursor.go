package products

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// Cursor is where a page ended: the keyset (rank, id) of its last row, in the
// mode the first page was matched in. Keyset pagination never skips or
// repeats a row when rows are inserted between pages, as OFFSET does.
type Cursor struct {
	Mode Mode    `json:"m"`
	Rank float32 `json:"r,omitempty"`
	ID   int64   `json:"i"`
	Key  string  `json:"k"` // hash of the query it belongs to
}

// ErrBadCursor is a cursor that was not made by this service for this query.
var ErrBadCursor = errors.New("products: invalid cursor")

// Cursors encodes cursors as opaque, signed strings: base64url(JSON) "."
// base64url(HMAC-SHA256), so a client can neither read meaning into them nor
// forge one that makes the database do something unexpected.
type Cursors struct{ key []byte }

// NewCursors signs with secret.
func NewCursors(secret string) Cursors { return Cursors{key: []byte(secret)} }

func (c Cursors) sign(payload string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func queryHash(q Query) string {
	h := sha256.Sum256([]byte(q.key()))
	return base64.RawURLEncoding.EncodeToString(h[:9])
}

// Encode returns the opaque form of cur for query q.
func (c Cursors) Encode(cur Cursor, q Query) string {
	cur.Key = queryHash(q)
	b, _ := json.Marshal(cur) // a struct of plain fields cannot fail to encode
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + c.sign(payload)
}

// Decode checks and reads a cursor of query q.
func (c Cursors) Decode(s string, q Query) (*Cursor, error) {
	payload, sig, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(c.sign(payload))) {
		return nil, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, ErrBadCursor
	}
	var cur Cursor
	if err := json.Unmarshal(b, &cur); err != nil || cur.Key != queryHash(q) {
		return nil, ErrBadCursor
	}
	switch cur.Mode {
	case ModeList, ModeText, ModeTrigram:
		return &cur, nil
	}
	return nil, ErrBadCursor
}
