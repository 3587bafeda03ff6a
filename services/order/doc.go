// Package order will be Stampede's order service, where the promotion outage
// happens: the flash-sale path in its naive and resilient forms (issue #5).
// Only its place in the layout exists yet; nothing here runs.
package order
