#!/usr/bin/env bash
# broker.sh - a throwaway single-node Apache Kafka (KRaft) broker for
# Tidemark's integration tier, run straight from the official jars on
# Maven Central (no Docker, no tarball download).
#
#   broker.sh fetch            resolve the broker's jars into the cache (Maven only)
#   broker.sh start            fetch if needed, format, start, wait until ready;
#                              prints TIDEMARK_KAFKA_BROKERS=127.0.0.1:PORT (with
#                              TIDEMARK_KAFKA_SECURITY=sasl_ssl, more: see below)
#   broker.sh stop [--keep]    SIGTERM, bounded wait, SIGKILL; removes the state
#                              dir unless --keep (a later start then reuses it)
#   broker.sh status           running or not (exit 0 / 3)
#   broker.sh tool CLASS ARGS  run a Kafka tool class on the broker's classpath,
#                              e.g. `tool org.apache.kafka.tools.TopicCommand
#                              --bootstrap-server 127.0.0.1:29092 --list`
#
# Environment:
#   TIDEMARK_KAFKA_PORT             PLAINTEXT port (default 29092: below Linux's
#                                   ephemeral range, 32768-60999, so that no
#                                   client socket or test listener on port 0
#                                   holds it by chance when the broker starts)
#   TIDEMARK_KAFKA_CONTROLLER_PORT  KRaft CONTROLLER port (default PORT+1)
#   TIDEMARK_CACHE                  jar cache root (default $HOME/.cache/tidemark)
#   TIDEMARK_KAFKA_STATE_DIR        data/log/pid dir (default ${TMPDIR:-/tmp}/tidemark-kafka-PORT)
#   TIDEMARK_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   TIDEMARK_KAFKA_HEAP             broker heap options (default "-Xms256m -Xmx512m")
#   JAVA_HOME / MVN                 which java / mvn to use
#   TIDEMARK_KAFKA_SECURITY         sasl_ssl: also listen with SASL over TLS and
#                                   SASL without TLS (default: PLAINTEXT only)
#   TIDEMARK_KAFKA_SASL_SSL_PORT    its SASL_SSL port (default PORT+2)
#   TIDEMARK_KAFKA_SASL_PLAINTEXT_PORT  its SASL_PLAINTEXT port (default PORT+3)
#
# With TIDEMARK_KAFKA_SECURITY=sasl_ssl, start generates a throwaway CA, a
# server certificate for 127.0.0.1 and a client certificate (openssl) and a
# random password into STATE_DIR/security, creates the user "tidemark" for
# PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and prints on the same line
#   TIDEMARK_KAFKA_SASL_SSL_BROKERS=127.0.0.1:PORT+2
#   TIDEMARK_KAFKA_SASL_PLAINTEXT_BROKERS=127.0.0.1:PORT+3
#   TIDEMARK_KAFKA_CA=.../ca.pem  TIDEMARK_KAFKA_CLIENT_CERT=...  TIDEMARK_KAFKA_CLIENT_KEY=...
#   TIDEMARK_KAFKA_SASL_USER=tidemark  TIDEMARK_KAFKA_SASL_PASSWORD=...
# (a test broker's secret: stdout is meant for `export`, not for a log).
set -euo pipefail

# Keep in step with <kafka.version> in pom.xml.
readonly KAFKA_VERSION=4.1.1

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/pom.xml"

PORT=${TIDEMARK_KAFKA_PORT:-29092}
CONTROLLER_PORT=${TIDEMARK_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
CACHE_ROOT=${TIDEMARK_CACHE:-$HOME/.cache/tidemark}
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
STATE_DIR=${TIDEMARK_KAFKA_STATE_DIR:-${TMPDIR:-/tmp}/tidemark-kafka-$PORT}
START_TIMEOUT=${TIDEMARK_KAFKA_START_TIMEOUT:-90}
HEAP=${TIDEMARK_KAFKA_HEAP:-"-Xms256m -Xmx512m"}
MVN=${MVN:-mvn}
if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
	JAVA="$JAVA_HOME/bin/java"
else
	JAVA=java
fi
SECURITY=${TIDEMARK_KAFKA_SECURITY:-}
SASL_SSL_PORT=${TIDEMARK_KAFKA_SASL_SSL_PORT:-$((PORT + 2))}
SASL_PLAINTEXT_PORT=${TIDEMARK_KAFKA_SASL_PLAINTEXT_PORT:-$((PORT + 3))}
case $SECURITY in
"" | none) SECURITY= ;;
sasl_ssl) ;;
*)
	printf 'broker.sh: error: TIDEMARK_KAFKA_SECURITY=%s: want sasl_ssl or nothing\n' "$SECURITY" >&2
	exit 2
	;;
