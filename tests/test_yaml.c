/*
 * test_yaml.c - the one YAML reader (core/src/yaml.c, detour_yaml.h):
 * what it refuses when loading (size, aliases, nodes, depth, a second
 * document, repeated keys, bad UTF-8), each at its file:line:col, and both
 * sides of every typed getter's bounds. The loaders' own tests
 * (test_config, test_scenario_load, test_fake_server) check their keys.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour_yaml.h"
#include "detour/fake.h"

static char g_err[512];

static int load(detour_yaml_file *f, const char *text) {
  return detour_yaml_load_string(f, text, strlen(text), "y.yaml", g_err,
                                 sizeof g_err);
}

static void refused(const char *text, const char *want) {
  detour_yaml_file f;
  cr_expect_eq(load(&f, text), DETOUR_EPARSE, "loaded: %s", text);
  cr_expect(strncmp(g_err, want, strlen(want)) == 0, "want '%s', got '%s'",
            want, g_err);
  detour_yaml_file_free(&f);
}

Test(yaml_load, refusals_are_placed) {
  refused("a: &x 1\nb: *x\n", "y.yaml:2:4: YAML aliases (*x) are not accepted");
  refused("a: 1\n---\nb: 2\n", "y.yaml:2:1: a second YAML document");
  refused("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n",
          "y.yaml:5:3: key 'b.c': given twice");
  refused("l:\n  - { x: 1 }\n  - { x: 1, y: 2, x: 3 }\n",
          "y.yaml:3:19: key 'l[1].x': given twice");
  refused("a: [1,\n", "y.yaml:2:1: YAML syntax error: ");
  /* columns count characters: the e-acute is one */
  refused("a: 1\nb: \"caf\xc3\xa9\xff\"\n", "y.yaml:2:9: YAML syntax error: ");
}

Test(yaml_load, empty_text_is_an_empty_document) {
  detour_yaml_file f;
  cr_assert_eq(load(&f, ""), 0, "%s", g_err);
  cr_expect_null(detour_yaml_root(&f));
  detour_yaml_file_free(&f);
  detour_yaml_file_free(&f); /* twice is safe */
}

/* Both sides of the size, node and depth limits. */
Test(yaml_load, limits_both_sides) {
  size_t big = DETOUR_YAML_MAX_FILE + 1;
  char *text = malloc(big + 1);
  cr_assert_not_null(text);
  memset(text, '#', big);
  text[big] = '\0';
  detour_yaml_file f;
  cr_expect_eq(
      detour_yaml_load_string(&f, text, big, "y.yaml", g_err, sizeof g_err),
      DETOUR_ERANGE);
  cr_expect(strstr(g_err, "more than the 16 MiB"), "%s", g_err);
  cr_expect_eq(
      detour_yaml_load_string(&f, text, big - 1, "y.yaml", g_err, sizeof g_err),
      0, "%s", g_err);
  detour_yaml_file_free(&f);

  /* [a,a,...]: the sequence is one node, each a another */
  size_t n = DETOUR_YAML_MAX_NODES - 1, len = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(text + len, i ? ",a" : "[a", 2);
    len += 2;
  }
  memcpy(text + len, "]", 2);
  cr_expect_eq(load(&f, text), 0, "%s", g_err);
  detour_yaml_file_free(&f);
  memcpy(text + len, ",a]", 4);
  cr_expect_eq(load(&f, text), DETOUR_EPARSE);
  cr_expect(strstr(g_err, "more than 500000 YAML nodes"), "%s", g_err);

  len = 0;
  for (int i = 0; i < DETOUR_YAML_MAX_DEPTH; i++)
    text[len++] = '[';
  for (int i = 0; i < DETOUR_YAML_MAX_DEPTH; i++)
    text[len++] = ']';
  text[len] = '\0';
  cr_expect_eq(load(&f, text), 0, "%s", g_err);
  detour_yaml_file_free(&f);
  memmove(text + 1, text, len + 1);
  text[0] = '[';
  strcat(text, "]");
  cr_expect_eq(load(&f, text), DETOUR_EPARSE);
  cr_expect(strstr(g_err, "y.yaml:1:65: nested deeper than 64 levels"), "%s",
            g_err);
  free(text);
}

