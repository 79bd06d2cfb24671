#!/usr/bin/env bash
# check.sh - compare the library's exported API with the last release's.
#
# The API of every release is committed as api/vX.Y.Z.txt (written by
# scripts/api/release.sh when releasing), so that the check needs neither a
# tag nor the history and works in any clone; the newest version's file is
# the last release's. internal/apidump writes an API as text, one feature a
# line (see its documentation); a line of the release's file that the
# working tree's API lacks is a feature removed or changed since, an
# incompatible change. The check prints every change, "-" removed or changed
# and "+" added, and fails when one is incompatible and CHANGELOG.md's
# "## Unreleased" section has no "### Breaking" heading that announces it.
# With no api/v*.txt it fails: there is always a release to compare with.
#
# It runs on the library's module at the root, outside the workspace
# (apidump runs its go commands with GOWORK=off).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export LC_ALL=C

release=$(ls api/v*.txt 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z $release ]]; then
	echo "api: no api/v*.txt: the last release's API is missing (scripts/api/release.sh writes it)" >&2
	exit 1
fi
version=$(basename "$release" .txt)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' "$release" | sort -u >"$tmp/old"
GOWORK=off go run ./internal/apidump | sort -u >"$tmp/new"
removed=$(comm -23 "$tmp/old" "$tmp/new")
added=$(comm -13 "$tmp/old" "$tmp/new")

echo "api: changes since $version ($release; - removed or changed, + added):"
{
	[[ -z $removed ]] || sed 's/^/- /' <<<"$removed"
	[[ -z $added ]] || sed 's/^/+ /' <<<"$added"
} | sort -s -t ' ' -k 2 | sed 's/^/  /' >"$tmp/changes"
if [[ -s $tmp/changes ]]; then
	cat "$tmp/changes"
else
	echo "  (none)"
fi
if [[ -z $removed ]]; then
	echo "api: no incompatible change since $version"
	exit 0
fi
n=$(wc -l <<<"$removed")
unreleased=$(awk '/^## /{on = ($0 ~ /^## Unreleased/)} on' CHANGELOG.md)
if grep -q '^### Breaking' <<<"$unreleased"; then
	echo "api: $n features of $version removed or changed, announced under Unreleased / Breaking in CHANGELOG.md"
	exit 0
fi
echo "api: $n features of $version removed or changed, which CHANGELOG.md does not announce (add them under \"## Unreleased\", \"### Breaking\"):" >&2
sed 's/^/  /' <<<"$removed" >&2
exit 1
