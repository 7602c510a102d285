/*
 * fuzz_duration.c - libFuzzer target for the one duration grammar
 * (core/src/duration.c), which reads every duration of every file and
 * command-line option.
 *
 * Checks: a parsed value is in [0, DETOUR_DURATION_MAX]; *out is untouched
 * on error; what the scenario runner prints for a value
 * (detour_scenario_format_offset) parses back to the same value; the
 * parse does not depend on what follows the NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour.h"
#include "detour/scenario.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 256)
    return 0; /* a duration is short; longer inputs only repeat digits */
  char text[257];
  memcpy(text, data, size);
  text[size] = '\0';
  detour_ms v = -42;
  int rc = detour_parse_duration(text, &v);
  FUZZ_CHECK(rc == 0 || rc == DETOUR_EPARSE || rc == DETOUR_ERANGE,
             "documented return");
  if (rc != 0) {
    FUZZ_CHECK(v == -42, "untouched on error");
    return 0;
  }
  FUZZ_CHECK(v >= 0 && v <= DETOUR_DURATION_MAX, "in range");
  char buf[64];
  detour_scenario_format_offset(v, buf, sizeof buf);
  detour_ms back = -1;
  FUZZ_CHECK(detour_parse_duration(buf, &back) == 0, "printed form parses");
  FUZZ_CHECK(back == v, "printed form round-trips");
  return 0;
}
