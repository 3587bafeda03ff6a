// Package loadtest will hold the open-model load generator and the outage
// replay (issue #6). Only its place in the layout exists yet; nothing here runs.
package loadtest
