#!/usr/bin/env bash
# pg.sh - a throwaway PostgreSQL server for Tidemark's integration tier and
# benchmarks (FerretDB's PostgreSQL backend), run from Debian's postgresql
# package as a private cluster on 127.0.0.1 (no Docker, no system service).
#
#   pg.sh install              install Debian's postgresql package if initdb/pg_ctl
#                              are missing (apt-get; needs root)
#   pg.sh start                install if needed, initdb, start, wait until ready;
#                              prints TIDEMARK_POSTGRES_URL=postgres://...
#   pg.sh stop [--keep]        fast shutdown (30 s), then immediate, then SIGKILL;
#                              removes the state dir unless --keep (a later start
#                              then reuses it)
#   pg.sh status               running or not (exit 0 / 3)
#   pg.sh psql ARGS            run psql against the server, e.g. `psql -c 'SELECT 1'`
#
# Environment:
#   TIDEMARK_POSTGRES_PORT           TCP port on 127.0.0.1 (default 35432)
#   TIDEMARK_POSTGRES_STATE_DIR      data/log/socket dir (default ${TMPDIR:-/tmp}/tidemark-postgres-PORT)
#   TIDEMARK_POSTGRES_RUN_AS         system user that runs the server when started as
#                                    root, which PostgreSQL refuses (default postgres,
#                                    else nobody)
#   TIDEMARK_POSTGRES_BIN            directory of initdb/pg_ctl (default: the newest
#                                    /usr/lib/postgresql/*/bin, else PATH)
#   TIDEMARK_POSTGRES_START_TIMEOUT  seconds to wait for readiness (default 60)
#   TIDEMARK_POSTGRES_SETTINGS       extra postgresql.conf lines, separated by ';'
#                                    (e.g. "synchronous_commit=off;shared_buffers=256MB")
set -euo pipefail

readonly DB_USER=tidemark
readonly DB_NAME=tidemark

PORT=${TIDEMARK_POSTGRES_PORT:-35432}
STATE_DIR=${TIDEMARK_POSTGRES_STATE_DIR:-${TMPDIR:-/tmp}/tidemark-postgres-$PORT}
START_TIMEOUT=${TIDEMARK_POSTGRES_START_TIMEOUT:-60}
SETTINGS=${TIDEMARK_POSTGRES_SETTINGS:-}
readonly PORT STATE_DIR START_TIMEOUT SETTINGS

readonly DATA_DIR="$STATE_DIR/data"
readonly LOG_FILE="$STATE_DIR/postgres.log"
readonly SOCKET_DIR="$STATE_DIR"
readonly KEEP_MARK="$STATE_DIR/.keep"
readonly URL="postgres://$DB_USER@127.0.0.1:$PORT/$DB_NAME?sslmode=disable"

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# ---------------------------------------------------------------- binaries

BIN=
# find_bin sets BIN to a directory holding initdb, pg_ctl and postgres, or fails.
find_bin() {
	local d
	if [[ -n ${TIDEMARK_POSTGRES_BIN:-} ]]; then
		[[ -x $TIDEMARK_POSTGRES_BIN/pg_ctl ]] || die "no pg_ctl in TIDEMARK_POSTGRES_BIN=$TIDEMARK_POSTGRES_BIN"
		BIN=$TIDEMARK_POSTGRES_BIN
		return 0
	fi
	# Debian keeps the server binaries out of PATH, one directory per major
	# version; take the newest.
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4,4nr); do
		if [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]]; then
			BIN=$d
			return 0
		fi
	done
	if d=$(command -v pg_ctl 2>/dev/null); then
		d=$(dirname -- "$(readlink -f -- "$d")")
		if [[ -x $d/initdb && -x $d/postgres ]]; then
			BIN=$d
			return 0
		fi
	fi
	return 1
}

