#!/usr/bin/env bash
# The scale benchmark (benches/scale.rs) for a user: builds the release daemon and runs
# it with N paper accounts on the loopback fake venue, printing details and one markdown
# table row per run. See the top of benches/scale.rs for what each figure means.
#
#   benches/scale.sh [--accounts 100,1000] [--interval 5s] [--seconds 60]
#                    [--ulimit 1024] [--warmup SECONDS] [--startup-deadline SECONDS] [--keep]
#
# --ulimit N runs the daemon (and its PostgreSQL) as under `ulimit -n N`: soft and hard
# open-file limit N, so the daemon cannot raise it. Each flag can also be given as an
# environment variable: VIBEX_SCALE_ACCOUNTS, VIBEX_SCALE_INTERVAL, VIBEX_SCALE_SECONDS,
# VIBEX_SCALE_ULIMIT, VIBEX_SCALE_WARMUP, VIBEX_SCALE_STARTUP_DEADLINE, VIBEX_SCALE_KEEP=1.
# Exit status: 0 when every run completed, 1 when one failed (the table says why), 2 on
# a bad flag.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --keep) args+=(--keep); shift ;;
    --accounts|--interval|--seconds|--ulimit|--warmup|--startup-deadline)
      [ $# -ge 2 ] || { echo "scale.sh: $1 needs a value" >&2; exit 2; }
      args+=("$1" "$2"); shift 2 ;;
    *) echo "scale.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$(uname -s)" != Linux ]; then
  echo "scale.sh: the benchmark reads /proc; it runs on Linux only" >&2
  exit 2
fi

# Builds the release daemon and the benchmark (cargo bench's profile is release).
cargo bench --bench scale --no-run
exec cargo bench --bench scale -- ${args[@]+"${args[@]}"}
