// Package migrations embeds the order service's schema, applied at start.
package migrations

import "embed"

// FS holds the numbered up/down SQL files.
//
//go:embed *.sql
var FS embed.FS
