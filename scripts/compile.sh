#!/usr/bin/env bash
# Runs `go build -v` with the arguments given and counts the packages as Go
# compiles them: a machine's first `make replay` compiles some 620 packages,
# one to three minutes on two cores, and a count that moves says it is not
# stuck. With everything up to date it prints nothing. Go's other lines (a
# module fetched, an error) pass through as they are, and its exit status is
# the script's.
set -euo pipefail
live=0
[ -t 1 ] && live=1
"${GO:-go}" build -v "$@" 2>&1 | awk -v live="$live" '
  /^[^ :]+$/ { n++; if (live) printf "\r  %d packages compiled", n; next } # a package: its import path
  { if (live && n) printf "\n"; print }
  END { if (n) printf "%s  %d packages compiled\n", (live ? "\r" : ""), n }'
