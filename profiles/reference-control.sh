#!/bin/sh
# reference-control.sh ACTION [COMPONENT]: start, stop, kill, pause or resume one component of the
# reference served as separate processes on the local stack (`kcverify stack up`). The control section of
# profiles/reference.yaml runs it; a team would write the same few lines around its own deployment
# (systemctl, docker, kubectl scale ...).
#
#   ACTION      start | stop | kill | pause | resume | fault
#               (fault: the next $KCVERIFY_FAULT_TIMES calls of $KCVERIFY_FAULT_OP, any when empty, on
#               $KCVERIFY_FAULT_RESOURCE fail, once $KCVERIFY_FAULT_AFTER more have worked; every process
#               reads the same fault table, so COMPONENT is any running one)
#   COMPONENT   payment-service | student-service | payment-relay | purchase-worker | course-relay |
#               cache-invalidator | reconciler   (default: $KCVERIFY_COMPONENT, which kcverify sets)
#
# Each component is one detached `kcverify serve ...` process (the cache invalidator runs inside the
# student service's) with its test-only control endpoint on a loopback port: pause and resume are
# POST /hold and POST /resume there, so that nothing moves between a scenario's steps. Environment:
#   KCVERIFY_REFERENCE_DIR     where the pid files and logs go (required)
#   KCVERIFY_REFERENCE_DEFECT  a named defect to start the components with (docs/defects.md)
#   KCVERIFY_REFERENCE_PORT    the first of six consecutive control ports (default 18100)
#   KCVERIFY_PAYMENT_PORT, KCVERIFY_STUDENT_PORT   the services' ports (default 8081, 8082)
#   KCVERIFY_STATE_DIR         the stack's state directory (read by `kcverify serve`)
#   KCVERIFY_BIN               the kcverify command (default: kcverify)
# and KCVERIFY_WEBHOOK_SECRET, KCVERIFY_AUTH_SECRET, which the services need.
set -eu

action=${1:?usage: reference-control.sh start|stop|kill|pause|resume|fault [COMPONENT]}
component=${2:-${KCVERIFY_COMPONENT:?name the component}}
dir=${KCVERIFY_REFERENCE_DIR:?set KCVERIFY_REFERENCE_DIR: where the pid files and logs go}
base=${KCVERIFY_REFERENCE_PORT:-18100}
student="student --port ${KCVERIFY_STUDENT_PORT:-8082} --invalidator-retry 0.1"
loop=""  # set for a component that shares its process: acted on through the control endpoint
case $component in
  payment-service)   proc=payment;       port=$base;          serve="payment --port ${KCVERIFY_PAYMENT_PORT:-8081}" ;;
  student-service)   proc=student;       port=$((base + 1));  serve=$student ;;
  cache-invalidator) proc=student;       port=$((base + 1));  serve=$student; loop=cache-invalidator ;;
  purchase-worker)   proc=worker;        port=$((base + 2));  serve=worker ;;
  payment-relay)     proc=payment-relay; port=$((base + 3));  serve="relay --outbox payments" ;;
  course-relay)      proc=course-relay;  port=$((base + 4));  serve="relay --outbox courses" ;;
  # a confirmation without its purchase is re-published after 5 s (the default 60 s outlasts a settle)
  reconciler)        proc=reconciler;    port=$((base + 5));  serve="reconciler --reconcile-grace 5" ;;
  *) echo "reference-control.sh: unknown component '$component'" >&2; exit 2 ;;
esac
pidfile=$dir/$proc.pid
log=$dir/$proc.log
control=http://127.0.0.1:$port

pid() { cat "$pidfile" 2>/dev/null || true; }
# alive PID: the process exists and is not a zombie nobody has reaped yet
alive() { [ -n "$1" ] && state=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${state#Z}" = "$state" ]; }
running() { alive "$(pid)"; }
post() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$control$1" >/dev/null; }
body() { if [ -n "$loop" ]; then echo "{\"components\": [\"$loop\"]}"; else echo "{}"; fi; }
gone() {  # wait until PID has exited (up to 30 s)
  i=0
  while alive "$1"; do
    i=$((i + 1)); [ $i -lt 300 ] || return 1
    sleep 0.1
  done
}

start_process() {
  running && return 0
  mkdir -p "$dir"
  # shellcheck disable=SC2086  # $serve and the defect option are word lists
  # --faults-file: one fault table that every process shares (the `fault` action writes a rule into it)
  nohup "${KCVERIFY_BIN:-kcverify}" serve $serve --control-port "$port" --faults-file "$dir/faults.json" \
    ${KCVERIFY_REFERENCE_DEFECT:+--defect "$KCVERIFY_REFERENCE_DEFECT"} >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  i=0
  until curl -fsS -o /dev/null "$control/health" 2>/dev/null; do
    if ! running; then
      echo "$proc exited while starting; the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    i=$((i + 1))
    if [ $i -ge 600 ]; then echo "$proc did not answer on $control within 60 s" >&2; exit 1; fi
    sleep 0.1
  done
}

case $action in
  start)
    if [ -n "$loop" ] && running; then
      post "/components/$loop/restart" "{}"  # nothing when it runs; comes back held otherwise
      post /resume "$(body)"
    else
      start_process
    fi ;;
  pause) post /hold "$(body)" ;;
  resume) post /resume "$(body)" ;;
  fault)
    op=null
    if [ -n "${KCVERIFY_FAULT_OP:-}" ]; then op="\"$KCVERIFY_FAULT_OP\""; fi
    post /faults "{\"resource\": \"${KCVERIFY_FAULT_RESOURCE:?}\", \"times\": ${KCVERIFY_FAULT_TIMES:?}, \"op\": $op, \"after\": ${KCVERIFY_FAULT_AFTER:-0}}" ;;
  stop | kill)
    if [ -n "$loop" ]; then
      running && post "/components/$loop/$action" "{}"
      exit 0
    fi
    p=$(pid)
    if alive "$p"; then
      if [ "$action" = stop ]; then kill -TERM "$p"; else kill -KILL "$p"; fi
      gone "$p" || { kill -KILL "$p"; gone "$p"; }
    fi
    rm -f "$pidfile" ;;
  *) echo "reference-control.sh: unknown action '$action' (start, stop, kill, pause, resume, fault)" >&2; exit 2 ;;
esac
