#!/bin/sh
# Bounded fuzzing of the rseq scan parsers (about half a minute on a 2-core
# machine). Any crash, hang or failed invariant makes go test, and so this
# script, exit non-zero; the failing input is written under
# scan/testdata/fuzz/.
#
# The budgets are execution counts, not durations: with a duration, Go 1.26's
# fuzz coordinator can report "context deadline exceeded" as a failure when
# the time runs out while a worker is busy (golang/go#75804, fixed in Go
# 1.27).
set -eu
cd "$(dirname "$0")/.."
go test ./scan -run '^$' -fuzz '^FuzzScan$' -fuzztime "${FUZZTIME_SCAN:-200000x}" -fuzzminimizetime 200x
go test ./scan -run '^$' -fuzz '^FuzzParseMaps$' -fuzztime "${FUZZTIME_MAPS:-200000x}" -fuzzminimizetime 200x
