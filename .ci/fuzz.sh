#!/bin/sh
# Bounded fuzzing of the rseq scan parsers (about 40 s in all). Any crash,
# hang or failed invariant makes go test, and so this script, exit
# non-zero; the failing input is written under scan/testdata/fuzz/.
set -eu
cd "$(dirname "$0")/.."
go test ./scan -run '^$' -fuzz '^FuzzScan$' -fuzztime "${FUZZTIME_SCAN:-30s}" -fuzzminimizetime 1s
go test ./scan -run '^$' -fuzz '^FuzzParseMaps$' -fuzztime "${FUZZTIME_MAPS:-10s}" -fuzzminimizetime 1s