/* The fake-script case an alias made cost 953 MB: a list of lists of
 * aliases. Refused at the first alias, nothing built. */
Test(yaml_load, fake_script_alias_bomb_is_refused) {
  const char *bomb = "name: x\n"
                     "a: &a [\"250 ok\", \"250 ok\", \"250 ok\", \"250 ok\"]\n"
                     "greeting: [*a, *a, *a, *a, *a, *a, *a, *a]\n";
  size_t n = 0;
  detour_fake_script **v = detour_fake_load_string(bomb, strlen(bomb), "s.yaml",
                                                   &n, g_err, sizeof g_err);
  cr_assert_null(v);
  cr_expect(strstr(g_err, "s.yaml:3:12: YAML aliases (*a) are not accepted"),
            "%s", g_err);
}

/* ------------------------------------------------------------------------ */
/* Getters                                                                   */

static detour_yaml_file g_f;
static detour_yaml_ctx g_c;

static yaml_node_t *value(const char *key) {
  yaml_node_t *n = detour_yaml_map_get(&g_c, detour_yaml_root(&g_f), key);
  cr_assert_not_null(n, "%s", key);
  return n;
}

static void open_values(void) {
  const char *text = "lo: 1\nhi: 10\nlow: 0\nhigh: 11\nplus: +5\nsp: ' 5'\n"
                     "d0: 0\nd1: 1ms\nmax: 720h\nover: 2592000001ms\n"
                     "yes: YES\noff: off\nmaybe: maybe\nlist: [1]\nnull:\n";
  cr_assert_eq(load(&g_f, text), 0, "%s", g_err);
  g_c = detour_yaml_ctx_of(&g_f, g_err, sizeof g_err);
}

static void close_values(void) { detour_yaml_file_free(&g_f); }

TestSuite(yaml_get, .init = open_values, .fini = close_values);

Test(yaml_get, int_both_sides) {
  long long v = -1;
  cr_expect_eq(detour_yaml_int(&g_c, value("lo"), "lo", 1, 10, "1..10", &v), 0);
  cr_expect_eq(v, 1);
  cr_expect_eq(detour_yaml_int(&g_c, value("hi"), "hi", 1, 10, "1..10", &v), 0);
  cr_expect_eq(v, 10);
  cr_expect_eq(detour_yaml_int(&g_c, value("low"), "low", 1, 10, "1..10", &v),
               DETOUR_EPARSE);
  cr_expect_str_eq(g_err, "y.yaml:3:6: key 'low': expected 1..10, got '0'");
  cr_expect_eq(detour_yaml_int(&g_c, value("high"), "high", 1, 10, "1..10", &v),
               DETOUR_EPARSE);
  cr_expect_eq(detour_yaml_int(&g_c, value("plus"), "plus", 1, 10, "n", &v),
               DETOUR_EPARSE);
  cr_expect_eq(detour_yaml_int(&g_c, value("sp"), "sp", 1, 10, "n", &v),
               DETOUR_EPARSE);
  cr_expect_eq(detour_yaml_int(&g_c, value("list"), "list", 1, 10, "n", &v),
               DETOUR_EPARSE);
  cr_expect_str_eq(g_err, "y.yaml:14:7: key 'list': expected n, got a list");
  cr_expect_eq(v, 10); /* untouched on error */
}

Test(yaml_get, duration_both_sides) {
  detour_ms v = -1;
  cr_expect_eq(detour_yaml_duration(&g_c, value("d0"), "d0", 0, "a d", &v), 0);
  cr_expect_eq(v, 0);
  cr_expect_eq(detour_yaml_duration(&g_c, value("d0"), "d0", 1, "a d", &v),
               DETOUR_EPARSE);
  cr_expect_eq(detour_yaml_duration(&g_c, value("d1"), "d1", 1, "a d", &v), 0);
  cr_expect_eq(v, 1);
  cr_expect_eq(detour_yaml_duration(&g_c, value("max"), "max", 1, "a d", &v),
               0);
  cr_expect_eq(v, DETOUR_DURATION_MAX);
  cr_expect_eq(detour_yaml_duration(&g_c, value("over"), "over", 1, "a d", &v),
               DETOUR_EPARSE);
  cr_expect_str_eq(g_err, "y.yaml:10:7: key 'over': expected a d, at most 30 "
                          "days (720h), got '2592000001ms'");
}

