/*
 * interrupt.c - the process-wide stop flag (SIGINT/SIGTERM through
 * detour_scenario_interrupt). The runner's loop (exec.c), the external
 * client's thread (adapter.c) and the manifest adapter's waits
 * (adapter_manifest.c) all look at it; none of them owns it, so it lives
 * here rather than in one of them.
 */
#include <stdatomic.h>

#include "scn_internal.h"

static atomic_int interrupted;

void detour_scenario_interrupt(void) { atomic_store(&interrupted, 1); }
bool detour_scenario_interrupted(void) { return atomic_load(&interrupted); }
bool detour__scn_interrupted(void) { return atomic_load(&interrupted) != 0; }
