# Shared by scripts/test and .ci/run: run a named step, print how long it took against its
# budget (docs/testing.md, "Time budget"), and keep a summary for the end.
#   step NAME BUDGET_SECONDS command args...
# A step over its budget is reported loudly but does not fail the run: the machines are
# noisy, and the budget is a promise to watch, not a test.

STEPS_SUMMARY=()
STEPS_STARTED=$(date +%s)

banner() {
  printf '\n%s\n' "################################################################################"
  printf '# %s\n' "$@"
  printf '%s\n\n' "################################################################################"
}

step() {
  local name="$1" budget="$2"
  shift 2
  local start end took rc=0
  start=$(date +%s)
  printf '\n== %s (budget %ss)\n' "$name" "$budget"
  "$@" || rc=$?
  end=$(date +%s)
  took=$((end - start))
  local mark="ok"
  [ "$rc" -ne 0 ] && mark="FAILED ($rc)"
  [ "$took" -gt "$budget" ] && mark="$mark, OVER BUDGET"
  STEPS_SUMMARY+=("$(printf '%-28s %5ss of %5ss  %s' "$name" "$took" "$budget" "$mark")")
  printf '== %s: %ss (budget %ss) %s\n' "$name" "$took" "$budget" "$mark"
  if [ "$rc" -ne 0 ]; then
    steps_report
    exit "$rc"
  fi
}

steps_report() {
  local total=$(( $(date +%s) - STEPS_STARTED ))
  printf '\n%s\n' "-------------------------------- time per step --------------------------------"
  local line
  for line in "${STEPS_SUMMARY[@]}"; do printf '%s\n' "$line"; done
  printf 'total %ss\n' "$total"
}
