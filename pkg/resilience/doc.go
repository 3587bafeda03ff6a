// Package resilience holds the policies that keep a Stampede service up under
// load: limiters, and the Gin adapters that put them in front of handlers.
// Each policy is a small interface with no knowledge of HTTP; only its
// adapter speaks Gin. Every policy acts only while its fix switch is on (see
// package fixes), and says so with a "// fix: <name>" comment where it acts.
//
// See README.md beside this file for when to use each policy, its defaults
// and the measurements behind them.
package resilience
