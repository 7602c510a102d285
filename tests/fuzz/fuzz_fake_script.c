/*
 * fuzz_fake_script.c - libFuzzer target for the fake-server script loader
 * (fakeservers/src/yaml_load.c) through the one YAML reader: the input is
 * the text of a `detour serve` script file (one server, or `servers:`).
 *
 * Checks: an error is one line naming the file; every loaded script has a
 * name; the memory one input makes live stays linear in its size (an
 * alias bomb once turned 2.3 KB into 953 MB).
 */
#include <stdint.h>

#include "detour/fake.h"
#include "fuzz_check.h"
#include "fuzz_live.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_live_begin();
  char err[512];
  size_t n = 99;
  detour_fake_script **v = detour_fake_load_string(
      (const char *)data, size, "fuzz.yaml", &n, err, sizeof err);
  if (v) {
    FUZZ_CHECK(n >= 1, "at least one script");
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK(detour_fake_script_name(v[i]) != NULL, "a name");
    detour_fake_scripts_free(v, n);
  } else {
    FUZZ_CHECK(n == 0, "no count on error");
    fuzz_check_error(err, sizeof err, "fuzz.yaml");
  }
  fuzz_live_end(((size_t)4 << 20) + size * 1024);
  return 0;
}
