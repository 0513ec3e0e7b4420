# Shared by the benchmark scripts (sourced, not run): the machine's load, and waiting for it to
# be quiet before a measurement, since other engineers' builds share the 2 cores.
#
# The sourcing script defines `log` and `note` (a remark kept with the results) and sets
# QUIET_WAIT_S, the seconds of waiting the whole run may spend; this sets `hz` and `ncpu` for
# its CPU accounting.

hz=$(getconf CLK_TCK)
ncpu=$(nproc)
quiet_budget_s=$QUIET_WAIT_S # for the whole run, so that a busy machine cannot stall it for hours

busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
busy_percent() { # over $1 seconds, of all cores
    local b0 b1
    b0=$(busy_ticks); sleep "$1"; b1=$(busy_ticks)
    echo $(((b1 - b0) * 100 / ($1 * hz * ncpu)))
}
top_processes() {
    top -b -n 2 -d 1 -w 200 | awk '/^ *PID/{n++; next} n == 2 && NF >= 12 && $9 + 0 > 5 {printf "%s(%s%%) ", $12, $9}'
}
wait_quiet() { # $1: what is about to be measured
    local t0=$SECONDS busy
    while :; do
        busy=$(busy_percent 3)
        # Builds come in bursts: a quiet moment between two rustc runs is not quiet.
        if pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; then busy=$((busy > 16 ? busy : 16)); fi
        ((busy <= 15)) && break
        if ((SECONDS - t0 >= quiet_budget_s)); then
            note "machine still ${busy}% busy (or building) before $1; waiting budget of ${QUIET_WAIT_S}s used up; measured anyway: $(top_processes)"
            break
        fi
        log "machine ${busy}% busy before $1, waiting for: $(top_processes)$(pgrep -x cargo >/dev/null && echo ' (cargo running)')"
        sleep 20
    done
    quiet_budget_s=$((quiet_budget_s - (SECONDS - t0)))
    ((quiet_budget_s > 0)) || quiet_budget_s=0
}
