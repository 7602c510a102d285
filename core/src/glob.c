/*
 * glob.c - the one wildcard matcher of the project: detour permission
 * entries ("*@example.com"), fake-server address rules, scenario filters
 * and expectations all match through it.
 */
#include <ctype.h>

#include "detour/detour.h"

static bool same_char(char a, char b, unsigned flags) {
  if (flags & DETOUR_GLOB_NOCASE)
    return tolower((unsigned char)a) == tolower((unsigned char)b);
  return a == b;
}

/* Iterative, with one backtrack point (the last '*'): at most
 * (|pattern| + 1) * (|text| + 1) steps, linear in the text for a given
 * pattern, and never recursive, so hostile input cannot blow the stack.
 * detour__glob_count also reports the steps taken (*steps, when not NULL)
 * so tests bound the work by counting, not by a clock (test_glob.c). */
bool detour__glob_count(const char *pattern, const char *text, unsigned flags,
                        unsigned long *steps) {
  const char *p = pattern, *t = text;
  const char *star = NULL, *resume = NULL;
  unsigned long n = 0;
  if (!p || !t)
    return false;
  bool match = true;
  for (; *t; n++) {
    if (*p == '*') {
      star = p++;
      resume = t;
    } else if (*p && ((*p == '?' && (flags & DETOUR_GLOB_QMARK)) ||
                      same_char(*p, *t, flags))) {
      p++;
      t++;
    } else if (star) {
      p = star + 1;
      t = ++resume;
    } else {
      match = false;
      break;
    }
  }
  if (steps)
    *steps = n;
  if (!match)
    return false;
  while (*p == '*')
    p++;
  return *p == '\0';
}

bool detour_glob(const char *pattern, const char *text, unsigned flags) {
  return detour__glob_count(pattern, text, flags, NULL);
}
