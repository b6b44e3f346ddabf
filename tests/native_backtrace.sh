#!/usr/bin/env bash
# Usage: tests/native_backtrace.sh PYTHON ARGS...
# Runs PYTHON ARGS with core dumps allowed. If it dies of a signal and leaves a core file in the current
# directory, prints the native backtrace of the thread that crashed (gdb), then removes the core, so that
# a CI log shows where a crash inside a C extension happened: Python's faulthandler prints nothing for a
# crash on a thread that blocks signals, as librdkafka's threads do. The exit status is PYTHON's.
set -u
ulimit -c unlimited 2>/dev/null || true
marker=$(mktemp)
"$@"
status=$?
if [ "$status" -gt 128 ]; then
  echo "native crash: exit status $status (signal $((status - 128)))"
  core=$(find . -maxdepth 1 -type f \( -name core -o -name 'core.[0-9]*' \) -newer "$marker" | head -n 1)
  if [ -n "$core" ] && command -v gdb >/dev/null 2>&1; then
    gdb -q -batch -ex "set print frame-arguments none" -ex "bt 20" "$(readlink -f "$1")" "$core" 2>&1 \
      | grep -e '^#' -e 'terminated with signal' | cut -c1-160
    rm -f "$core"
  else
    echo "no core file to read (kernel.core_pattern: $(cat /proc/sys/kernel/core_pattern 2>/dev/null))"
  fi
fi
rm -f "$marker"
exit "$status"