esac
readonly PORT CONTROLLER_PORT CACHE_ROOT KAFKA_HOME LIBS STATE_DIR START_TIMEOUT HEAP MVN JAVA
readonly SASL_SSL_PORT SASL_PLAINTEXT_PORT

readonly PID_FILE="$STATE_DIR/broker.pid"
readonly CONFIG="$STATE_DIR/server.properties"
readonly DATA_DIR="$STATE_DIR/data"
readonly LOG_DIR="$STATE_DIR/logs"
readonly OUT_FILE="$STATE_DIR/broker.out"
readonly KEEP_MARK="$STATE_DIR/.keep"
readonly BROKERS="127.0.0.1:$PORT"
readonly SEC_DIR="$STATE_DIR/security"
readonly SASL_USER=tidemark

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# ---------------------------------------------------------------- fetch

# The stamp records which pom produced the jars, so editing pom.xml (e.g. a
# version bump) invalidates the cache.
pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() {
	[[ -f $LIBS/.complete ]] && [[ $(<"$LIBS/.complete") == "$(pom_digest)" ]]
}

cmd_fetch() {
	if fetched; then
		return 0
	fi
	command -v "$MVN" >/dev/null || die "mvn not found (set MVN or install Maven 3)"
	mkdir -p "$KAFKA_HOME"
	local tmp
	tmp=$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")
	log "resolving Kafka $KAFKA_VERSION jars with Maven into $LIBS"
	# Maven's output goes to a log, shown only on failure (Debian's mvn 3.8
	# prints stray ANSI resets even with -q -B).
	if ! "$MVN" -q -B -f "$POM" \
		dependency:copy-dependencies \
		-DincludeScope=runtime \
		-DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
		sed 's/\x1b\[[0-9;]*m//g' "$KAFKA_HOME/mvn.log" >&2
		rm -rf "$tmp"
		die "mvn dependency:copy-dependencies failed (log: $KAFKA_HOME/mvn.log)"
	fi
	compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null ||
		{
			rm -rf "$tmp"
			die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn (pom/KAFKA_VERSION out of step?)"
		}
	pom_digest >"$tmp/.complete"
	# Rename into place. If libs/ already exists it is either stale (another
	# pom) or the result of a concurrent fetch that won the race.
	if ! mv -T "$tmp" "$LIBS" 2>/dev/null; then
		if fetched; then
			rm -rf "$tmp"
		else
			rm -rf "$LIBS"
			mv -T "$tmp" "$LIBS"
		fi
	fi
	fetched || die "jar cache $LIBS is incomplete"
}

# ---------------------------------------------------------------- helpers

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# broker_pid prints the pid of our broker if it is alive, else fails.
# It checks the command line so a recycled pid is never mistaken for it.
broker_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONFIG" || return 1
	fi
	printf '%s\n' "$pid"
}

# run_tool [--timeout SECS] CLASS ARGS... runs a Kafka tool class on the
# broker's classpath with a quiet log4j config and fast-start JVM flags.
run_tool() {
	local -a prefix=()
	if [[ $1 == --timeout ]]; then
		prefix=(timeout "$2")
		shift 2
	fi
	local class=$1
	shift
	local cfg="$KAFKA_HOME/tools-log4j2.properties"
	if [[ ! -f $cfg ]]; then
		cat >"$cfg.$$" <<-'EOF'
			status = error
			appender.err.type = Console
			appender.err.name = STDERR
			appender.err.target = SYSTEM_ERR
			appender.err.layout.type = PatternLayout
			appender.err.layout.pattern = [%d] %p %m (%c)%n
			rootLogger.level = WARN
			rootLogger.appenderRef.err.ref = STDERR
		EOF
		mv "$cfg.$$" "$cfg"
	fi
	"${prefix[@]}" "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$cfg" -cp "$LIBS/*" "$class" "$@"
}

