/*
 * test_policy.c - the SPEC R4 detour permission table (core/src/policy.c):
 * exact entries, patterns, specificity, ties, case, defaults, every rule
 * (any, sender, recipient, all) and the per-send override.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "detour/detour.h"

static detour_policy *p;

static void setup(void) {
  p = detour_policy_new();
  cr_assert_not_null(p);
}
static void teardown(void) { detour_policy_free(p); }

TestSuite(policy, .init = setup, .fini = teardown);

#define NONE DETOUR_OVERRIDE_NONE
#define ALLOW DETOUR_OVERRIDE_ALLOW
#define DENY DETOUR_OVERRIDE_DENY

Test(policy, empty_table_default_allows) {
  cr_expect(detour_policy_sender_allowed(p, "a@x.org"));
  cr_expect(detour_policy_recipient_allowed(p, "b@y.org"));
  const char *r[] = {"b@y.org"};
  cr_expect(detour_policy_allows(p, "a@x.org", r, 1, NONE));
}

Test(policy, default_deny) {
  detour_policy_set_default(p, false);
  cr_expect_not(detour_policy_sender_allowed(p, "a@x.org"));
  cr_expect_not(detour_policy_recipient_allowed(p, "b@y.org"));
  const char *r[] = {"b@y.org"};
  cr_expect_not(detour_policy_allows(p, "a@x.org", r, 1, NONE));
  detour_policy_set_default(p, true);
  cr_expect(detour_policy_allows(p, "a@x.org", r, 1, NONE));
}

Test(policy, exact_entry_case_insensitive) {
  cr_assert_eq(detour_policy_add_sender(p, "Boss@Example.COM", false), 0);
  cr_expect_not(detour_policy_sender_allowed(p, "boss@example.com"));
  cr_expect_not(detour_policy_sender_allowed(p, "BOSS@EXAMPLE.COM"));
  cr_expect(detour_policy_sender_allowed(p, "boss@example.co"));
  cr_expect(detour_policy_sender_allowed(p, "xboss@example.com"));
  /* sender entries do not apply to recipients */
  cr_expect(detour_policy_recipient_allowed(p, "boss@example.com"));
}

Test(policy, pattern_matches) {
  cr_assert_eq(detour_policy_add_recipient(p, "*@example.com", false), 0);
  cr_expect_not(detour_policy_recipient_allowed(p, "a@example.com"));
  cr_expect_not(detour_policy_recipient_allowed(p, "A@EXAMPLE.com"));
  cr_expect_not(detour_policy_recipient_allowed(p, "@example.com"));
  cr_expect(detour_policy_recipient_allowed(p, "a@example.com.evil"));
  cr_expect(detour_policy_recipient_allowed(p, "a@sub.example.org"));
  cr_expect(detour_policy_recipient_allowed(p, "a@xexample.co"));
  /* senders unaffected */
  cr_expect(detour_policy_sender_allowed(p, "a@example.com"));
}

Test(policy, star_in_the_middle_and_several_stars) {
  cr_assert_eq(detour_policy_add_sender(p, "*@*.example.com", false), 0);
  cr_assert_eq(detour_policy_add_sender(p, "ops-*@*", false), 0);
  cr_expect_not(detour_policy_sender_allowed(p, "a@mx.example.com"));
  cr_expect(detour_policy_sender_allowed(p, "a@example.com"));
  cr_expect_not(detour_policy_sender_allowed(p, "ops-night@anything"));
  cr_expect(detour_policy_sender_allowed(p, "ops@anything"));
  cr_expect(detour_policy_sender_allowed(p, "xops-1@a"));
}

Test(policy, backtracking_glob) {
  cr_assert_eq(detour_policy_add_sender(p, "*ab*abc", false), 0);
  cr_expect_not(detour_policy_sender_allowed(p, "aabxabababc"));
  cr_expect(detour_policy_sender_allowed(p, "aabxababab"));
  cr_expect(detour_policy_sender_allowed(p, "abc"));
}

