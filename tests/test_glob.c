/*
 * test_glob.c - detour_glob, the one wildcard matcher (permission entries,
 * fake-server rules, scenario filters and expectations).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour.h"

Test(glob, star_matches_any_run_including_none) {
  cr_assert(detour_glob("*@example.com", "a@example.com", 0));
  cr_assert(detour_glob("*@example.com", "@example.com", 0));
  cr_assert(detour_glob("a*b*c", "abc", 0));
  cr_assert(detour_glob("a*b*c", "a-b-b-c", 0));
  cr_assert(!detour_glob("a*b*c", "a-b-b-", 0));
  cr_assert(detour_glob("*", "", 0));
  cr_assert(!detour_glob("", "x", 0));
}

Test(glob, case_only_with_nocase) {
  cr_assert(!detour_glob("*@EXAMPLE.com", "a@example.com", 0));
  cr_assert(detour_glob("*@EXAMPLE.com", "a@example.com", DETOUR_GLOB_NOCASE));
}

Test(glob, question_mark_only_with_qmark) {
  cr_assert(!detour_glob("a?c", "abc", 0));
  cr_assert(detour_glob("a?c", "a?c", 0));
  cr_assert(detour_glob("a?c", "abc", DETOUR_GLOB_QMARK));
  cr_assert(!detour_glob("a?c", "ac", DETOUR_GLOB_QMARK));
}

Test(glob, null_never_matches) {
  cr_assert(!detour_glob(NULL, "x", 0));
  cr_assert(!detour_glob("x", NULL, 0));
}

/* Internal (core/src/glob.c): detour_glob counting its steps. */
bool detour__glob_count(const char *pattern, const char *text, unsigned flags,
                        unsigned long *steps);

static unsigned long steps_on_as(const char *pattern, size_t n) {
  char *text = malloc(n + 1);
  cr_assert_not_null(text);
  memset(text, 'a', n);
  text[n] = '\0';
  unsigned long steps = 0;
  cr_assert(!detour__glob_count(pattern, text, 0, &steps));
  free(text);
  return steps;
}

/* Many stars against a long run that almost matches: the classic input
 * that makes a backtracking matcher exponential or a naive one quadratic.
 * Bounded by counting steps, not by a clock: doubling the text at most
 * doubles the work, and the work stays under (|p| + 1) * (|t| + 1). */
Test(glob, long_hostile_input_stays_linear_enough) {
  const char *pattern = "*a*a*a*a*a*b";
  unsigned long s1 = steps_on_as(pattern, 1000);
  unsigned long s2 = steps_on_as(pattern, 2000);
  cr_assert_gt(s1, 1000, "the matcher read the whole text (%lu steps)", s1);
  cr_assert_leq(s2, 2 * s1 + 16,
                "work grew from %lu to %lu steps when the "
                "text doubled",
                s1, s2);
  unsigned long s = steps_on_as(pattern, 20000);
  cr_assert_leq(s, (unsigned long)(strlen(pattern) + 1) * 20001,
                "%lu steps for 20000 bytes", s);
}
