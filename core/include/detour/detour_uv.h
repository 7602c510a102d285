/*
 * detour_uv.h - the libuv side of libdetour (target detour::uv).
 *
 * Two things live here:
 *   - detour_clock: the one clock every timer of the driver and of the fake
 *     servers goes through. A real clock uses uv timers and the wall clock;
 *     a virtual clock keeps its deadlines in a min-heap and only moves when
 *     the scenario runner advances it, so long retry schedules run in
 *     milliseconds and give the same timestamps every run.
 *   - detour_uv: the driver that turns engine actions into sockets, name
 *     look-ups and timers, and real I/O into engine events. It holds no
 *     policy.
 */
#ifndef DETOUR_DETOUR_UV_H
#define DETOUR_DETOUR_UV_H

#include <uv.h>

#include "detour/detour.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Clock                                                                     */

typedef struct detour_clock detour_clock;
typedef struct detour_timer detour_timer;
typedef void (*detour_timer_cb)(detour_timer *t, void *arg);

/* A real clock: now = wall-clock ms since the Unix epoch, advancing with
 * the loop's monotonic time; timers are uv timers. */
detour_clock *detour_clock_new_real(uv_loop_t *loop);
/* A virtual clock starting at `start` (ms since the Unix epoch). Time only
 * moves through detour_clock_advance(). */
detour_clock *detour_clock_new_virtual(uv_loop_t *loop, detour_ms start);
/* Frees the clock; every timer must have been freed before. */
void detour_clock_free(detour_clock *c);
bool detour_clock_is_virtual(const detour_clock *c);
detour_ms detour_clock_now(const detour_clock *c);
uv_loop_t *detour_clock_loop(const detour_clock *c);

/* Timers: one-shot, re-armable. */
detour_timer *detour_timer_new(detour_clock *c, detour_timer_cb cb, void *arg);
/* Arm (or re-arm) to fire at absolute time `deadline` (now if past). */
void detour_timer_start(detour_timer *t, detour_ms deadline);
void detour_timer_stop(detour_timer *t);
bool detour_timer_active(const detour_timer *t);
/* Stops and frees. Safe from inside the timer's own callback. */
void detour_timer_free(detour_timer *t);

/* Virtual clock only: the earliest armed deadline, or DETOUR_NO_DEADLINE. */
detour_ms detour_clock_next_deadline(const detour_clock *c);
/* Virtual clock only: move now to the earliest deadline and fire every
 * timer due then. Returns the number fired (0: nothing armed). */
int detour_clock_advance(detour_clock *c);

/* Virtual clock only: run the loop until done() returns true or nothing is
 * left to do, advancing virtual time whenever the loop is quiescent (a few
 * UV_RUN_NOWAIT steps in a row, each after a short real wait, ran no
 * callback). Gives up after max_real_ms of real time. Returns 0 when
 * done() became true, DETOUR_EIO on the real-time limit, DETOUR_ENOT_FOUND
 * when nothing was left to do but done() stayed false. */
int detour_clock_run_virtual(detour_clock *c, bool (*done)(void *arg),
                             void *arg, detour_ms max_real_ms);
/* (done may be NULL: run until nothing is left to do, then return 0.) */

/* Virtual clock: keep time from advancing while work that the loop cannot
 * see is in flight (a name look-up on the thread pool). Every hold must be
 * released. Harmless on a real clock. */
void detour_clock_hold(detour_clock *c);
void detour_clock_release(detour_clock *c);

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

typedef struct detour_uv detour_uv;

typedef struct {
  /* Each may be NULL. Row/strings are valid during the call only. */
  void (*on_log)(void *arg, const detour_log_row *row);
  void (*on_warn)(void *arg, const char *text);
  void (*on_rcpt)(void *arg, size_t message, size_t index,
                  const char *recipient, detour_rcpt_outcome outcome,
                  int server, const char *detail);
  void (*on_done)(void *arg, size_t message, detour_done_status status);
  void *arg;
  /* The engine failed (out of memory): every connection is then closed
   * and every unfinished message gets on_rcpt/on_done as DEFERRED. NULL:
   * the text goes to on_warn. */
  void (*on_error)(void *arg, int code, const char *text);
} detour_uv_callbacks;

/* A driver for engine e on clock c (and c's loop). Borrows e and c. */
detour_uv *detour_uv_new(detour_clock *c, detour_engine *e,
                         const detour_uv_callbacks *cb);
/* Submit a message through the engine and start acting on it. Returns the
 * message index or a negative error. */
int detour_uv_submit(detour_uv *d, const detour_message *m);
/* True when the engine is idle and every handle is closed. */
bool detour_uv_idle(const detour_uv *d);
/* Closes every connection and timer; frees d once the handles are closed
 * (run the loop afterwards). */
void detour_uv_free(detour_uv *d);

/* Start libuv's thread pool now (name look-ups and queued work run there)
 * and wait, at most 2 s, until it has run one empty job. Its threads keep
 * the network namespace of the thread that made them, so call this before
 * the loop thread enters another namespace. */
void detour_uv_warm_thread_pool(uv_loop_t *loop);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_DETOUR_UV_H */