new_cluster_id() {
	# A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (22 chars),
	# which is what `kafka-storage random-uuid` prints, minus a JVM start.
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		# Kafka rejects ids starting with '-' on the command line.
		[[ $id != -* ]] && break
	done
	printf '%s\n' "$id"
}

# ---------------------------------------------------------------- security

# make_security writes a throwaway CA, a server certificate for 127.0.0.1 and
# localhost, a client certificate and a random password into SEC_DIR.
make_security() {
	command -v openssl >/dev/null || die "openssl not found (needed for TIDEMARK_KAFKA_SECURITY=sasl_ssl)"
	rm -rf "$SEC_DIR"
	mkdir -p "$SEC_DIR"
	chmod 700 "$SEC_DIR"
	(
		cd "$SEC_DIR"
		umask 077
		local ossl=(openssl req -batch -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256)
		"${ossl[@]}" -x509 -days 2 -subj /CN=tidemark-test-ca -keyout ca.key -out ca.pem \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
		"${ossl[@]}" -subj /CN=127.0.0.1 -keyout server.key -out server.csr
		printf '%s\n' subjectAltName=IP:127.0.0.1,DNS:localhost extendedKeyUsage=serverAuth >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile server.ext -out server.pem
		"${ossl[@]}" -subj /CN=tidemark-client -keyout client.key -out client.csr
		printf '%s\n' extendedKeyUsage=clientAuth >client.ext
		openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAserial ca.srl -days 2 \
			-extfile client.ext -out client.pem
		# Kafka's PEM key store: the unencrypted PKCS#8 key, then the chain.
		cat server.key server.pem ca.pem >server-keystore.pem
		rm -f ./*.csr ./*.ext
		# 24 random URL-safe characters after a prefix that is easy to grep for.
		printf 'tidemark-pw-%s\n' "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >password
	) >"$STATE_DIR/openssl.out" 2>&1 || {
		cat "$STATE_DIR/openssl.out" >&2
		die "generating the test certificates failed"
	}
}

# security_env prints the variables a client of the secured listeners needs.
security_env() {
	printf ' TIDEMARK_KAFKA_SASL_SSL_BROKERS=127.0.0.1:%s' "$SASL_SSL_PORT"
	printf ' TIDEMARK_KAFKA_SASL_PLAINTEXT_BROKERS=127.0.0.1:%s' "$SASL_PLAINTEXT_PORT"
	printf ' TIDEMARK_KAFKA_CA=%s' "$SEC_DIR/ca.pem"
	printf ' TIDEMARK_KAFKA_CLIENT_CERT=%s TIDEMARK_KAFKA_CLIENT_KEY=%s' "$SEC_DIR/client.pem" "$SEC_DIR/client.key"
	printf ' TIDEMARK_KAFKA_SASL_USER=%s TIDEMARK_KAFKA_SASL_PASSWORD=%s' "$SASL_USER" "$(<"$SEC_DIR/password")"
}

# print_env prints start's line: the brokers, and the secured listeners' variables.
print_env() {
	printf 'TIDEMARK_KAFKA_BROKERS=%s' "$BROKERS"
	if [[ -n $SECURITY ]]; then
		security_env
	fi
	printf '\n'
}

write_config() {
	mkdir -p "$DATA_DIR" "$LOG_DIR"
	local listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
	local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
	if [[ -n $SECURITY ]]; then
		listeners+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PLAINTEXT_PORT"
		protocols+=",SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
	fi
	cat >"$CONFIG" <<EOF
# Generated by scripts/kafka/broker.sh - single combined KRaft node for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
log.dirs=$DATA_DIR

num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

num.network.threads=3
num.io.threads=4
log.retention.hours=24
log.segment.bytes=67108864
EOF
	if [[ -n $SECURITY ]]; then
		local pw l m
		pw=$(<"$SEC_DIR/password")
		chmod 600 "$CONFIG"
		{
			echo
			echo "# TIDEMARK_KAFKA_SECURITY=sasl_ssl: SASL (PLAIN, SCRAM) with and without TLS."
			echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
			echo "ssl.keystore.type=PEM"
			echo "ssl.keystore.location=$SEC_DIR/server-keystore.pem"
			echo "ssl.truststore.type=PEM"
			echo "ssl.truststore.location=$SEC_DIR/ca.pem"
			echo "ssl.client.auth=requested"
			for l in sasl_ssl sasl_plaintext; do
				echo "listener.name.$l.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER=\"$pw\";"
				for m in scram-sha-256 scram-sha-512; do
					echo "listener.name.$l.$m.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
				done
			done
		} >>"$CONFIG"
	fi
	cat >"$STATE_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $LOG_DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

format_storage() {
	local cid
	cid=$(new_cluster_id)
	log "formatting $DATA_DIR (cluster id $cid)"
	local -a scram=()
	if [[ -n $SECURITY ]]; then
		local pw
		pw=$(<"$SEC_DIR/password")
		scram=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$pw]"
			--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$pw]")
	fi
	if ! run_tool kafka.tools.StorageTool format --standalone "${scram[@]}" \
		-t "$cid" -c "$CONFIG" >"$STATE_DIR/format.out" 2>&1; then
		cat "$STATE_DIR/format.out" >&2
		die "storage format failed"
	fi
}

show_log_tail() {
	local f
	for f in "$OUT_FILE" "$LOG_DIR/server.log"; do
		if [[ -s $f ]]; then
			printf -- '----- tail of %s -----\n' "$f" >&2
			tail -n 60 "$f" >&2
		fi
	done
}

# ---------------------------------------------------------------- commands

# wait_listing BOOTSTRAP CONFIG FAILURE: wait until a client configured by
# CONFIG lists the topics at BOOTSTRAP; die with FAILURE at cmd_start's
# deadline, or as soon as the broker (cmd_start's pid) exits.
wait_listing() {
	until run_tool --timeout 30 org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" \
		--command-config "$2" --list >/dev/null 2>"$STATE_DIR/probe.err"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log_tail
			rm -f "$PID_FILE"
			die "broker exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			cat "$STATE_DIR/probe.err" >&2 || true
			show_log_tail
			cmd_stop >/dev/null 2>&1 || true
			die "$3"
		fi
		sleep 0.5
	done
}

cmd_start() {
	local pid
	if pid=$(broker_pid); then
		if port_open "$PORT"; then
			# The running broker's listeners are those it was started with.
			if [[ -f $SEC_DIR/password ]]; then
				SECURITY=sasl_ssl
			elif [[ -n $SECURITY ]]; then
				die "the running broker (pid $pid) has no SASL listeners; run '$0 stop' first"
			fi
			log "already running (pid $pid)"
			print_env
			return 0
		fi
		die "broker pid $pid is alive but port $PORT is closed; run '$0 stop' first"
	fi
	local -a ports=("$PORT" "$CONTROLLER_PORT")
	if [[ -n $SECURITY ]]; then
		ports+=("$SASL_SSL_PORT" "$SASL_PLAINTEXT_PORT")
	fi
	for p in "${ports[@]}"; do
		port_open "$p" && die "port $p on 127.0.0.1 is already in use by something else"
	done
	command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME)"

	cmd_fetch

	# Reuse the data only after an explicit `stop --keep`; anything else left
	# over (a crash, an older run) is wiped for a clean, reproducible broker.
	if [[ -f $KEEP_MARK && -f $DATA_DIR/meta.properties ]]; then
		log "reusing kept state in $STATE_DIR"
		rm -f "$KEEP_MARK" "$PID_FILE"
		# The SCRAM users were made at format time: the kept state decides.
		if [[ -f $SEC_DIR/password ]]; then
			SECURITY=sasl_ssl
		elif [[ -n $SECURITY ]]; then
			die "the kept state in $STATE_DIR has no SASL users; run '$0 stop' (without --keep) first"
		fi
		write_config
	else
		rm -rf "$STATE_DIR"
		mkdir -p "$STATE_DIR"
		if [[ -n $SECURITY ]]; then
			make_security
		fi
		write_config
		format_storage
	fi

	log "starting Kafka $KAFKA_VERSION on $BROKERS (controller 127.0.0.1:$CONTROLLER_PORT, state $STATE_DIR)"
	# shellcheck disable=SC2086 # HEAP is a list of JVM options
	nohup setsid "$JAVA" $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dkafka.logs.dir="$LOG_DIR" \
		-Dlog4j2.configurationFile="$STATE_DIR/log4j2.properties" \
		-cp "$LIBS/*" kafka.Kafka "$CONFIG" \
		</dev/null >"$OUT_FILE" 2>&1 &
	pid=$!
	echo "$pid" >"$PID_FILE"

	local deadline=$((SECONDS + START_TIMEOUT))
	# 1. the port accepts connections (no JVM needed to check)
	until port_open "$PORT"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log_tail
			rm -f "$PID_FILE"
			die "broker exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			show_log_tail
			cmd_stop >/dev/null 2>&1 || true
			die "broker did not open port $PORT within ${START_TIMEOUT}s"
		fi
		sleep 0.25
	done
	# 2. it serves metadata: an admin client lists topics
	printf '%s\n' default.api.timeout.ms=10000 request.timeout.ms=5000 >"$STATE_DIR/probe.properties"
	wait_listing "$BROKERS" "$STATE_DIR/probe.properties" "broker not ready within ${START_TIMEOUT}s"
	# 3. with security, a client logs in with SCRAM-SHA-512 over TLS
	if [[ -n $SECURITY ]]; then
		(
			umask 077
			{
				printf '%s\n' default.api.timeout.ms=10000 request.timeout.ms=5000 security.protocol=SASL_SSL \
					sasl.mechanism=SCRAM-SHA-512 ssl.truststore.type=PEM "ssl.truststore.location=$SEC_DIR/ca.pem"
				printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
					"$SASL_USER" "$(<"$SEC_DIR/password")"
			} >"$SEC_DIR/probe.properties"
		)
		wait_listing "127.0.0.1:$SASL_SSL_PORT" "$SEC_DIR/probe.properties" \
			"the SASL_SSL listener on port $SASL_SSL_PORT did not accept a SCRAM-SHA-512 login within ${START_TIMEOUT}s"
		log "SASL_SSL on 127.0.0.1:$SASL_SSL_PORT and SASL_PLAINTEXT on 127.0.0.1:$SASL_PLAINTEXT_PORT (user $SASL_USER, CA $SEC_DIR/ca.pem)"
	fi
	log "ready (pid $pid)"
	print_env
}

cmd_stop() {
	local keep=0
	if [[ ${1:-} == --keep ]]; then keep=1; fi
	local pid
	if pid=$(broker_pid); then
		log "stopping broker (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 120; i++)); do # 30 s
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "broker ignored SIGTERM for 30s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 40; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.25
			done
		fi
	else
		log "broker not running"
	fi
	rm -f "$PID_FILE"
	if ((keep)); then
		if [[ -d $STATE_DIR ]]; then
			touch "$KEEP_MARK"
			log "kept state in $STATE_DIR"
		fi
	else
		rm -rf "$STATE_DIR"
	fi
}

cmd_status() {
	local pid
	if pid=$(broker_pid); then
		if port_open "$PORT"; then
			local sec=""
			if [[ -f $SEC_DIR/password ]]; then
				sec=" TIDEMARK_KAFKA_SASL_SSL_BROKERS=127.0.0.1:$SASL_SSL_PORT TIDEMARK_KAFKA_SASL_PLAINTEXT_BROKERS=127.0.0.1:$SASL_PLAINTEXT_PORT"
			fi
			echo "running pid=$pid TIDEMARK_KAFKA_BROKERS=$BROKERS$sec state=$STATE_DIR"
		else
			echo "starting pid=$pid (port $PORT not open yet) state=$STATE_DIR"
		fi
		return 0
	fi
	echo "stopped (port $PORT, state $STATE_DIR)"
	return 3
}

cmd_tool() {
	[[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
	cmd_fetch
	run_tool "$@"
}

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	fetch) cmd_fetch ;;
	start) cmd_start ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status ;;
	tool) cmd_tool "$@" ;;
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