Test(yaml_get, bool_and_null) {
  bool b = false;
  cr_expect_eq(detour_yaml_bool(&g_c, value("yes"), "yes", &b), 0);
  cr_expect(b);
  cr_expect_eq(detour_yaml_bool(&g_c, value("off"), "off", &b), 0);
  cr_expect(!b);
  cr_expect_eq(detour_yaml_bool(&g_c, value("maybe"), "maybe", &b),
               DETOUR_EPARSE);
  cr_expect(detour_yaml_is_null(value("null")));
  cr_expect_null(detour_yaml_scalar(&g_c, value("null"), "null", "a word"));
  cr_expect_str_eq(g_err, "y.yaml:15:6: key 'null': expected a word, got "
                          "nothing");
}

Test(yaml_get, budget_both_sides) {
  cr_expect_eq(detour_yaml_charge(&g_c, NULL, "a", DETOUR_YAML_MAX_ALLOC - 1),
               0);
  cr_expect_eq(detour_yaml_charge(&g_c, NULL, "b", 1), 0);
  cr_expect_eq(detour_yaml_charge(&g_c, value("lo"), "lo", 1), DETOUR_ERANGE);
  cr_expect(strstr(g_err, "y.yaml:1:5: key 'lo': this file asks for more "
                          "than the 64 MiB"),
            "%s", g_err);
}

typedef struct {
  const char *name;
  int payload;
} entry;

Test(yaml_get, key_table_walk) {
  static const entry table[] = {{"lo", 1}, {"hi", 2}};
  detour_yaml_iter it;
  cr_assert_eq(detour_yaml_iter_init(&g_c, &it, detour_yaml_root(&g_f), "top",
                                     NULL, false),
               0);
  cr_expect_eq(detour_yaml_next_key(&g_c, &it, table, sizeof *table, 2), 1);
  cr_expect_eq(table[it.index].payload, 1);
  cr_expect_str_eq(it.path, "top.lo");
  cr_expect_eq(detour_yaml_next_key(&g_c, &it, table, sizeof *table, 2), 1);
  cr_expect_eq(table[it.index].payload, 2);
  cr_expect_eq(detour_yaml_next_key(&g_c, &it, table, sizeof *table, 2),
               DETOUR_EPARSE);
  cr_expect_str_eq(g_err, "y.yaml:3:1: key 'top.low': unknown key (expected "
                          "one of: lo, hi)");
}

/* Found by fuzz_config and fuzz_fake_script: a plain scalar over several
 * lines (CR or LF) was quoted verbatim, so the message spanned lines.
 * Control characters are now escaped: every message is one line. */
Test(yaml_load, messages_are_one_line) {
  const char *text = "fault: [ \"disk\\r\\n\\x1b[2Jfull\" ]\n";
  size_t n = 0;
  cr_assert_null(detour_fake_load_string(text, strlen(text), "s.yaml", &n,
                                         g_err, sizeof g_err));
  cr_expect_null(strchr(g_err, '\n'), "%s", g_err);
  cr_expect_null(strchr(g_err, '\r'), "%s", g_err);
  cr_expect_null(strchr(g_err, '\x1b'), "%s", g_err);
  cr_expect(strstr(g_err, "unknown fault 'disk\\r\\n\\x1b[2Jfull'"), "%s",
            g_err);
}

/* Found by fuzz_fake_script: "params: 3all" (not a boolean) read an
 * uninitialised bool before reporting the error (UBSan: "load of value
 * 224, which is not a valid value for type 'bool'"; CTest fails the
 * sanitizer build on it). The stack is filled first so the bad value is
 * there to read whatever ran before. */
static void __attribute__((noinline)) dirty_stack(void) {
  volatile unsigned char junk[65536];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = 0xe0; /* what an uninitialised local would then hold */
}

Test(yaml_load, fake_rule_params_not_a_bool) {
  const char *text = "name: x\ngreeting: { code: 220, params: 3all }\n";
  size_t n = 0;
  dirty_stack();
  cr_assert_null(detour_fake_load_string(text, strlen(text), "s.yaml", &n,
                                         g_err, sizeof g_err));
  cr_expect(strstr(g_err, "s.yaml:2:32: expected true or false, got '3all'"),
            "%s", g_err);
}