cmd_install() {
	if find_bin; then
		return 0
	fi
	[[ $(id -u) == 0 ]] || die "PostgreSQL is not installed and installing it needs root: apt-get install postgresql"
	command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get (set TIDEMARK_POSTGRES_BIN)"
	log "installing Debian's postgresql package with apt-get"
	# The package's own cluster (port 5432) is of no concern here: ours runs
	# on its own port and data directory.
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
		>"${TMPDIR:-/tmp}/tidemark-postgres-apt.log" 2>&1; then
		log "apt-get install failed; retrying after apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update >>"${TMPDIR:-/tmp}/tidemark-postgres-apt.log" 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
			>>"${TMPDIR:-/tmp}/tidemark-postgres-apt.log" 2>&1 ||
			{
				tail -n 30 "${TMPDIR:-/tmp}/tidemark-postgres-apt.log" >&2
				die "apt-get install postgresql failed"
			}
	fi
	find_bin || die "postgresql installed, but no initdb/pg_ctl found under /usr/lib/postgresql"
}

# ---------------------------------------------------------------- helpers

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# RUN_AS is the user the server runs as: empty for the current user.
RUN_AS=
pick_user() {
	if [[ $(id -u) != 0 ]]; then
		RUN_AS=
		return 0
	fi
	if [[ -n ${TIDEMARK_POSTGRES_RUN_AS:-} ]]; then
		RUN_AS=$TIDEMARK_POSTGRES_RUN_AS
	elif id postgres >/dev/null 2>&1; then
		RUN_AS=postgres
	else
		RUN_AS=nobody
	fi
	id "$RUN_AS" >/dev/null 2>&1 || die "user $RUN_AS does not exist (set TIDEMARK_POSTGRES_RUN_AS)"
	[[ $(id -u "$RUN_AS") != 0 ]] || die "PostgreSQL refuses to run as root; set TIDEMARK_POSTGRES_RUN_AS to another user"
}

# as_user CMD ARGS... runs a command as RUN_AS (or the current user).
as_user() {
	if [[ -z $RUN_AS ]]; then
		"$@"
	elif command -v runuser >/dev/null; then
		runuser -u "$RUN_AS" -- "$@"
	else
		local q
		printf -v q '%q ' "$@"
		su -s /bin/sh "$RUN_AS" -c "$q"
	fi
}

