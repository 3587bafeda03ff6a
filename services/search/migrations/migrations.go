// Package migrations embeds the search service's schema, applied at start.
package migrations

import "embed"

// FS holds the numbered up/down SQL files.
//
//go:embed *.sql
var FS embed.FS
