#!/usr/bin/env bash
# mutate.sh: the CI subset of the mutation tests (internal/mutate): a few
# planted bugs, one of each kind the review found survivors of, each of
# which the tests must kill. The full catalogue, arm64 mutants included
# (in qemu guests), is the documented command
#
#   go run ./internal/mutate             # every mutant, about an hour
#   go run ./internal/mutate -arch amd64 # the host's only
#
# Budget: about 3 minutes on the 2-core CI machine. Exits non-zero if a
# mutant survives or an entry no longer applies to the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
start=$(date +%s)
status=0
go run ./internal/mutate -ci "$@" || status=$?
echo "mutate.sh: $(($(date +%s) - start))s, exit $status"
exit $status
