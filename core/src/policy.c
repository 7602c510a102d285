/*
 * policy.c - the detour permission table of SPEC R4.
 *
 * Whether a message may use a backup server ("detour") is decided per
 * message from two lists of entries, one for senders and one for
 * recipients, each entry a whole address or a '*' pattern with a verdict
 * (allowed / denied).
 *
 * The rules, in the order they apply:
 * 1. A per-send override from the sender (allow / deny) wins over
 *    everything, even over "no table".
 * 2. No table means detour is allowed.
 * 3. One address's verdict: an exact entry (no '*', compared ignoring
 *    case) wins over every pattern; else the matching pattern with the
 *    most literal characters (the most specific) wins; on a tie, and for
 *    an address entered twice, the entry added last wins, so a later
 *    configuration line refines an earlier one. An address no entry
 *    matches takes the table's default (allowed unless configured).
 * 4. The message's verdict combines them by the table's rule:
 *      any        sender OR any recipient allowed (the embodiment, [0016])
 *      sender     the sender alone
 *      recipient  any recipient allowed; the sender is ignored
 *      all        the sender AND every recipient allowed
 */
#include "detour/detour.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
  char *pattern;
  bool exact; /* no '*' in the pattern */
  bool allow;
} entry;

typedef struct {
  entry *v;
  size_t n, cap;
} entry_list;

struct detour_policy {
  detour_rule rule;
  bool default_allow;
  entry_list senders, recipients;
};

detour_policy *detour_policy_new(void) {
  detour_policy *p = calloc(1, sizeof *p);
  if (p) {
    p->rule = DETOUR_RULE_ANY;
    p->default_allow = true;
  }
  return p;
}

static void list_free(entry_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].pattern);
  free(l->v);
}

void detour_policy_free(detour_policy *p) {
  if (!p)
    return;
  list_free(&p->senders);
  list_free(&p->recipients);
  free(p);
}

void detour_policy_set_rule(detour_policy *p, detour_rule rule) {
  if (p && rule >= DETOUR_RULE_ANY && rule <= DETOUR_RULE_ALL)
    p->rule = rule;
}

void detour_policy_set_default(detour_policy *p, bool allow) {
  if (p)
    p->default_allow = allow;
}

static int list_add(entry_list *l, const char *pattern, bool allow) {
  if (!pattern || pattern[0] == '\0')
    return DETOUR_EINVAL;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    entry *grown = realloc(l->v, cap * sizeof *grown);
    if (!grown)
      return DETOUR_ENOMEM;
    l->v = grown;
    l->cap = cap;
  }
  char *copy = strdup(pattern);
  if (!copy)
    return DETOUR_ENOMEM;
  l->v[l->n++] = (entry){copy, strchr(copy, '*') == NULL, allow};
  return 0;
}

int detour_policy_add_sender(detour_policy *p, const char *pattern,
                             bool allow) {
  return p ? list_add(&p->senders, pattern, allow) : DETOUR_EINVAL;
}

int detour_policy_add_recipient(detour_policy *p, const char *pattern,
                                bool allow) {
  return p ? list_add(&p->recipients, pattern, allow) : DETOUR_EINVAL;
}

/* '*' matches any run of characters (also none, also '@'); everything else
 * matches itself ignoring case. */
static bool glob_match(const char *pat, const char *s) {
  return detour_glob(pat, s, DETOUR_GLOB_NOCASE);
}

static size_t literal_chars(const char *pat) {
  size_t n = 0;
  for (; *pat; pat++)
    n += *pat != '*';
  return n;
}

/* Rule 3 above: the verdict of one address against one list. Scanning
 * backwards makes the entry added last win every tie. */
static bool lookup(const entry_list *l, const char *addr, bool dflt) {
  if (!addr)
    addr = "";
  for (size_t i = l->n; i > 0; i--) {
    const entry *e = &l->v[i - 1];
    if (e->exact && strcasecmp(e->pattern, addr) == 0)
      return e->allow;
  }
  const entry *best = NULL;
  size_t best_len = 0;
  for (size_t i = l->n; i > 0; i--) {
    const entry *e = &l->v[i - 1];
    if (e->exact)
      continue;
    size_t len = literal_chars(e->pattern);
    if ((!best || len > best_len) && glob_match(e->pattern, addr)) {
      best = e;
      best_len = len;
    }
  }
  return best ? best->allow : dflt;
}

bool detour_policy_sender_allowed(const detour_policy *p, const char *addr) {
  return p ? lookup(&p->senders, addr, p->default_allow) : true;
}

bool detour_policy_recipient_allowed(const detour_policy *p, const char *addr) {
  return p ? lookup(&p->recipients, addr, p->default_allow) : true;
}

static bool any_recipient(const detour_policy *p, const char *const *rcpts,
                          size_t n) {
  for (size_t i = 0; rcpts && i < n; i++)
    if (detour_policy_recipient_allowed(p, rcpts[i]))
      return true;
  return false;
}

static bool every_recipient(const detour_policy *p, const char *const *rcpts,
                            size_t n) {
  for (size_t i = 0; rcpts && i < n; i++)
    if (!detour_policy_recipient_allowed(p, rcpts[i]))
      return false;
  return true;
}

bool detour_policy_allows(const detour_policy *p, const char *sender,
                          const char *const *rcpts, size_t nrcpts,
                          detour_override ov) {
  if (ov == DETOUR_OVERRIDE_ALLOW)
    return true;
  if (ov == DETOUR_OVERRIDE_DENY)
    return false;
  if (!p)
    return true;
  switch (p->rule) {
  case DETOUR_RULE_SENDER:
    return detour_policy_sender_allowed(p, sender);
  case DETOUR_RULE_RECIPIENT:
    return any_recipient(p, rcpts, nrcpts);
  case DETOUR_RULE_ALL:
    return detour_policy_sender_allowed(p, sender) &&
           every_recipient(p, rcpts, nrcpts);
  case DETOUR_RULE_ANY:
  default:
    return detour_policy_sender_allowed(p, sender) ||
           any_recipient(p, rcpts, nrcpts);
  }
}
