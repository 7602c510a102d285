/*
 * fuzz_config.c - libFuzzer target for the configuration loader
 * (core/src/config.c) through the one YAML reader (core/src/yaml.c): the
 * input is the text of a configuration file. It goes the way
 * detour_settings_load_file takes once the file is read.
 *
 * Checks: an error is one line naming the file; a loaded configuration
 * holds only values the documentation allows (timeouts in (0, 30 days],
 * at most DETOUR_MAX_SERVERS servers, a HELO name without spaces); the
 * memory one input makes live stays linear in its size.
 */
#include <stdint.h>

#include "detour/detour_config.h"
#include "detour/detour_yaml.h"
#include "fuzz_check.h"
#include "fuzz_live.h"

static void check_duration(detour_ms d, detour_ms min) {
  FUZZ_CHECK(d >= min && d <= DETOUR_DURATION_MAX, "duration in range");
}

static void check_settings(const detour_settings *s) {
  const detour_config *c = &s->cfg;
  FUZZ_CHECK(c->nservers <= DETOUR_MAX_SERVERS, "server count");
  for (size_t i = 0; i < c->nservers; i++)
    FUZZ_CHECK(c->servers[i].port >= 1, "port");
  const detour_ms *t = (const detour_ms *)&c->timeouts;
  for (size_t i = 0; i < sizeof c->timeouts / sizeof *t; i++)
    check_duration(t[i], 1);
  check_duration(c->retry_interval, 0);
  check_duration(c->breaker_hold, 0);
  check_duration(c->race_delay, 0);
  FUZZ_CHECK(c->max_attempts >= 1, "attempts");
  for (const char *h = c->helo_name; *h; h++)
    FUZZ_CHECK((unsigned char)*h > ' ' && (unsigned char)*h < 0x7f,
               "HELO name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_live_begin();
  char err[512];
  detour_yaml_file f;
  int rc = detour_yaml_load_string(&f, (const char *)data, size, "fuzz.yaml",
                                   err, sizeof err);
  if (rc == 0) {
    detour_settings s;
    rc = detour_settings_load_node(&s, &f.doc, detour_yaml_root(&f),
                                   "fuzz.yaml", NULL, err, sizeof err);
    if (rc == 0) {
      check_settings(&s);
      detour_settings_free(&s);
    }
    detour_yaml_file_free(&f);
  }
  if (rc != 0)
    fuzz_check_error(err, sizeof err, "fuzz.yaml");
  fuzz_live_end(((size_t)4 << 20) + size * 1024);
  return 0;
}
