/*
 * test_glob.c - detour_glob, the one wildcard matcher (permission entries,
 * fake-server rules, scenario filters and expectations).
 */
#include <criterion/criterion.h>

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

Test(glob, long_hostile_input_stays_linear_enough) {
  static char text[20001];
  memset(text, 'a', sizeof text - 1);
  cr_assert(!detour_glob("*a*a*a*a*a*b", text, 0));
}
