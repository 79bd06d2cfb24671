#!/usr/bin/env bash
# chromium.sh - headless Chromium for Tidemark's browser tests, from the
# distribution's own packages (Debian's `chromium`; no download from Google,
# no Docker, no npm).
#
#   chromium.sh install   install the package if no Chromium is found (needs
#                         root or sudo; runs `apt-get update` once), then
#                         print TIDEMARK_CHROMIUM=/path/to/binary
#   chromium.sh path      print TIDEMARK_CHROMIUM=... if Chromium is installed
#                         (exit 3 when it is not)
#   chromium.sh version   print the browser's version
#
# The default command is install. Typical use, as for the broker:
#
#   export "$(bash scripts/browser/chromium.sh)"
#   TIDEMARK_ARTIFACTS=/tmp/artifacts go test -count=1 -run Browser -v \
#       ./examples/btc-pipeline/internal/dashboard/
#
# Environment:
#   TIDEMARK_CHROMIUM   a Chromium (or Chrome) binary to use instead of
#                       looking one up; install then only checks it runs
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# find prints the path of an installed Chromium, or nothing.
find_chromium() {
	if [[ -n ${TIDEMARK_CHROMIUM:-} ]]; then
		[[ -x $TIDEMARK_CHROMIUM ]] || die "TIDEMARK_CHROMIUM=$TIDEMARK_CHROMIUM is not an executable"
		printf '%s\n' "$TIDEMARK_CHROMIUM"
		return 0
	fi
	local c
	for c in chromium chromium-browser google-chrome-stable google-chrome; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 0
}

# check runs the browser once headless, so that a binary missing its
# libraries fails here rather than in the test.
check() {
	local bin=$1 v
	if ! v=$("$bin" --headless --no-sandbox --disable-gpu --version 2>/dev/null); then
		die "$bin does not run (missing libraries?)"
	fi
	log "using $v at $bin"
}

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "installing Chromium needs root or sudo"
	fi
}

cmd_install() {
	local bin
	bin=$(find_chromium)
	if [[ -z $bin ]]; then
		command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Chromium yourself and set TIDEMARK_CHROMIUM"
		log "installing Debian's chromium package (apt-get)"
		export DEBIAN_FRONTEND=noninteractive
		as_root apt-get update -qq >&2
		# fonts-liberation: readable text in the screenshots.
		as_root apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
		bin=$(find_chromium)
		[[ -n $bin ]] || die "the chromium package installed no chromium binary"
	fi
	check "$bin"
	printf 'TIDEMARK_CHROMIUM=%s\n' "$bin"
}

cmd_path() {
	local bin
	bin=$(find_chromium)
	if [[ -z $bin ]]; then
		log "Chromium is not installed (run: chromium.sh install)"
		exit 3
	fi
	printf 'TIDEMARK_CHROMIUM=%s\n' "$bin"
}

cmd_version() {
	local bin
	bin=$(find_chromium)
	[[ -n $bin ]] || die "Chromium is not installed (run: chromium.sh install)"
	"$bin" --headless --no-sandbox --disable-gpu --version
}

case ${1:-install} in
install) cmd_install ;;
path) cmd_path ;;
version) cmd_version ;;
-h | --help | help) usage ;;
*)
	usage
	exit 2
	;;
esac