# server_pid prints the postmaster's pid if it is alive, else fails. It
# checks the process's data directory so a recycled pid is never mistaken
# for it.
server_pid() {
	[[ -f $DATA_DIR/postmaster.pid ]] || return 1
	local pid
	pid=$(head -n 1 "$DATA_DIR/postmaster.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DATA_DIR" || return 1
	fi
	printf '%s\n' "$pid"
}

ready() {
	"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -t 2 2>/dev/null
}

show_log_tail() {
	if [[ -s $LOG_FILE ]]; then
		printf -- '----- tail of %s -----\n' "$LOG_FILE" >&2
		tail -n 40 "$LOG_FILE" >&2
	fi
}

init_cluster() {
	rm -rf "$STATE_DIR"
	mkdir -p "$STATE_DIR"
	chmod 700 "$STATE_DIR"
	if [[ -n $RUN_AS ]]; then
		chown "$RUN_AS": "$STATE_DIR"
	fi
	# The server user must reach the state dir (e.g. not under /root).
	as_user test -w "$STATE_DIR" ||
		die "user $RUN_AS cannot write $STATE_DIR; set TIDEMARK_POSTGRES_STATE_DIR (or TMPDIR) to a directory it can reach"
	log "initdb $DATA_DIR (PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), user ${RUN_AS:-$(id -un)})"
	# FerretDB needs UTF8 and the C (or en_US.UTF8) locale; trust
	# authentication is fine for a server that listens on loopback only.
	if ! as_user "$BIN/initdb" -D "$DATA_DIR" -U "$DB_USER" --auth=trust \
		--encoding=UTF8 --locale=C --no-sync >"$STATE_DIR/initdb.out" 2>&1; then
		cat "$STATE_DIR/initdb.out" >&2
		die "initdb failed"
	fi
	{
		echo "# Generated by scripts/postgres/pg.sh - private cluster for tests."
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $PORT"
		echo "unix_socket_directories = '$SOCKET_DIR'"
		echo "max_connections = 200"
		echo "logging_collector = off"
		echo "log_min_messages = warning"
		local s
		IFS=';' read -ra extra <<<"$SETTINGS"
		for s in "${extra[@]}"; do
			[[ -n ${s// /} ]] && echo "$s"
		done
	} >>"$DATA_DIR/postgresql.conf"
}

# ---------------------------------------------------------------- commands

cmd_start() {
	cmd_install
	pick_user
	local pid
	if pid=$(server_pid); then
		if ready; then
			log "already running (pid $pid)"
			echo "TIDEMARK_POSTGRES_URL=$URL"
			return 0
		fi
		die "server pid $pid is alive but not ready on port $PORT; run '$0 stop' first"
	fi
	port_open "$PORT" && die "port $PORT on 127.0.0.1 is already in use by something else"

	# Reuse the data only after an explicit `stop --keep`; anything else left
	# over (a crash, an older run) is wiped for a clean, reproducible server.
	if [[ -f $KEEP_MARK && -f $DATA_DIR/PG_VERSION ]]; then
		log "reusing kept state in $STATE_DIR"
		rm -f "$KEEP_MARK" "$DATA_DIR/postmaster.pid"
	else
		init_cluster
	fi

	log "starting PostgreSQL on 127.0.0.1:$PORT (state $STATE_DIR)"
	if ! as_user "$BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$START_TIMEOUT" start >"$STATE_DIR/pg_ctl.out" 2>&1; then
		cat "$STATE_DIR/pg_ctl.out" >&2
		show_log_tail
		cmd_stop >/dev/null 2>&1 || true
		die "server did not start within ${START_TIMEOUT}s"
	fi
	local deadline=$((SECONDS + START_TIMEOUT))
	until ready; do
		if ! server_pid >/dev/null; then
			show_log_tail
			die "server exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			show_log_tail
			cmd_stop >/dev/null 2>&1 || true
			die "server not ready within ${START_TIMEOUT}s"
		fi
		sleep 0.25
	done
	if [[ -z $("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -XAtq \
		-c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
		"$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" "$DB_NAME" || die "createdb $DB_NAME failed"
	fi
	log "ready (pid $(server_pid))"
	echo "TIDEMARK_POSTGRES_URL=$URL"
}

cmd_stop() {
	local keep=0
	if [[ ${1:-} == --keep ]]; then keep=1; fi
	local pid
	if pid=$(server_pid); then
		find_bin || true
		pick_user
		log "stopping server (pid $pid)"
		if [[ -z $BIN ]] || ! as_user "$BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1; then
			log "fast shutdown failed; immediate shutdown"
			kill -QUIT "$pid" 2>/dev/null || true
			local i
			for ((i = 0; i < 40; i++)); do # 10 s
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.25
			done
			if kill -0 "$pid" 2>/dev/null; then
				log "server ignored SIGQUIT; sending SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
	else
		log "server not running"
	fi
	if ((keep)); then
		if [[ -d $DATA_DIR ]]; then
			touch "$KEEP_MARK"
			log "kept state in $STATE_DIR"
		fi
	else
		rm -rf "$STATE_DIR"
	fi
}

cmd_status() {
	local pid
	if pid=$(server_pid); then
		if find_bin && ready; then
			echo "running pid=$pid TIDEMARK_POSTGRES_URL=$URL state=$STATE_DIR"
		else
			echo "starting pid=$pid (not ready on port $PORT yet) state=$STATE_DIR"
		fi
		return 0
	fi
	echo "stopped (port $PORT, state $STATE_DIR)"
	return 3
}

cmd_psql() {
	find_bin || die "PostgreSQL is not installed (run '$0 install')"
	exec "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" -X "$@"
}

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	install) cmd_install ;;
	start) cmd_start ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status ;;
	psql) cmd_psql "$@" ;;
	-h | --help | help)
		usage
		;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
