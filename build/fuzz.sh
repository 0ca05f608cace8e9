#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $FUZZTIME each (default 10s) and
# prints one summary line per target. Exits non-zero if any target fails or
# does not build, so `make test` catches a regression the corpus finds.
#
#   FUZZTIME=5m ./build/fuzz.sh      # the long run (make fuzz-long)
#   FUZZ_PKGS=./proxy/... ./build/fuzz.sh   # only some packages
#   FUZZ_PARALLEL=1 ./build/fuzz.sh         # one fuzzing worker (default: one per core)
#
# A failing input is written by `go test` under the package's
# testdata/fuzz/<Target>/ as usual; commit it to keep it as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-10s}"
GO="${GO:-go}"
logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT

# `go test -list` builds each package's test binary, so only ask the packages
# whose test files mention a fuzz function; -list then gives the exact names.
mapfile -t pkgs < <($GO list -f '{{.ImportPath}} {{.Dir}}' ${FUZZ_PKGS:-./...})
targets=()
declare -A dirs # package -> directory, where its testdata/fuzz lives
failed=0
summary=()
for line in "${pkgs[@]}"; do
	pkg="${line%% *}"
	dir="${line#* }"
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	dirs[$pkg]=$dir
	if ! names=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
		echo "$names"
		summary+=("FAIL $pkg: test binary does not build")
		failed=$((failed + 1))
		continue
	fi
	while read -r name; do
		if [[ "$name" == Fuzz* ]]; then targets+=("$pkg $name"); fi
	done <<<"$names"
done

if [ ${#targets[@]} -eq 0 ] && [ "$failed" -eq 0 ]; then
	echo "fuzz: no Fuzz targets found"
	exit 0
fi

echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
for t in "${targets[@]}"; do
	pkg="${t%% *}"
	name="${t#* }"
	log="$logdir/${name}.log"
	corpus="${dirs[$pkg]}/testdata/fuzz/$name"
	start=$(date +%s)
	status=FAIL
	for attempt in 1 2; do
		before=$( { ls "$corpus" 2>/dev/null || true; } | wc -l)
		if $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} \
			"$pkg" >"$log" 2>&1; then
			status=ok
			break
		fi
		# Go 1.26's fuzz coordinator can fail a target at the end of
		# -fuzztime with a bare "context deadline exceeded" and no input
		# (go.dev/issue/75804, fixed in Go 1.27). A found bug always writes
		# its input under testdata/fuzz, so only a failure that wrote none
		# and says just that gets one more run.
		after=$( { ls "$corpus" 2>/dev/null || true; } | wc -l)
		if [ "$attempt" -eq 1 ] && [ "$after" -eq "$before" ] &&
			grep -qxE '[[:space:]]*context deadline exceeded' "$log" &&
			[ "$(grep -c -- '--- FAIL' "$log")" -eq 1 ]; then
			echo "fuzz: $name hit Go's fuzztime race (go.dev/issue/75804) and wrote no input; running it again"
			continue
		fi
		break
	done
	if [ "$status" = FAIL ]; then
		failed=$((failed + 1))
	fi
	secs=$(($(date +%s) - start))
	# The fuzzer's last progress line holds the totals, e.g.
	# "fuzz: elapsed: 10s, execs: 81234 (8120/sec), new interesting: 3 (total: 41)".
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
	# The "/sec" figure on that line is the last interval's rate (often 0 at
	# the end), so derive the mean rate from the totals instead.
	execs=$(awk '{
		for (i = 1; i <= NF; i++) {
			if ($i == "elapsed:") el = $(i + 1)
			if ($i == "execs:") n = $(i + 1)
		}
		gsub(",", "", el); s = 0
		if (match(el, /[0-9]+h/)) s += 3600 * substr(el, RSTART, RLENGTH - 1)
		if (match(el, /[0-9]+m/)) s += 60 * substr(el, RSTART, RLENGTH - 1)
		if (match(el, /[0-9]+s/)) s += substr(el, RSTART, RLENGTH - 1)
		if (n != "") printf "%d (%d/s)", n, (s > 0 ? n / s : n)
	}' <<<"$last")
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 new, \2 total/p' <<<"$last")
	line=$(printf '%-4s %-28s %-45s execs %-22s corpus %s (%ss)' \
		"$status" "$name" "$pkg" "${execs:-?}" "${interesting:-?}" "$secs")
	summary+=("$line")
	echo "$line"
	if [ "$status" = FAIL ]; then
		echo "---- $pkg $name output (last 40 lines) ----"
		tail -n 40 "$log"
		echo "----"
	fi
done

echo
echo "fuzz summary ($FUZZTIME each):"
printf '  %s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
	echo "fuzz: $failed failed (${#targets[@]} targets)"
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
