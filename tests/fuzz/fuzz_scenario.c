/*
 * fuzz_scenario.c - libFuzzer target for the scenario loader
 * (scenarios/src/load*.c), which also runs the configuration loader (the
 * `client:` section) and the fake-server script loader (`servers:`), all
 * through the one YAML reader. The input is the text of a scenario file.
 *
 * Checks: an error is one line naming the file; what one input makes live
 * stays under the file's allocation budget (DETOUR_YAML_MAX_ALLOC, the
 * generated bodies) plus a part linear in its size.
 */
#include <stdint.h>

#include "detour/detour_yaml.h"
#include "detour/scenario.h"
#include "fuzz_check.h"
#include "fuzz_live.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_live_begin();
  char err[512];
  detour_scenario *s = NULL;
  int rc = detour_scenario_load_string((const char *)data, size, "fuzz.yaml",
                                       NULL, &s, err, sizeof err);
  FUZZ_CHECK((rc == 0) == (s != NULL), "a scenario exactly on success");
  if (rc == 0) {
    FUZZ_CHECK(detour_scenario_name(s) != NULL, "a loaded scenario has a name");
    FUZZ_CHECK(detour_scenario_rule_count(s) >= 1, "and rules");
    detour_scenario_free(s);
  } else {
    fuzz_check_error(err, sizeof err, "fuzz.yaml");
  }
  fuzz_live_end(DETOUR_YAML_MAX_ALLOC + ((size_t)8 << 20) + size * 2048);
  return 0;
}
