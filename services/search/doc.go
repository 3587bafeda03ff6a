// Package search will be Stampede's search service: the product catalog and
// its full-text search (issue #4). Only its place in the layout exists yet;
// nothing here runs.
package search
