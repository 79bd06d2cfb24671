#!/usr/bin/env bash
# check.sh - compare the module's public API with the last release tag.
#
# Uses apidiff (golang.org/x/exp/cmd/apidiff, pinned below, fetched by
# `go run` from the module proxy). With no release tag yet there is nothing to
# compare and the check passes, saying so. Otherwise it prints every change of
# the exported API since the tag, and fails when one is incompatible and
# CHANGELOG.md's "## Unreleased" section has no "### Breaking" heading that
# announces it.
#
# Environment: APIDIFF, a command to use instead of the pinned `go run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

readonly APIDIFF_VERSION=v0.0.0-20261113113407-e3970619a1a4
APIDIFF=${APIDIFF:-"go run golang.org/x/exp/cmd/apidiff@$APIDIFF_VERSION"}

tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
if [[ -z $tag ]]; then
	echo "api: no release tag yet, nothing to compare with"
	exit 0
fi
mod=$(go list -m)
tmp=$(mktemp -d)
cleanup() {
	git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --detach -q "$tmp/old" "$tag"
# apidiff says on stderr which internal packages it skips, as it should.
quiet() { "$@" 2> >(grep -v '^Ignoring internal package' >&2); }
(cd "$tmp/old" && quiet $APIDIFF -m -w "$tmp/old.api" "$mod")
all=$(quiet $APIDIFF -m "$tmp/old.api" "$mod")
incompatible=$(quiet $APIDIFF -m -incompatible "$tmp/old.api" "$mod")
echo "api: changes since $tag:"
echo "${all:-  (none)}"
if [[ -z $incompatible ]]; then
	echo "api: no incompatible change since $tag"
	exit 0
fi
unreleased=$(awk '/^## /{on = ($0 ~ /^## Unreleased/)} on' CHANGELOG.md)
if grep -q '^### Breaking' <<<"$unreleased"; then
	echo "api: incompatible changes since $tag, announced under Unreleased / Breaking in CHANGELOG.md"
	exit 0
fi
echo "api: incompatible changes since $tag that CHANGELOG.md does not announce (add them under \"## Unreleased\", \"### Breaking\"):" >&2
echo "$incompatible" >&2
exit 1
