#!/usr/bin/env bash
# release.sh - write the exported API of a release of the library as
# api/VERSION.txt, the file scripts/api/check.sh compares the working tree
# with. Run it when releasing, on the commit that is tagged:
#
#	bash scripts/api/release.sh v0.2.0          # the API of HEAD
#	bash scripts/api/release.sh v0.1.0 0b802db  # of a past commit
#
# It extracts the commit into a temporary directory (git archive: no tag,
# no worktree needed) and dumps its API with internal/apidump of the
# working tree, the dumper check.sh uses, so that both files are written
# alike. After a change of internal/apidump's output, run it again for the
# file of the last release (its commit is in its first line).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ $# -lt 1 || $# -gt 2 || ! $1 =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	echo "usage: release.sh vX.Y.Z [commit]" >&2
	exit 2
fi
version=$1
commit=$(git rev-parse --verify "${2:-HEAD}^{commit}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$commit" | tar -x -C "$tmp"
out=api/$version.txt
mkdir -p api
{
	echo "# The exported API of github.com/tidemark-go/tidemark $version (commit ${commit:0:12}),"
	echo "# one feature a line, as internal/apidump writes it: scripts/api/release.sh"
	echo "# wrote it, scripts/api/check.sh compares the working tree's API with it."
	GOWORK=off go run ./internal/apidump -C "$tmp"
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "api: wrote $out ($(grep -vc '^#' "$out") features of $version at ${commit:0:12})"