Test(policy, lone_star_matches_everything_including_empty) {
  detour_policy_set_default(p, true);
  cr_assert_eq(detour_policy_add_sender(p, "*", false), 0);
  cr_expect_not(detour_policy_sender_allowed(p, "any@where"));
  cr_expect_not(detour_policy_sender_allowed(p, ""));
  cr_expect_not(detour_policy_sender_allowed(p, NULL));
}

Test(policy, exact_wins_over_pattern) {
  cr_assert_eq(detour_policy_add_sender(p, "vip@example.com", true), 0);
  cr_assert_eq(detour_policy_add_sender(p, "*@example.com", false), 0);
  cr_assert_eq(detour_policy_add_sender(p, "vip@example.co*", false), 0);
  cr_expect(detour_policy_sender_allowed(p, "vip@example.com"));
  cr_expect_not(detour_policy_sender_allowed(p, "other@example.com"));
}

Test(policy, longest_pattern_wins_regardless_of_order) {
  cr_assert_eq(detour_policy_add_recipient(p, "*@sales.example.com", true), 0);
  cr_assert_eq(detour_policy_add_recipient(p, "*@*example.com", false), 0);
  cr_assert_eq(detour_policy_add_recipient(p, "*", true), 0);
  cr_expect(detour_policy_recipient_allowed(p, "a@sales.example.com"));
  cr_expect_not(detour_policy_recipient_allowed(p, "a@dev.example.com"));
  cr_expect(detour_policy_recipient_allowed(p, "a@dev.example.org"));
}

Test(policy, stars_do_not_count_as_length) {
  /* "****@x.org" has 6 literal characters, "*@mx.x.org" has 9 */
  cr_assert_eq(detour_policy_add_sender(p, "*@mx.x.org", true), 0);
  cr_assert_eq(detour_policy_add_sender(p, "****@*x.org", false), 0);
  cr_expect(detour_policy_sender_allowed(p, "a@mx.x.org"));
  cr_expect_not(detour_policy_sender_allowed(p, "a@x.org"));
}

Test(policy, ties_go_to_the_entry_added_last) {
  cr_assert_eq(detour_policy_add_sender(p, "a*@x.org", false), 0);
  cr_assert_eq(detour_policy_add_sender(p, "*b@x.org", true), 0);
  cr_expect(detour_policy_sender_allowed(p, "ab@x.org"));
  cr_assert_eq(detour_policy_add_sender(p, "same@x.org", true), 0);
  cr_assert_eq(detour_policy_add_sender(p, "SAME@x.org", false), 0);
  cr_expect_not(detour_policy_sender_allowed(p, "same@x.org"));
}

Test(policy, bad_entries) {
  cr_expect_eq(detour_policy_add_sender(p, "", true), DETOUR_EINVAL);
  cr_expect_eq(detour_policy_add_sender(p, NULL, true), DETOUR_EINVAL);
  cr_expect_eq(detour_policy_add_recipient(p, "", true), DETOUR_EINVAL);
  cr_expect_eq(detour_policy_add_sender(NULL, "a", true), DETOUR_EINVAL);
  cr_expect_eq(detour_policy_add_recipient(NULL, "a", true), DETOUR_EINVAL);
}

Test(policy, many_entries) {
  char buf[32];
  for (int i = 0; i < 200; i++) {
    snprintf(buf, sizeof buf, "u%d@x.org", i);
    cr_assert_eq(detour_policy_add_recipient(p, buf, i % 2 == 0), 0);
  }
  cr_expect(detour_policy_recipient_allowed(p, "u100@x.org"));
  cr_expect_not(detour_policy_recipient_allowed(p, "u101@x.org"));
}

/* The four rules, each over the whole truth table of one sender and two
 * recipients: S = sender allowed, R1/R2 = recipients allowed. */
static bool decide(detour_rule rule, bool s, bool r1, bool r2) {
  detour_policy *q = detour_policy_new();
  detour_policy_set_rule(q, rule);
  detour_policy_add_sender(q, "s@x.org", s);
  detour_policy_add_recipient(q, "r1@x.org", r1);
  detour_policy_add_recipient(q, "r2@x.org", r2);
  const char *r[] = {"r1@x.org", "r2@x.org"};
  bool v = detour_policy_allows(q, "s@x.org", r, 2, NONE);
  detour_policy_free(q);
  return v;
}

