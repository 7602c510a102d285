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

/* Iterative, with one backtrack point (the last '*'): linear in practice
 * and never recursive, so hostile input cannot blow the stack. */
bool detour_glob(const char *pattern, const char *text, unsigned flags) {
  const char *p = pattern, *t = text;
  const char *star = NULL, *resume = NULL;
  if (!p || !t)
    return false;
  while (*t) {
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
      return false;
    }
  }
  while (*p == '*')
    p++;
  return *p == '\0';
}
