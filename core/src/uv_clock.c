/*
 * uv_clock.c - the one clock of the libuv side (detour_clock, detour_timer)
 * and the virtual-time runner (detour_clock_run_virtual).
 *
 * A real clock reads the wall clock once, at creation, and then advances
 * with the loop's monotonic time, so "now" agrees with the uv timers that
 * back its detour_timers.
 *
 * A virtual clock never looks at real time. Its armed timers sit in a
 * binary min-heap ordered by (deadline, arming sequence), so timers due at
 * the same instant fire in the order they were armed and every run is the
 * same. Time moves only in detour_clock_advance().
 *
 * detour_clock_run_virtual() steps the loop without blocking and advances
 * virtual time only when the loop is quiescent. A step counts as quiet when
 * all of these hold (see step_was_quiet()):
 *   - the clock's own activity counter did not move: no detour_timer was
 *     armed, stopped, freed or fired and no hold was taken or dropped (this
 *     sees the engine driver and the fake servers, which time everything
 *     through this clock);
 *   - the loop's active handle and request counts did not move: connects,
 *     accepts (uv_read_start activates the new handle), writes and closes
 *     all change them. This also covers libuv's lazily applied watcher
 *     changes: a callback that starts watching a new fd changes a count,
 *     so the step that applies the change is never the last quiet one;
 *   - libuv has no immediate work (uv_backend_timeout() is not 0 while the
 *     loop is alive: nothing pending, idle, closing, or a due uv timer);
 *   - no hold is taken (a name look-up on the thread pool);
 *   - the loop's backend fd (epoll) stays unreadable for a short real wait:
 *     on loopback a write, a connect, a refusal or a close is visible there
 *     by then.
 * A read callback that changes none of these can go unseen, but such a
 * callback leaves nothing behind to run, which is all quiescence needs.
 * QUIET_STEPS quiet steps in a row make the loop quiescent.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "detour/detour_uv.h"

/* Quiet steps in a row before virtual time may advance, and the real wait
 * (ms) after each step. */
#define QUIET_STEPS 3
#define QUIET_WAIT_MS 1

struct detour_clock {
  uv_loop_t *loop;
  bool is_virtual;
  /* real: now = wall0 + (uv_now(loop) - uv0) */
  detour_ms wall0;
  uint64_t uv0;
  /* virtual */
  detour_ms now;
  detour_timer **heap;
  size_t heap_len, heap_cap;
  uint64_t next_seq;
  /* bumped by everything that makes work; compared by run_virtual */
  uint64_t activity;
  unsigned holds;
  size_t ntimers; /* live (not yet freed) timers */
};

struct detour_timer {
  detour_clock *clock;
  detour_timer_cb cb;
  void *arg;
  /* real */
  uv_timer_t handle;
  /* virtual */
  detour_ms deadline;
  uint64_t seq;
  size_t heap_index; /* NOT_IN_HEAP when not armed */
};

#define NOT_IN_HEAP ((size_t)-1)

/* ------------------------------------------------------------------------ */
/* Clock                                                                     */

static detour_ms wall_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (detour_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static detour_clock *clock_alloc(uv_loop_t *loop, bool is_virtual) {
  if (loop == NULL)
    return NULL;
  detour_clock *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->loop = loop;
  c->is_virtual = is_virtual;
  return c;
}

detour_clock *detour_clock_new_real(uv_loop_t *loop) {
  detour_clock *c = clock_alloc(loop, false);
  if (c == NULL)
    return NULL;
  /* The loop's cached time may be stale; align it with the wall reading. */
  uv_update_time(loop);
  c->uv0 = uv_now(loop);
  c->wall0 = wall_clock_ms();
  return c;
}

detour_clock *detour_clock_new_virtual(uv_loop_t *loop, detour_ms start) {
  detour_clock *c = clock_alloc(loop, true);
  if (c == NULL)
    return NULL;
  c->now = start;
  return c;
}

void detour_clock_free(detour_clock *c) {
  if (c == NULL)
    return;
  assert(c->ntimers == 0 && "free every detour_timer before its clock");
  free(c->heap);
  free(c);
}

bool detour_clock_is_virtual(const detour_clock *c) { return c->is_virtual; }

detour_ms detour_clock_now(const detour_clock *c) {
  if (c->is_virtual)
    return c->now;
  return c->wall0 + (detour_ms)(uv_now(c->loop) - c->uv0);
}

uv_loop_t *detour_clock_loop(const detour_clock *c) { return c->loop; }

void detour_clock_hold(detour_clock *c) {
  c->holds++;
  c->activity++;
}

void detour_clock_release(detour_clock *c) {
  assert(c->holds > 0);
  c->holds--;
  c->activity++;
}

/* ------------------------------------------------------------------------ */
/* Virtual timers: a binary min-heap on (deadline, seq).                     */

static bool fires_before(const detour_timer *a, const detour_timer *b) {
  if (a->deadline != b->deadline)
    return a->deadline < b->deadline;
  return a->seq < b->seq;
}

static void heap_set(detour_clock *c, size_t i, detour_timer *t) {
  c->heap[i] = t;
  t->heap_index = i;
}

static void heap_sift_up(detour_clock *c, size_t i) {
  detour_timer *t = c->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!fires_before(t, c->heap[parent]))
      break;
    heap_set(c, i, c->heap[parent]);
    i = parent;
  }
  heap_set(c, i, t);
}