Test(policy, rules_truth_tables) {
  for (int m = 0; m < 8; m++) {
    bool s = m & 1, r1 = m & 2, r2 = m & 4;
    cr_expect_eq(decide(DETOUR_RULE_ANY, s, r1, r2), s || r1 || r2, "any %d",
                 m);
    cr_expect_eq(decide(DETOUR_RULE_SENDER, s, r1, r2), s, "sender %d", m);
    cr_expect_eq(decide(DETOUR_RULE_RECIPIENT, s, r1, r2), r1 || r2,
                 "recipient %d", m);
    cr_expect_eq(decide(DETOUR_RULE_ALL, s, r1, r2), s && r1 && r2, "all %d",
                 m);
  }
}

Test(policy, rule_default_is_any_and_bad_rule_ignored) {
  detour_policy_set_default(p, false);
  detour_policy_add_recipient(p, "r@x.org", true);
  const char *r[] = {"r@x.org"};
  cr_expect(detour_policy_allows(p, "s@x.org", r, 1, NONE)); /* any */
  detour_policy_set_rule(p, DETOUR_RULE_SENDER);
  cr_expect_not(detour_policy_allows(p, "s@x.org", r, 1, NONE));
  detour_policy_set_rule(p, (detour_rule)42); /* ignored: still sender */
  cr_expect_not(detour_policy_allows(p, "s@x.org", r, 1, NONE));
  detour_policy_set_rule(NULL, DETOUR_RULE_ALL);
  detour_policy_set_default(NULL, true);
}

Test(policy, no_recipients) {
  const char *r[] = {"r@x.org"};
  detour_policy_set_rule(p, DETOUR_RULE_RECIPIENT);
  cr_expect_not(detour_policy_allows(p, "s@x.org", r, 0, NONE));
  cr_expect_not(detour_policy_allows(p, "s@x.org", NULL, 3, NONE));
  detour_policy_set_rule(p, DETOUR_RULE_ALL);
  cr_expect(detour_policy_allows(p, "s@x.org", NULL, 0, NONE));
  detour_policy_set_rule(p, DETOUR_RULE_ANY);
  cr_expect(detour_policy_allows(p, "s@x.org", NULL, 0, NONE));
  detour_policy_set_default(p, false);
  cr_expect_not(detour_policy_allows(p, "s@x.org", NULL, 0, NONE));
}

Test(policy, override_wins_over_everything) {
  detour_policy_set_default(p, false);
  detour_policy_add_sender(p, "s@x.org", false);
  const char *r[] = {"r@x.org"};
  cr_expect_not(detour_policy_allows(p, "s@x.org", r, 1, NONE));
  cr_expect(detour_policy_allows(p, "s@x.org", r, 1, ALLOW));
  detour_policy_set_default(p, true);
  detour_policy_add_sender(p, "s@x.org", true);
  cr_expect(detour_policy_allows(p, "s@x.org", r, 1, NONE));
  cr_expect_not(detour_policy_allows(p, "s@x.org", r, 1, DENY));
  /* also without a table */
  cr_expect(detour_policy_allows(NULL, "s@x.org", r, 1, NONE));
  cr_expect(detour_policy_allows(NULL, "s@x.org", r, 1, ALLOW));
  cr_expect_not(detour_policy_allows(NULL, "s@x.org", r, 1, DENY));
  /* an unknown override value means "use the table" */
  cr_expect(detour_policy_allows(p, "s@x.org", r, 1, (detour_override)7));
}

Test(policy, null_table_allows_everything) {
  cr_expect(detour_policy_sender_allowed(NULL, "a@b"));
  cr_expect(detour_policy_recipient_allowed(NULL, "a@b"));
  detour_policy_free(NULL);
}

Test(policy, null_sender_takes_default_or_pattern) {
  /* the null reverse-path "" (bounces) */
  detour_policy_set_rule(p, DETOUR_RULE_SENDER);
  cr_expect(detour_policy_allows(p, "", NULL, 0, NONE));
  cr_expect(detour_policy_allows(p, NULL, NULL, 0, NONE));
  detour_policy_set_default(p, false);
  cr_expect_not(detour_policy_allows(p, "", NULL, 0, NONE));
}
