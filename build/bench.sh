#!/usr/bin/env bash
# `make bench`: the proxy against a direct connection and against nginx, in
# one run on loopback. Starts the standalone BFL simulator (with a key), the
# FluxForge proxy in live mode pointed at it, and nginx proxying to it with
# the same key, then runs build/benchcmp against all three and stops them.
#
#   BENCH_ARGS="-clients 1,32 -duration 9s" build/bench.sh
#
# PROXY_GOMAXPROCS=2 build/bench.sh gives the proxy alone that GOMAXPROCS, to
# weigh it against the one scheduler thread the proxy picks in live mode.
#
# Everything the servers write (logs, nginx's config and body spool) goes to
# a temporary directory, removed at exit unless BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
NGINX="${NGINX:-/usr/sbin/nginx}"
bin=build/bin
tmp="$(mktemp -d)"
# nginx's workers drop root privileges and must reach their spool directory.
chmod 755 "$tmp"
pids=()

cleanup() {
	local status=$?
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ $status -ne 0 ]; then
		for f in bflsim.log proxy.log error.log; do
			[ -s "$tmp/$f" ] && { echo "---- $f (last 20 lines)"; tail -n 20 "$tmp/$f"; }
		done
	fi
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		echo "bench: logs kept in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# free_port prints a loopback port nothing listens on, other than the ports
# given (picked already, but not yet listened on).
free_port() {
	local port
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 40000))
		case " $* " in *" $port "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "bench: no free port found" >&2
	return 1
}

# wait_port waits until something accepts connections on the port.
wait_port() {
	local name=$1 port=$2 pid=$3
	for _ in $(seq 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $name exited before listening on $port" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "bench: $name is not listening on $port after 15s" >&2
	return 1
}

if [ ! -x "$NGINX" ]; then
	echo "bench: nginx not found at $NGINX (apt-get install nginx-light, or set NGINX)" >&2
	exit 1
fi

echo "bench: building"
mkdir -p "$bin"
$GO build -trimpath -o "$bin/fluxforge" ./proxy/cmd/fluxforge
$GO build -trimpath -o "$bin/bflsim" ./proxy/cmd/bflsim
$GO build -trimpath -o "$bin/benchcmp" ./build/benchcmp

key="bench-$(date +%s)-$RANDOM"
sim_port=$(free_port)
proxy_port=$(free_port "$sim_port")
nginx_port=$(free_port "$sim_port" "$proxy_port")

# Tasks finish at once and credits never run out: the benchmark measures the
# hop, and must not be cut short by the simulator's 402 or 429.
SIM_KEY="$key" ADDR="127.0.0.1:$sim_port" SIM_PUBLIC_URL="http://127.0.0.1:$sim_port" \
	SIM_TRAIN_SECONDS=1 SIM_GENERATE_SECONDS=0 SIM_MAX_ACTIVE=1000000 SIM_CREDITS=1000000000 \
	"$bin/bflsim" >"$tmp/bflsim.log" 2>&1 &
pids+=($!)
wait_port bflsim "$sim_port" "${pids[-1]}"

BFL_API_KEY="$key" BFL_API_URL="http://127.0.0.1:$sim_port" ADDR="127.0.0.1:$proxy_port" \
	MAX_BODY_MB=512 SITE_DIR="$tmp/no-site" \
	env ${PROXY_GOMAXPROCS:+GOMAXPROCS="$PROXY_GOMAXPROCS"} "$bin/fluxforge" >"$tmp/proxy.out" 2>"$tmp/proxy.log" &
proxy_pid=$!
pids+=($proxy_pid)
wait_port proxy "$proxy_port" "$proxy_pid"

sed -e "s|@DIR@|$tmp|g" -e "s|@LISTEN@|127.0.0.1:$nginx_port|g" \
	-e "s|@UPSTREAM@|127.0.0.1:$sim_port|g" -e "s|@KEY@|$key|g" \
	build/nginx/bench.conf.tmpl >"$tmp/nginx.conf"
"$NGINX" -t -q -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/error.log"
"$NGINX" -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/error.log" &
pids+=($!)
wait_port nginx "$nginx_port" "${pids[-1]}"

echo "bench: bflsim :$sim_port, proxy :$proxy_port (pid $proxy_pid, live mode, GOMAXPROCS ${PROXY_GOMAXPROCS:-1 by its own choice}), nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') :$nginx_port"
# Other work on the machine moves every figure; the ratios, measured in
# alternating rounds, move much less. The load average says which it was.
echo "bench: $(nproc) cores, $($GO version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$bin/benchcmp" -direct "http://127.0.0.1:$sim_port" -proxy "http://127.0.0.1:$proxy_port" \
	-nginx "http://127.0.0.1:$nginx_port" -key "$key" -proxy-pid "$proxy_pid" ${BENCH_ARGS:-} "$@"
echo "bench: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