static void heap_sift_down(detour_clock *c, size_t i) {
  detour_timer *t = c->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= c->heap_len)
      break;
    if (child + 1 < c->heap_len &&
        fires_before(c->heap[child + 1], c->heap[child]))
      child++;
    if (!fires_before(c->heap[child], t))
      break;
    heap_set(c, i, c->heap[child]);
    i = child;
  }
  heap_set(c, i, t);
}

/* Room for every live timer is reserved when the timer is made, so arming
 * never fails for lack of memory. */
static bool heap_reserve(detour_clock *c, size_t n) {
  if (n <= c->heap_cap)
    return true;
  size_t cap = c->heap_cap ? 2 * c->heap_cap : 16;
  while (cap < n)
    cap *= 2;
  detour_timer **h = realloc(c->heap, cap * sizeof *h);
  if (h == NULL)
    return false;
  c->heap = h;
  c->heap_cap = cap;
  return true;
}

static void heap_push(detour_clock *c, detour_timer *t) {
  assert(c->heap_len < c->heap_cap);
  heap_set(c, c->heap_len++, t);
  heap_sift_up(c, t->heap_index);
}

static void heap_remove(detour_clock *c, detour_timer *t) {
  size_t i = t->heap_index;
  detour_timer *last = c->heap[--c->heap_len];
  t->heap_index = NOT_IN_HEAP;
  if (last == t)
    return;
  heap_set(c, i, last);
  /* The moved timer may belong above or below its new slot. */
  heap_sift_up(c, i);
  heap_sift_down(c, last->heap_index);
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

static void on_uv_timer(uv_timer_t *h) {
  detour_timer *t = h->data;
  t->clock->activity++;
  /* The callback may free t: touch nothing after it. */
  t->cb(t, t->arg);
}

static void on_uv_timer_closed(uv_handle_t *h) { free(h->data); }

detour_timer *detour_timer_new(detour_clock *c, detour_timer_cb cb, void *arg) {
  if (c == NULL || cb == NULL)
    return NULL;
  detour_timer *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  t->clock = c;
  t->cb = cb;
  t->arg = arg;
  t->heap_index = NOT_IN_HEAP;
  bool ok = c->is_virtual ? heap_reserve(c, c->ntimers + 1)
                          : uv_timer_init(c->loop, &t->handle) == 0;
  if (!ok) {
    free(t);
    return NULL;
  }
  t->handle.data = t;
  c->ntimers++;
  return t;
}

void detour_timer_start(detour_timer *t, detour_ms deadline) {
  detour_clock *c = t->clock;
  detour_ms now = detour_clock_now(c);
  if (deadline < now)
    deadline = now;
  c->activity++;
  if (!c->is_virtual) {
    uv_timer_start(&t->handle, on_uv_timer, (uint64_t)(deadline - now), 0);
    return;
  }
  if (t->heap_index != NOT_IN_HEAP)
    heap_remove(c, t);
  t->deadline = deadline;
  t->seq = c->next_seq++;
  heap_push(c, t);
}

void detour_timer_stop(detour_timer *t) {
  detour_clock *c = t->clock;
  c->activity++;
  if (!c->is_virtual)
    uv_timer_stop(&t->handle);
  else if (t->heap_index != NOT_IN_HEAP)
    heap_remove(c, t);
}

bool detour_timer_active(const detour_timer *t) {
  if (!t->clock->is_virtual)
    return uv_is_active((const uv_handle_t *)&t->handle) != 0;
  return t->heap_index != NOT_IN_HEAP;
}

void detour_timer_free(detour_timer *t) {
  if (t == NULL)
    return;
  detour_clock *c = t->clock;
  detour_timer_stop(t);
  c->ntimers--;
  /* A uv handle outlives this call until its close callback; the memory
   * goes with it. The close callback does not touch the clock, so the
   * clock may be freed first. */
  if (!c->is_virtual)
    uv_close((uv_handle_t *)&t->handle, on_uv_timer_closed);
  else
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Advancing virtual time                                                    */

detour_ms detour_clock_next_deadline(const detour_clock *c) {
  if (!c->is_virtual || c->heap_len == 0)
    return DETOUR_NO_DEADLINE;
  return c->heap[0]->deadline;
}

int detour_clock_advance(detour_clock *c) {
  if (!c->is_virtual || c->heap_len == 0)
    return 0;
  c->now = c->heap[0]->deadline;
  /* Only timers armed before this call fire in it: a callback that re-arms
   * for "now" runs at the next advance, after the loop has settled, and a
   * timer that keeps re-arming itself cannot spin here forever. */
  uint64_t armed_before = c->next_seq;
  int fired = 0;
  while (c->heap_len > 0 && c->heap[0]->deadline <= c->now &&
         c->heap[0]->seq < armed_before) {
    detour_timer *t = c->heap[0];
    heap_remove(c, t);
    c->activity++;
    fired++;
    t->cb(t, t->arg); /* may free t */
  }
  return fired;
}

/* ------------------------------------------------------------------------ */
/* The virtual-time runner                                                   */

typedef struct {
  uint64_t activity;
  unsigned handles;
  unsigned reqs;
} loop_snapshot;

static loop_snapshot snapshot(const detour_clock *c) {
  loop_snapshot s = {c->activity, c->loop->active_handles,
                     c->loop->active_reqs.count};
  return s;
}

/* Something libuv would run at once: pending or closing callbacks, idle
 * handles, a due uv timer. */
static bool loop_has_immediate_work(uv_loop_t *loop) {
  return uv_loop_alive(loop) && uv_backend_timeout(loop) == 0;
}

/* Waits up to ms for an fd the loop watches to become ready. */
static bool backend_ready_within(uv_loop_t *loop, int ms) {
  struct pollfd p = {.fd = uv_backend_fd(loop), .events = POLLIN};
  if (p.fd < 0)
    return false;
  int n;
  do
    n = poll(&p, 1, ms);
  while (n < 0 && errno == EINTR);
  return n > 0;
}

static bool step_was_quiet(detour_clock *c, loop_snapshot before) {
  loop_snapshot after = snapshot(c);
  if (after.activity != before.activity || after.handles != before.handles ||
      after.reqs != before.reqs)
    return false;
  if (loop_has_immediate_work(c->loop))
    return false;
  /* The wait also keeps a hold (a look-up on the thread pool) from
   * spinning: its completion wakes the backend fd. */
  if (backend_ready_within(c->loop, QUIET_WAIT_MS))
    return false;
  return c->holds == 0;
}

/* Quiescent with no virtual timer armed: can anything still happen? Only a
 * hold or a real uv timer can still wake the loop. */
static bool may_still_wake(detour_clock *c) {
  return c->holds > 0 || uv_backend_timeout(c->loop) > 0;
}

int detour_clock_run_virtual(detour_clock *c, bool (*done)(void *arg),
                             void *arg, detour_ms max_real_ms) {
  if (c == NULL || !c->is_virtual)
    return DETOUR_EINVAL;
  if (max_real_ms < 0)
    max_real_ms = 0;
  uint64_t limit_ns = uv_hrtime() + (uint64_t)max_real_ms * 1000000u;
  int quiet = 0;
  for (;;) {
    if (done != NULL && done(arg))
      return 0;
    if (uv_hrtime() > limit_ns)
      return DETOUR_EIO;
    loop_snapshot before = snapshot(c);
    uv_run(c->loop, UV_RUN_NOWAIT);
    if (!step_was_quiet(c, before)) {
      quiet = 0;
      continue;
    }
    if (++quiet < QUIET_STEPS)
      continue;
    quiet = 0;
    if (detour_clock_advance(c) == 0 && !may_still_wake(c))
      return done == NULL ? 0 : DETOUR_ENOT_FOUND;
  }
}

/* ------------------------------------------------------------------------ */
/* The thread pool                                                           */

static void no_work(uv_work_t *w) { (void)w; }
static void no_work_done(uv_work_t *w, int status) {
  (void)status;
  *(bool *)w->data = true;
}

/* The completion wakes the loop (an async handle); bounded all the same,
 * as other handles (listeners) may keep the loop alive. */
void detour_uv_warm_thread_pool(uv_loop_t *loop) {
  uv_work_t w;
  bool done = false;
  w.data = &done;
  if (uv_queue_work(loop, &w, no_work, no_work_done) != 0)
    return;
  uint64_t end = uv_hrtime() + 2000000000u;
  while (!done && uv_hrtime() < end)
    uv_run(loop, UV_RUN_NOWAIT);
  if (!done)
    uv_cancel((uv_req_t *)&w);
}
