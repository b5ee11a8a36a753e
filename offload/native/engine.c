/*
 * offcast's native pacing engine: one C thread per offload worker (per
 * N-API environment) paces that worker's UDP play tracks and sends their
 * packets straight from the SharedArrayBuffer packet cache.
 *
 * - The thread sleeps on a futex with an absolute CLOCK_MONOTONIC deadline
 *   (the next packet due, coalesced to at most one wake per TICK_MS), or until
 *   a command arrives. Tracks wait in a binary heap ordered by their next due
 *   time (exact deadlines; a few hundred ns per reschedule at 100k packets/s).
 * - Per due track it writes each packet's 12-byte header (PT, marker, seq,
 *   ts, SSRC) into a per-thread staging array and points a second iovec at the
 *   payload in the cache (no copy). The due packets of every track of a turn
 *   go in one io_uring submission (sockets in a registered file table; a lone
 *   small packet as a SEND of a contiguous copy), or, without io_uring, with
 *   one sendmmsg per track. A run of same-size packets goes as one UDP GSO message
 *   (UDP_SEGMENT); when the kernel refuses GSO on a socket, that socket is
 *   marked and the run is sent again packet by packet.
 * - Commands (create, run, stop, close) come from JavaScript through a bounded
 *   single-producer single-consumer ring; the thread takes no lock. A full
 *   ring is an error for the caller, never a wait for the thread. Every
 *   command processed increments `acked`, on which JavaScript can wait
 *   (futex, bounded) when it needs the thread's state (stop, close).
 * - Counters go to shared Float64Arrays JavaScript reads without calls
 *   (layout in offload/native/engine.ts). A finished track is reported with
 *   one threadsafe-function call.
 *
 * JavaScript keeps references (napi_ref) to every typed array a track reads
 * from its create until it has seen the close acknowledged (engineRelease).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* Must match offload/native/engine.ts. */
enum { OP_CREATE = 1, OP_RUN = 2, OP_STOP = 3, OP_CLOSE = 4, OP_HOLD = 5, OP_QUIT = 6 };
enum {
  C_PACKETS = 0, C_OCTETS, C_LAST_TS, C_LAST_AT, C_ERRORS, C_IDX, C_BYTE_OFF, C_SEQ, C_LOOPS, C_MID_FRAME, C_DONE,
  C_LATE_SUM, C_LATE_COUNT, C_LATE /* 13 buckets */, C_GSO = C_LATE + 13, C_FAULT, C_STRIDE = 32
};
enum {
  E_PACKETS = 0, E_OCTETS, E_ERRORS, E_TICKS, E_SYSCALLS, E_GSO, E_GSO_REFUSED, E_LATE_SUM, E_LATE_COUNT, E_LATE /* 13 */,
  E_LAG_SUM = E_LATE + 13, E_LAG_COUNT, E_LAG /* 13 */, E_ACTIVE = E_LAG + 13, E_COMMANDS, E_URING, E_STRIDE = 64
};

#define RING 4096                 /* commands; power of two */
#define BURST 64                  /* packets per track visit (paced) */
#define MAX_BURST 128             /* packets per track visit ("speed": "max") */
#define FINISH_CAP 4096           /* packets a stop sends at most to end a frame */
#define TICK_MS 0.5               /* at most one wake per this, when many tracks are due apart */
#define POOL 1024                 /* packets (and messages) staged per io_uring submission */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000
#define SMALL 320                 /* a lone packet up to this size (header included) goes as IORING_OP_SEND of a copy */

static const double BUCKETS[12] = {0.25, 0.5, 1, 2, 3, 5, 10, 20, 50, 100, 250, 1000};

typedef struct {
  uint32_t op;
  int32_t slot;
  double a[8];
} cmd_t;

typedef struct {
  /* Configuration: written by JavaScript before CREATE, read-only for the thread until CLOSE is acknowledged. */
  int fd; /* the engine's own duplicate of the track's socket (-1: none); closed by the thread at CLOSE */
  const uint8_t *payload;
  size_t payload_bytes;
  const uint16_t *len;
  const uint32_t *ts;
  const uint32_t *send;
  const uint8_t *flags; /* NULL: every packet's marker is marker_all */
  uint32_t count;
  int marker_all;
  uint8_t pt;
  uint32_t ssrc;
  double clock_rate;
  double loop_ms;
  double speed; /* 0: "max" */
  int loop;
  uint32_t ts_base;
  int64_t loop_ticks;
  uint32_t gen;
  napi_ref refs[5]; /* JavaScript thread only */
  /* The thread's. */
  int active;
  int running;
  uint32_t idx;
  size_t byte_off;
  uint32_t seq;
  uint32_t loops;
  int64_t rtp_epoch;
  double zero_wall;
  uint32_t last_ts;
  int mid_frame;
  int in_heap;
  int max_pos;
  int no_gso;
  int fixed; /* its socket sits in the io_uring's registered file table at index `slot` */
} track_t;

typedef struct {
  double due;
  int32_t slot;
} hent_t;

typedef struct engine {
  napi_env env;
  int max_tracks;
  track_t *tracks;
  double *counters; /* max_tracks * C_STRIDE */
  double *totals;   /* E_STRIDE */
  napi_ref counters_ref, totals_ref;
  double offset_ms; /* CLOCK_MONOTONIC ms - performance.now() ms */
  napi_threadsafe_function tsfn;
  pthread_t thread;
  int started;
  /* Ring: JavaScript writes at tail, the thread reads at head. */
  cmd_t ring[RING];
  _Atomic uint32_t head;
  _Atomic uint32_t tail;
  _Atomic uint32_t acked;
  _Atomic uint32_t ack_waiters;
  /* The thread's. */
  hent_t *heap;
  int heap_n;
  int *maxlist;
  int max_n;
  int max_rr;
  atomic_int quit;
  double last_tick;
  double hold_until;
  /* Staging for one track visit. */
  uint8_t hdr[POOL][12];
  struct iovec iov[POOL * 2];
  struct mmsghdr msgs[POOL];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } cmsg[POOL];
  int msg_first[POOL + 1]; /* packet index each message starts at */
  int msg_slot[POOL];      /* the track each message belongs to (io_uring batches) */
  double late[POOL];
  uint8_t small[POOL][SMALL]; /* header + payload, contiguous, for IORING_OP_SEND */
  /* io_uring: every due packet of a turn, of every track, in one submission (0: sendmmsg per track). */
  int uring;
  int files; /* entries of the registered file table (sparse; slots below this use it) */
  int ring_fd;
  int pool_n, msg_n;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map;
  size_t sq_len, cq_len, sqes_len;
} engine_t;

/* ------------------------------------------------------------------ time, futex */

static double mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static double now_ms(engine_t *e) { return mono_ms() - e->offset_ms; }

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts, uint32_t bitset) {
  return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, bitset);
}

static void wake_all(_Atomic uint32_t *addr) { futex(addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, 0); }

/* ------------------------------------------------------------------ heap */

/*
 * The heap holds (due, slot) pairs, so the tick's sift touches only this array. A track's
 * place in it is not tracked: removing one (stop, close: control work) scans for it.
 */
static void heap_up(engine_t *e, int i) {
  hent_t x = e->heap[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (e->heap[p].due <= x.due) break;
    e->heap[i] = e->heap[p];
    i = p;
  }
  e->heap[i] = x;
}

static void heap_down(engine_t *e, int i) {
  hent_t x = e->heap[i];
  int n = e->heap_n;
  for (;;) {
    int m = 2 * i + 1;
    if (m >= n) break;
    if (m + 1 < n && e->heap[m + 1].due < e->heap[m].due) m++;
    if (e->heap[m].due >= x.due) break;
    e->heap[i] = e->heap[m];
    i = m;
  }
  e->heap[i] = x;
}

static void heap_push(engine_t *e, int slot, double due) {
  e->tracks[slot].in_heap = 1;
  e->heap[e->heap_n].due = due;
  e->heap[e->heap_n].slot = slot;
  e->heap_n++;
  heap_up(e, e->heap_n - 1);
}

static void heap_remove(engine_t *e, int slot) {
  track_t *t = &e->tracks[slot];
  if (!t->in_heap) return;
  t->in_heap = 0;
  int i = 0;
  while (i < e->heap_n && e->heap[i].slot != slot) i++;
  if (i == e->heap_n) return;
  hent_t last = e->heap[--e->heap_n];
  if (i == e->heap_n) return;
  e->heap[i] = last;
  if (i > 0 && last.due < e->heap[(i - 1) / 2].due)
    heap_up(e, i);
  else
    heap_down(e, i);
}

static void max_add(engine_t *e, int slot) {
  e->tracks[slot].max_pos = e->max_n;
  e->maxlist[e->max_n++] = slot;
}

static void max_remove(engine_t *e, int slot) {
  track_t *t = &e->tracks[slot];
  int i = t->max_pos;
  if (i < 0) return;
  t->max_pos = -1;
  int last = e->maxlist[--e->max_n];
  if (i != e->max_n) {
    e->maxlist[i] = last;
    e->tracks[last].max_pos = i;
  }
}

/* ------------------------------------------------------------------ counters */

static int bucket_of(double v) {
  int i = 0;
  while (i < 12 && v > BUCKETS[i]) i++;
  return i;
}

static void observe(double *sum_count_buckets, double v) {
  sum_count_buckets[0] += v;
  sum_count_buckets[1] += 1;
  sum_count_buckets[2 + bucket_of(v)] += 1;
}

static double *ctr(engine_t *e, int slot) { return e->counters + (size_t)slot * C_STRIDE; }

static void publish_position(engine_t *e, int slot) {
  track_t *t = &e->tracks[slot];
  double *c = ctr(e, slot);
  c[C_IDX] = t->idx;
  c[C_BYTE_OFF] = (double)t->byte_off;
  c[C_SEQ] = t->seq;
  c[C_LOOPS] = t->loops;
  c[C_MID_FRAME] = t->mid_frame;
  c[C_LAST_TS] = t->last_ts;
}

static void report_done(engine_t *e, int slot) {
  track_t *t = &e->tracks[slot];
  uint64_t v = ((uint64_t)t->gen << 32) | (uint32_t)slot;
  /* Unlimited queue: fails only while the environment shuts down, when nobody waits for it. */
  napi_call_threadsafe_function(e->tsfn, (void *)(uintptr_t)v, napi_tsfn_nonblocking);
}

/* ------------------------------------------------------------------ sending */

static double due_of(const track_t *t, uint32_t i) {
  return t->zero_wall + ((double)t->loops * t->loop_ms + ((double)t->send[i] * 1000.0) / t->clock_rate) / t->speed;
}

static int marker_of(const track_t *t, uint32_t i) { return t->flags == NULL ? t->marker_all : (t->flags[i] & 1); }

/* Writes packet `k` of this visit: header into the staging array, iovecs for header and payload. */
static void stage(engine_t *e, track_t *t, int k) {
  uint32_t i = t->idx;
  uint16_t len = t->len[i];
  uint32_t ts = (uint32_t)((int64_t)t->ts_base + t->rtp_epoch + (int64_t)t->loops * t->loop_ticks + (int64_t)t->ts[i]);
  int marker = marker_of(t, i);
  uint8_t *h = e->hdr[k];
  h[0] = 0x80;
  h[1] = (uint8_t)((marker ? 0x80 : 0) | (t->pt & 0x7f));
  h[2] = (uint8_t)(t->seq >> 8);
  h[3] = (uint8_t)t->seq;
  h[4] = (uint8_t)(ts >> 24);
  h[5] = (uint8_t)(ts >> 16);
  h[6] = (uint8_t)(ts >> 8);
  h[7] = (uint8_t)ts;
  h[8] = (uint8_t)(t->ssrc >> 24);
  h[9] = (uint8_t)(t->ssrc >> 16);
  h[10] = (uint8_t)(t->ssrc >> 8);
  h[11] = (uint8_t)t->ssrc;
  e->iov[2 * k].iov_base = h;
  e->iov[2 * k].iov_len = 12;
  e->iov[2 * k + 1].iov_base = (void *)(t->payload + t->byte_off);
  e->iov[2 * k + 1].iov_len = len;
  t->mid_frame = !marker;
  t->seq = (t->seq + 1) & 0xffff;
  t->last_ts = ts;
  t->byte_off += len;
  t->idx = i + 1;
}

/*
 * Groups staged packets [from, n) into messages at msgs[mbase...]: runs of one size (the last may
 * be shorter) as one GSO message. Returns how many messages.
 */
static int build_msgs(engine_t *e, int mbase, int from, int n, int gso) {
  int m = mbase, k = from;
  while (k < n) {
    size_t size = 12 + e->iov[2 * k + 1].iov_len;
    int j = k + 1;
    size_t total = size;
    if (gso) {
      while (j < n && j - k < GSO_MAX_SEGS) {
        size_t s = 12 + e->iov[2 * j + 1].iov_len;
        if (s > size || total + s > GSO_MAX_BYTES) break;
        total += s;
        j++;
        if (s < size) break; /* a shorter segment ends the run */
      }
    }
    struct msghdr *h = &e->msgs[m].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_iov = &e->iov[2 * k];
    h->msg_iovlen = (size_t)(2 * (j - k));
    if (j - k > 1) {
      struct cmsghdr *c = &e->cmsg[m].align;
      h->msg_control = c;
      h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = (uint16_t)size;
      memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
    e->msg_first[m] = k;
    m++;
    k = j;
  }
  e->msg_first[m] = n;
  return m - mbase;
}

static int gso_refused(int err) { return err == EIO || err == EINVAL || err == EOPNOTSUPP || err == ENOPROTOOPT; }

/* Counts staged packets [from, to) of track `slot` as sent (failures are counted when they are known). */
static void account(engine_t *e, int slot, int from, int to, double now) {
  track_t *t = &e->tracks[slot];
  double *c = ctr(e, slot);
  double *tot = e->totals;
  size_t octets = 0;
  double late = 0;
  for (int k = from; k < to; k++) {
    octets += e->iov[2 * k + 1].iov_len;
    late += e->late[k];
    int b = bucket_of(e->late[k]);
    c[C_LATE + b] += 1;
    tot[E_LATE + b] += 1;
  }
  c[C_LATE_SUM] += late;
  c[C_LATE_COUNT] += to - from;
  tot[E_LATE_SUM] += late;
  tot[E_LATE_COUNT] += to - from;
  c[C_PACKETS] += to - from;
  c[C_OCTETS] += (double)octets;
  c[C_LAST_TS] = t->last_ts;
  c[C_LAST_AT] = now;
  tot[E_PACKETS] += to - from;
  tot[E_OCTETS] += (double)octets;
}

/* Sends the `n` packets staged from 0 for track `slot` on its socket, now; counts everything. */
static void flush_track(engine_t *e, int slot, int n, double now) {
  track_t *t = &e->tracks[slot];
  double *c = ctr(e, slot);
  double *tot = e->totals;
  int m = build_msgs(e, 0, 0, n, !t->no_gso);
  int i = 0;
  while (i < m) {
    int r = sendmmsg(t->fd, &e->msgs[i], (unsigned)(m - i), MSG_DONTWAIT);
    tot[E_SYSCALLS]++;
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      int segs = e->msg_first[i + 1] - e->msg_first[i];
      if (segs > 1 && gso_refused(err)) {
        /* This socket cannot segment: send the rest packet by packet, now and from now on. */
        t->no_gso = 1;
        tot[E_GSO_REFUSED]++;
        m = build_msgs(e, 0, e->msg_first[i], n, 0);
        i = 0;
        continue;
      }
      c[C_ERRORS] += segs;
      tot[E_ERRORS] += segs;
      i++;
      continue;
    }
    for (int k = i; k < i + r; k++)
      if (e->msg_first[k + 1] - e->msg_first[k] > 1) {
        c[C_GSO]++;
        tot[E_GSO]++;
      }
    i += r;
  }
  account(e, slot, 0, n, now);
}

/* ------------------------------------------------------------------ io_uring */

static void uring_setup(engine_t *e) {
  const char *off = getenv("OFFCAST_ENGINE_URING");
  if (off != NULL && strcmp(off, "0") == 0) return;
  /*
   * One submitter (this thread), completions reaped by it at once: no task work signalled across
   * threads (COOP_TASKRUN, DEFER_TASKRUN). Older kernels refuse the newer flags: fewer, then none.
   */
  static const unsigned tries[] = {
      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, 0};
  struct io_uring_params p;
  int fd = -1;
  for (size_t k = 0; k < sizeof tries / sizeof tries[0] && fd < 0; k++) {
    memset(&p, 0, sizeof p);
    p.flags = tries[k];
    fd = (int)syscall(__NR_io_uring_setup, POOL, &p);
  }
  if (fd < 0) return; /* no io_uring here (old kernel, seccomp): sendmmsg per track */
  e->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  e->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  e->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
  e->sq_map = mmap(NULL, e->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  e->cq_map = mmap(NULL, e->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
  e->sqes = mmap(NULL, e->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (e->sq_map == MAP_FAILED || e->cq_map == MAP_FAILED || e->sqes == MAP_FAILED || p.sq_entries < POOL) {
    if (e->sq_map != MAP_FAILED) munmap(e->sq_map, e->sq_len);
    if (e->cq_map != MAP_FAILED) munmap(e->cq_map, e->cq_len);
    if (e->sqes != MAP_FAILED) munmap(e->sqes, e->sqes_len);
    close(fd);
    return;
  }
  char *sq = e->sq_map, *cq = e->cq_map;
  e->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  e->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  e->sq_array = (unsigned *)(sq + p.sq_off.array);
  e->cq_head = (unsigned *)(cq + p.cq_off.head);
  e->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  e->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
  e->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  e->ring_fd = fd;
  e->uring = 1;
  e->totals[E_URING] = 1;
  /*
   * A registered (sparse) file table, one entry per slot: a send on a registered file skips the
   * per-request file lookup and reference count (fget/fput: ~4 % of the thread at 3000 tracks).
   * The kernel caps the table at RLIMIT_NOFILE: slots beyond it, or all when the kernel refuses
   * the table, send on plain descriptors.
   */
  unsigned nr = (unsigned)e->max_tracks;
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < nr) nr = (unsigned)lim.rlim_cur;
  struct io_uring_rsrc_register reg;
  memset(&reg, 0, sizeof reg);
  reg.nr = nr;
  reg.flags = IORING_RSRC_REGISTER_SPARSE;
  if (nr > 0 && syscall(__NR_io_uring_register, fd, IORING_REGISTER_FILES2, &reg, sizeof reg) == 0) e->files = (int)nr;
}

/* Puts descriptor `fd` (-1: none) at the slot's place in the registered file table; true when it is there. */
static int uring_file(engine_t *e, int slot, int fd) {
  if (!e->uring || slot >= e->files) return 0;
  struct io_uring_files_update u;
  memset(&u, 0, sizeof u);
  u.offset = (unsigned)slot;
  u.fds = (uint64_t)(uintptr_t)&fd;
  long r = -1;
  /* A removal must not fail quietly: the table's reference would keep the socket, and its port, open. */
  for (int k = 0; k < 100; k++) {
    r = syscall(__NR_io_uring_register, e->ring_fd, IORING_REGISTER_FILES_UPDATE, &u, 1);
    if (r >= 0 || (errno != EINTR && errno != EAGAIN && errno != EBUSY)) break;
  }
  return r == 1 && fd >= 0;
}

static void uring_teardown(engine_t *e) {
  if (!e->uring) return;
  /*
   * The registered file table holds a reference to every track's socket. Closing the ring drops
   * them only when the kernel's deferred ring teardown runs, after this thread (and, on a worker's
   * death, the worker) is gone: until then the sockets' ports stay bound. Unregistering drops them
   * now, so a closed track's or a dead worker's ports are free as soon as the descriptors close.
   */
  if (e->files > 0) {
    for (int k = 0; k < 100; k++) {
      if (syscall(__NR_io_uring_register, e->ring_fd, IORING_UNREGISTER_FILES, NULL, 0) == 0 || (errno != EINTR && errno != EAGAIN && errno != EBUSY)) break;
    }
    e->files = 0;
  }
  munmap(e->sq_map, e->sq_len);
  munmap(e->cq_map, e->cq_len);
  munmap(e->sqes, e->sqes_len);
  close(e->ring_fd);
  e->uring = 0;
}

/* Counts what became of message `mi` (sent: `res` >= 0, else -errno). */
static void message_done(engine_t *e, int mi, int res) {
  int slot = e->msg_slot[mi];
  track_t *t = &e->tracks[slot];
  double *c = ctr(e, slot);
  double *tot = e->totals;
  int first = e->msg_first[mi], segs = e->msg_first[mi + 1] - first;
  if (res >= 0) {
    if (segs > 1) {
      c[C_GSO]++;
      tot[E_GSO]++;
    }
    return;
  }
  if (segs > 1 && gso_refused(-res)) {
    /* This socket cannot segment: these packets go one by one, and the socket's later ones too. */
    if (!t->no_gso) tot[E_GSO_REFUSED]++;
    t->no_gso = 1;
    for (int k = first; k < first + segs; k++) {
      struct msghdr h;
      memset(&h, 0, sizeof h);
      h.msg_iov = &e->iov[2 * k];
      h.msg_iovlen = 2;
      tot[E_SYSCALLS]++;
      if (sendmsg(t->fd, &h, MSG_DONTWAIT) < 0) {
        c[C_ERRORS]++;
        tot[E_ERRORS]++;
      }
    }
    return;
  }
  c[C_ERRORS] += segs;
  tot[E_ERRORS] += segs;
}

/* Queues staged packets [from, to) of track `slot` as messages of the next submission. */
static void uring_queue(engine_t *e, int slot, int from, int to, double now) {
  track_t *t = &e->tracks[slot];
  int m = build_msgs(e, e->msg_n, from, to, !t->no_gso);
  unsigned tail = *e->sq_tail, mask = *e->sq_mask;
  for (int k = 0; k < m; k++) {
    int mi = e->msg_n + k;
    e->msg_slot[mi] = slot;
    unsigned idx = (tail + (unsigned)k) & mask;
    struct io_uring_sqe *q = &e->sqes[idx];
    memset(q, 0, sizeof *q);
    int first = e->msg_first[mi];
    size_t plen = e->iov[2 * first + 1].iov_len;
    if (e->msg_first[mi + 1] - first == 1 && 12 + plen <= SMALL) {
      /* A lone small packet: a copy behind its header and a plain send (no msghdr for the kernel to copy and walk). */
      uint8_t *b = e->small[first];
      memcpy(b, e->hdr[first], 12);
      memcpy(b + 12, e->iov[2 * first + 1].iov_base, plen);
      q->opcode = IORING_OP_SEND;
      q->addr = (uint64_t)(uintptr_t)b;
      q->len = (uint32_t)(12 + plen);
    } else {
      q->opcode = IORING_OP_SENDMSG;
      q->addr = (uint64_t)(uintptr_t)&e->msgs[mi].msg_hdr;
      q->len = 1;
    }
    if (t->fixed) {
      q->fd = slot;
      q->flags = IOSQE_FIXED_FILE;
    } else {
      q->fd = t->fd;
    }
    q->msg_flags = MSG_DONTWAIT;
    q->user_data = (uint64_t)mi;
    e->sq_array[idx] = idx;
  }
  atomic_store_explicit((_Atomic unsigned *)e->sq_tail, tail + (unsigned)m, memory_order_release);
  e->msg_n += m;
  account(e, slot, from, to, now);
}

/* Submits every queued message in one call, waits for their completions, counts them. */
static void uring_flush(engine_t *e) {
  int pending = e->msg_n;
  int done = 0;
  while (pending > 0) {
    long r = syscall(__NR_io_uring_enter, e->ring_fd, (unsigned)pending, (unsigned)pending, IORING_ENTER_GETEVENTS, NULL, 0);
    e->totals[E_SYSCALLS]++;
    if (r < 0) {
      if (errno == EINTR) continue;
      break; /* what was not submitted is counted as failed below */
    }
    pending -= (int)r;
    unsigned head = *e->cq_head;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)e->cq_tail, memory_order_acquire);
    for (; head != tail; head++) {
      struct io_uring_cqe *q = &e->cqes[head & e->cq_mask];
      message_done(e, (int)q->user_data, q->res);
      done++;
    }
    atomic_store_explicit((_Atomic unsigned *)e->cq_head, head, memory_order_release);
    if (r == 0) break;
  }
  /* Completions still owed (a failed submission): wait for them, so the pool may be reused. */
  while (done < e->msg_n) {
    long r = syscall(__NR_io_uring_enter, e->ring_fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    unsigned head = *e->cq_head;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)e->cq_tail, memory_order_acquire);
    if (head == tail && r < 0 && errno != EINTR) break;
    for (; head != tail; head++) {
      struct io_uring_cqe *q = &e->cqes[head & e->cq_mask];
      message_done(e, (int)q->user_data, q->res);
      done++;
    }
    atomic_store_explicit((_Atomic unsigned *)e->cq_head, head, memory_order_release);
  }
  e->pool_n = 0;
  e->msg_n = 0;
}

/* A packet's place is outside the cache (a JavaScript bug): the track stops, counted. */
static int in_bounds(const track_t *t) {
  return t->idx < t->count && t->byte_off + t->len[t->idx] <= t->payload_bytes;
}

static void finish_track(engine_t *e, int slot) {
  track_t *t = &e->tracks[slot];
  t->running = 0;
  heap_remove(e, slot);
  max_remove(e, slot);
  publish_position(e, slot);
  ctr(e, slot)[C_DONE] = 1;
  report_done(e, slot);
}

/*
 * Sends what track `slot` has due by `now` (paced), or a burst ("max"); returns
 * the next due time, or -1 when the track has ended.
 */
static double visit(engine_t *e, int slot, double now, int max) {
  track_t *t = &e->tracks[slot];
  int n = 0;
  int cap = max ? MAX_BURST : BURST;
  double next = -1;
  if (e->uring && e->pool_n + cap > POOL) uring_flush(e);
  int base = e->uring ? e->pool_n : 0;
  for (;;) {
    if (t->idx >= t->count) {
      if (!t->loop || t->count == 0) {
        next = -1;
        break;
      }
      t->idx = 0;
      t->byte_off = 0;
      t->loops++;
      ctr(e, slot)[C_LOOPS] = t->loops;
    }
    if (n == cap) {
      next = now + TICK_MS;
      break;
    }
    double late = 0;
    if (!max) {
      double due = due_of(t, t->idx);
      if (due > now) {
        next = due;
        break;
      }
      late = now - due;
    }
    if (!in_bounds(t)) {
      ctr(e, slot)[C_FAULT] = 1;
      next = -1;
      break;
    }
    e->late[base + n] = late < 0 ? 0 : late;
    stage(e, t, base + n);
    n++;
  }
  if (n > 0) {
    if (e->uring) {
      uring_queue(e, slot, base, base + n, now);
      e->pool_n = base + n;
    } else {
      flush_track(e, slot, n, now);
    }
  }
  return next;
}

/* Stop: optionally the rest of the frame in flight first. */
static void stop_track(engine_t *e, int slot, int finish_frame, double now) {
  track_t *t = &e->tracks[slot];
  if (t->running && finish_frame) {
    int sent = 0;
    while (t->mid_frame && t->idx < t->count && sent < FINISH_CAP) {
      int n = 0;
      while (n < BURST && t->mid_frame && t->idx < t->count && in_bounds(t)) {
        e->late[n] = 0;
        stage(e, t, n);
        n++;
      }
      if (n == 0) break;
      flush_track(e, slot, n, now);
      sent += n;
    }
  }
  t->running = 0;
  heap_remove(e, slot);
  max_remove(e, slot);
  publish_position(e, slot);
}

/* ------------------------------------------------------------------ commands */

static void run_command(engine_t *e, const cmd_t *c) {
  double now = now_ms(e);
  if (c->op == OP_QUIT) {
    e->quit = 1;
    return;
  }
  if (c->op == OP_HOLD) {
    e->hold_until = now + c->a[0];
    return;
  }
  if (c->slot < 0 || c->slot >= e->max_tracks) return;
  track_t *t = &e->tracks[c->slot];
  switch (c->op) {
    case OP_CREATE:
      t->active = 1;
      t->running = 0;
      t->in_heap = 0;
      t->max_pos = -1;
      t->no_gso = 0;
      t->mid_frame = 0;
      t->fixed = t->fd >= 0 && uring_file(e, c->slot, t->fd);
      e->totals[E_ACTIVE]++;
      break;
    case OP_RUN:
      if (!t->active) break;
      if (t->running) stop_track(e, c->slot, 0, now);
      t->idx = (uint32_t)c->a[0];
      t->byte_off = (size_t)c->a[1];
      t->seq = (uint32_t)c->a[2] & 0xffff;
      t->loops = (uint32_t)c->a[3];
      t->rtp_epoch = (int64_t)c->a[4];
      t->zero_wall = c->a[5];
      t->mid_frame = c->a[6] != 0;
      t->gen = (uint32_t)c->a[7]; /* run id: a completion reports it, so JavaScript ignores a stale one */
      t->running = 1;
      ctr(e, c->slot)[C_DONE] = 0;
      if (t->speed == 0)
        max_add(e, c->slot);
      else
        heap_push(e, c->slot, t->idx < t->count ? due_of(t, t->idx) : now);
      break;
    case OP_STOP:
      if (t->active) stop_track(e, c->slot, c->a[0] != 0, now);
      break;
    case OP_CLOSE:
      if (!t->active) break;
      stop_track(e, c->slot, 0, now);
      if (t->fixed) uring_file(e, c->slot, -1); /* the table's reference goes before the socket closes */
      t->fixed = 0;
      if (t->fd >= 0) close(t->fd);
      t->fd = -1;
      t->active = 0;
      e->totals[E_ACTIVE]--;
      break;
    default:
      break;
  }
}

/* Runs every queued command; true when there were any. */
static int drain(engine_t *e) {
  uint32_t head = atomic_load_explicit(&e->head, memory_order_relaxed);
  uint32_t tail = atomic_load_explicit(&e->tail, memory_order_acquire);
  if (head == tail) return 0;
  while (head != tail) {
    run_command(e, &e->ring[head & (RING - 1)]);
    head++;
    atomic_store_explicit(&e->head, head, memory_order_release);
    atomic_fetch_add_explicit(&e->acked, 1, memory_order_release);
    e->totals[E_COMMANDS]++;
  }
  if (atomic_load_explicit(&e->ack_waiters, memory_order_acquire) > 0) wake_all(&e->acked);
  return 1;
}

/* ------------------------------------------------------------------ the thread */

static void tick(engine_t *e) {
  double now = now_ms(e);
  double *tot = e->totals;
  if (e->heap_n > 0 && e->heap[0].due <= now) {
    double lag = now - e->heap[0].due;
    observe(&tot[E_LAG_SUM], lag < 0 ? 0 : lag);
    tot[E_TICKS]++;
  }
  while (e->heap_n > 0 && e->heap[0].due <= now) {
    int slot = e->heap[0].slot;
    double next = visit(e, slot, now, 0);
    if (next < 0) {
      finish_track(e, slot); /* at the top: its removal finds it at once */
    } else {
      e->heap[0].due = next;
      heap_down(e, 0);
    }
  }
  /* "speed": "max": a burst per track per turn, round robin, between the paced work. */
  int n = e->max_n;
  for (int k = 0; k < n && e->max_n > 0; k++) {
    int slot = e->maxlist[e->max_rr++ % e->max_n];
    if (visit(e, slot, now, 1) < 0) finish_track(e, slot);
  }
  if (e->uring) uring_flush(e);
  e->last_tick = now;
}

static void sleep_until(engine_t *e, double deadline_ms) {
  uint32_t seen = atomic_load_explicit(&e->tail, memory_order_acquire);
  if (seen != atomic_load_explicit(&e->head, memory_order_relaxed)) return;
  struct timespec ts, *tsp = NULL;
  if (deadline_ms < INFINITY) {
    double mono = deadline_ms + e->offset_ms;
    if (mono < 0) mono = 0;
    ts.tv_sec = (time_t)(mono / 1e3);
    ts.tv_nsec = (long)((mono - (double)ts.tv_sec * 1e3) * 1e6);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    if (ts.tv_nsec < 0) ts.tv_nsec = 0;
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline; a command changes `tail` and wakes us. */
  futex(&e->tail, FUTEX_WAIT_BITSET_PRIVATE, seen, tsp, FUTEX_BITSET_MATCH_ANY);
}

/*
 * A short scheduler slice (EEVDF, Linux >= 6.12: sched_attr.sched_runtime of a SCHED_NORMAL
 * thread): the thread's virtual deadline comes sooner, so when it wakes for its next packets it
 * may preempt a thread in the middle of a longer slice instead of waiting for the slice to end. Its
 * weight, i.e. its share of the CPU, stays that of nice 0. Earlier kernels ignore it.
 */
static void short_slice(void) {
  const char *v = getenv("OFFCAST_ENGINE_SLICE_US");
  long us = v != NULL ? atol(v) : 100;
  if (us <= 0) return;
  struct { /* struct sched_attr, first version (48 bytes); its header clashes with <sched.h> */
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
  } a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.sched_policy = 0; /* SCHED_NORMAL */
  a.sched_runtime = (uint64_t)us * 1000;
  syscall(SYS_sched_setattr, 0, &a, 0);
}

static void *thread_main(void *arg) {
  engine_t *e = arg;
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  prctl(PR_SET_NAME, "offcast-pacer", 0, 0, 0);
  /*
   * No raised priority: nice -10 was measured, and under load it starved the threads at normal
   * priority, the receiver's among them (scenario 5: 4732 packets lost, streams ~1 s late; a
   * "max" session starved its own receiver).
   */
  short_slice();
  uring_setup(e);
  while (!e->quit) {
    drain(e);
    if (e->quit) break;
    double now = now_ms(e);
    if (now < e->hold_until) {
      /* Held (tests fill the ring this way): commands wait in the ring. */
      while (!e->quit && now_ms(e) < e->hold_until) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
      }
      continue;
    }
    tick(e);
    if (e->max_n > 0) continue; /* unpaced tracks: no sleep, commands are read every turn */
    double next = e->heap_n > 0 ? e->heap[0].due : INFINITY;
    double floor = e->last_tick + TICK_MS;
    if (next < floor) next = floor;
    sleep_until(e, next);
  }
  uring_teardown(e);
  return NULL;
}

/* ------------------------------------------------------------------ N-API */

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *code, const char *msg) {
  napi_throw_range_error(env, code, msg);
  return NULL;
}

static engine_t *engine_of(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok) return NULL;
  return data;
}

static int typed_of(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok) return 0;
  return type == want;
}

static int num(napi_env env, napi_value v, double *out) { return napi_get_value_double(env, v, out) == napi_ok; }

static void call_done(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  if (env == NULL || js_cb == NULL) return;
  uint64_t v = (uint64_t)(uintptr_t)data;
  napi_value argv[2], undef;
  napi_create_uint32(env, (uint32_t)(v & 0xffffffffu), &argv[0]);
  napi_create_uint32(env, (uint32_t)(v >> 32), &argv[1]);
  napi_get_undefined(env, &undef);
  napi_call_function(env, undef, js_cb, 2, argv, NULL);
}

static void push_cmd_raw(engine_t *e, const cmd_t *c) {
  uint32_t tail = atomic_load_explicit(&e->tail, memory_order_relaxed);
  e->ring[tail & (RING - 1)] = *c;
  atomic_store_explicit(&e->tail, tail + 1, memory_order_release);
  futex(&e->tail, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
}

static int ring_full(engine_t *e) {
  uint32_t tail = atomic_load_explicit(&e->tail, memory_order_relaxed);
  uint32_t head = atomic_load_explicit(&e->head, memory_order_acquire);
  return tail - head >= RING;
}

static void release_refs(napi_env env, track_t *t) {
  for (int k = 0; k < 5; k++)
    if (t->refs[k] != NULL) {
      napi_delete_reference(env, t->refs[k]);
      t->refs[k] = NULL;
    }
}

static void engine_stop(engine_t *e) {
  if (e->started) {
    /* The ring may be full: the quit flag goes straight to the thread. */
    cmd_t c = {.op = OP_QUIT, .slot = -1};
    if (!ring_full(e)) push_cmd_raw(e, &c);
    else {
      e->quit = 1; /* read by the thread between turns; a benign race at teardown */
      futex(&e->tail, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
    }
    pthread_join(e->thread, NULL);
    e->started = 0;
  }
}

static void cleanup(void *arg) {
  engine_t *e = arg;
  engine_stop(e);
  for (int i = 0; i < e->max_tracks; i++)
    if (e->tracks[i].active && e->tracks[i].fd >= 0) close(e->tracks[i].fd);
  if (e->tsfn != NULL) napi_release_threadsafe_function(e->tsfn, napi_tsfn_abort);
  for (int i = 0; i < e->max_tracks; i++) release_refs(e->env, &e->tracks[i]);
  if (e->counters_ref != NULL) napi_delete_reference(e->env, e->counters_ref);
  if (e->totals_ref != NULL) napi_delete_reference(e->env, e->totals_ref);
  free(e->tracks);
  free(e->heap);
  free(e->maxlist);
  free(e);
}

/* engineOpen(counters: Float64Array, totals: Float64Array, maxTracks, offsetMs, onDone(slot, gen)) */
static napi_value EngineOpen(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return throw_type(env, "engineOpen: 5 arguments");
  if (engine_of(env) != NULL) return throw_type(env, "engineOpen: this thread's engine is open already");
  double *counters, *totals;
  size_t ncounters, ntotals;
  double max_tracks, offset;
  if (!typed_of(env, argv[0], napi_float64_array, (void **)&counters, &ncounters)) return throw_type(env, "engineOpen: counters must be a Float64Array");
  if (!typed_of(env, argv[1], napi_float64_array, (void **)&totals, &ntotals) || ntotals < E_STRIDE)
    return throw_type(env, "engineOpen: totals must be a Float64Array of 64");
  if (!num(env, argv[2], &max_tracks) || max_tracks < 1 || max_tracks > 1 << 20 || (size_t)max_tracks * C_STRIDE > ncounters)
    return throw_type(env, "engineOpen: maxTracks must fit the counters");
  if (!num(env, argv[3], &offset)) return throw_type(env, "engineOpen: offsetMs must be a number");
  napi_valuetype fntype;
  if (napi_typeof(env, argv[4], &fntype) != napi_ok || fntype != napi_function) return throw_type(env, "engineOpen: onDone must be a function");

  engine_t *e = calloc(1, sizeof *e);
  if (e == NULL) return throw_type(env, "engineOpen: out of memory");
  e->env = env;
  e->max_tracks = (int)max_tracks;
  e->tracks = calloc((size_t)e->max_tracks, sizeof(track_t));
  e->heap = calloc((size_t)e->max_tracks, sizeof(hent_t));
  e->maxlist = calloc((size_t)e->max_tracks, sizeof(int));
  if (e->tracks == NULL || e->heap == NULL || e->maxlist == NULL) {
    free(e->tracks);
    free(e->heap);
    free(e->maxlist);
    free(e);
    return throw_type(env, "engineOpen: out of memory");
  }
  e->counters = counters;
  e->totals = totals;
  e->offset_ms = offset;
  e->last_tick = -INFINITY;
  e->hold_until = -INFINITY;
  napi_create_reference(env, argv[0], 1, &e->counters_ref);
  napi_create_reference(env, argv[1], 1, &e->totals_ref);
  napi_value name;
  napi_create_string_utf8(env, "offcast-engine-done", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &e->tsfn) != napi_ok) {
    cleanup(e);
    return throw_type(env, "engineOpen: cannot create the completion callback");
  }
  /* Completion events must not keep a worker alive. */
  napi_unref_threadsafe_function(env, e->tsfn);
  if (pthread_create(&e->thread, NULL, thread_main, e) != 0) {
    cleanup(e);
    return throw_type(env, "engineOpen: cannot start the pacing thread");
  }
  e->started = 1;
  napi_set_instance_data(env, e, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup, e);
  return NULL;
}

static engine_t *need_engine(napi_env env) {
  engine_t *e = engine_of(env);
  if (e == NULL) throw_type(env, "the engine is not open (engineOpen)");
  return e;
}

static napi_value seq_value(napi_env env, engine_t *e) {
  napi_value v;
  napi_create_uint32(env, atomic_load_explicit(&e->tail, memory_order_relaxed), &v);
  return v;
}

static napi_value push_or_throw(napi_env env, engine_t *e, const cmd_t *c) {
  if (ring_full(e)) return throw_range(env, "OFFCAST_ENGINE_BUSY", "the pacing engine's command ring is full");
  push_cmd_raw(e, c);
  return seq_value(env, e);
}

/*
 * engineTrack(slot, gen, fd, payload: Uint8Array, len: Uint16Array, ts: Uint32Array, send: Uint32Array,
 *             flags: Uint8Array | null, count, markerAll, pt, ssrc, clockRate, loopMs, speed, loop, tsBase, loopTicks)
 * -> command sequence number. The slot must be free (never created, or its close acknowledged and released).
 */
static napi_value EngineTrack(napi_env env, napi_callback_info info) {
  size_t argc = 18;
  napi_value argv[18];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 18) return throw_type(env, "engineTrack: 18 arguments");
  engine_t *e = need_engine(env);
  if (e == NULL) return NULL;
  double d[18];
  const int numeric[] = {0, 1, 2, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  for (size_t k = 0; k < sizeof numeric / sizeof numeric[0]; k++)
    if (!num(env, argv[numeric[k]], &d[numeric[k]])) return throw_type(env, "engineTrack: numeric argument expected");
  if (d[0] < 0 || d[0] >= e->max_tracks || d[0] != floor(d[0])) return throw_range(env, "OFFCAST_ENGINE_SLOT", "engineTrack: slot out of range");
  track_t *t = &e->tracks[(int)d[0]];
  if (t->active || t->refs[0] != NULL) return throw_range(env, "OFFCAST_ENGINE_SLOT", "engineTrack: slot in use");
  uint8_t *payload, *flags = NULL;
  uint16_t *len;
  uint32_t *ts, *send;
  size_t npayload, nlen, nts, nsend, nflags = 0;
  if (!typed_of(env, argv[3], napi_uint8_array, (void **)&payload, &npayload)) return throw_type(env, "engineTrack: payload must be a Uint8Array");
  if (!typed_of(env, argv[4], napi_uint16_array, (void **)&len, &nlen)) return throw_type(env, "engineTrack: len must be a Uint16Array");
  if (!typed_of(env, argv[5], napi_uint32_array, (void **)&ts, &nts)) return throw_type(env, "engineTrack: ts must be a Uint32Array");
  if (!typed_of(env, argv[6], napi_uint32_array, (void **)&send, &nsend)) return throw_type(env, "engineTrack: send must be a Uint32Array");
  napi_valuetype ft;
  napi_typeof(env, argv[7], &ft);
  if (ft != napi_null && !typed_of(env, argv[7], napi_uint8_array, (void **)&flags, &nflags))
    return throw_type(env, "engineTrack: flags must be a Uint8Array or null");
  double count = d[8];
  if (count < 0 || count > nlen || count > nts || count > nsend || (flags != NULL && count > nflags) || count != floor(count))
    return throw_range(env, "OFFCAST_ENGINE_TRACK", "engineTrack: count exceeds an index array");
  if (d[12] <= 0 || d[14] < 0 || !(d[13] > 0)) return throw_range(env, "OFFCAST_ENGINE_TRACK", "engineTrack: clockRate and loopMs must be > 0, speed >= 0");
  if (ring_full(e)) return throw_range(env, "OFFCAST_ENGINE_BUSY", "the pacing engine's command ring is full");
  /*
   * The thread sends on its own duplicate of the socket: when the worker's environment is torn
   * down, libuv closes its descriptors before this addon's cleanup hook stops the thread, and a
   * descriptor number reused meanwhile (by another worker of the process) must never get our packets.
   */
  int fd = -1;
  if (d[2] >= 0) {
    fd = fcntl((int)d[2], F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return throw_range(env, "OFFCAST_ENGINE_FD", "engineTrack: cannot duplicate the socket descriptor");
  }
  t->fd = fd;
  t->payload = payload;
  t->payload_bytes = npayload;
  t->len = len;
  t->ts = ts;
  t->send = send;
  t->flags = flags;
  t->count = (uint32_t)count;
  t->marker_all = d[9] != 0;
  t->pt = (uint8_t)d[10];
  t->ssrc = (uint32_t)d[11];
  t->clock_rate = d[12];
  t->loop_ms = d[13];
  t->speed = d[14];
  t->loop = d[15] != 0;
  t->ts_base = (uint32_t)d[16];
  t->loop_ticks = (int64_t)d[17];
  t->gen = (uint32_t)d[1];
  /* Pin what the thread reads until JavaScript releases the slot after its close. */
  for (int k = 0; k < 5; k++) t->refs[k] = NULL;
  napi_create_reference(env, argv[3], 1, &t->refs[0]);
  napi_create_reference(env, argv[4], 1, &t->refs[1]);
  napi_create_reference(env, argv[5], 1, &t->refs[2]);
  napi_create_reference(env, argv[6], 1, &t->refs[3]);
  if (flags != NULL) napi_create_reference(env, argv[7], 1, &t->refs[4]);
  memset(ctr(e, (int)d[0]), 0, sizeof(double) * C_STRIDE);
  cmd_t c = {.op = OP_CREATE, .slot = (int32_t)d[0]};
  return push_or_throw(env, e, &c);
}

/* engineCmd(op, slot, a0 … a7) -> command sequence number; RangeError OFFCAST_ENGINE_BUSY when the ring is full. */
static napi_value EngineCmd(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || argc > 10) return throw_type(env, "engineCmd: op, slot, up to 8 arguments");
  engine_t *e = need_engine(env);
  if (e == NULL) return NULL;
  double op, slot;
  if (!num(env, argv[0], &op) || !num(env, argv[1], &slot)) return throw_type(env, "engineCmd: op and slot must be numbers");
  if (op != OP_RUN && op != OP_STOP && op != OP_CLOSE && op != OP_HOLD) return throw_range(env, "OFFCAST_ENGINE_OP", "engineCmd: unknown op");
  if (op != OP_HOLD && (slot < 0 || slot >= e->max_tracks)) return throw_range(env, "OFFCAST_ENGINE_SLOT", "engineCmd: slot out of range");
  cmd_t c = {.op = (uint32_t)op, .slot = (int32_t)slot};
  for (size_t k = 2; k < argc; k++)
    if (!num(env, argv[k], &c.a[k - 2])) return throw_type(env, "engineCmd: arguments must be numbers");
  return push_or_throw(env, e, &c);
}

/* engineWait(seq, timeoutMs) -> true once the thread has processed command `seq`, false on timeout. */
static napi_value EngineWait(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return throw_type(env, "engineWait: seq, timeoutMs");
  engine_t *e = need_engine(env);
  if (e == NULL) return NULL;
  double seqd, timeout;
  if (!num(env, argv[0], &seqd) || !num(env, argv[1], &timeout)) return throw_type(env, "engineWait: numbers expected");
  uint32_t target = (uint32_t)seqd;
  double deadline = mono_ms() + timeout;
  bool ok = false;
  atomic_fetch_add_explicit(&e->ack_waiters, 1, memory_order_acq_rel);
  for (;;) {
    uint32_t cur = atomic_load_explicit(&e->acked, memory_order_acquire);
    if ((int32_t)(cur - target) >= 0) {
      ok = true;
      break;
    }
    double left = deadline - mono_ms();
    if (left <= 0) break;
    struct timespec rel = {(time_t)(left / 1e3), (long)(fmod(left, 1e3) * 1e6)};
    futex(&e->acked, FUTEX_WAIT_PRIVATE, cur, &rel, 0);
  }
  atomic_fetch_sub_explicit(&e->ack_waiters, 1, memory_order_acq_rel);
  napi_value v;
  napi_get_boolean(env, ok, &v);
  return v;
}

/* engineRelease(slot): drops the references of a closed slot (after its close was acknowledged). */
static napi_value EngineRelease(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return throw_type(env, "engineRelease: slot");
  engine_t *e = need_engine(env);
  if (e == NULL) return NULL;
  double slot;
  if (!num(env, argv[0], &slot) || slot < 0 || slot >= e->max_tracks) return throw_range(env, "OFFCAST_ENGINE_SLOT", "engineRelease: slot out of range");
  track_t *t = &e->tracks[(int)slot];
  /* `active` is the thread's: read it only after JavaScript saw the close acknowledged (acquire in engineWait). */
  if (t->active) return throw_range(env, "OFFCAST_ENGINE_SLOT", "engineRelease: the slot's close is not acknowledged");
  release_refs(env, t);
  return NULL;
}

/* engineQueued() -> the sequence number of the last command queued (engineWait on it waits for an empty ring). */
static napi_value EngineQueued(napi_env env, napi_callback_info info) {
  (void)info;
  engine_t *e = need_engine(env);
  if (e == NULL) return NULL;
  return seq_value(env, e);
}

/* monoNow() -> CLOCK_MONOTONIC in ms (to relate the thread's clock to performance.now()). */
static napi_value MonoNow(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_double(env, mono_ms(), &v);
  return v;
}

void engine_init(napi_env env, napi_value exports) {
  struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"engineOpen", EngineOpen}, {"engineTrack", EngineTrack}, {"engineCmd", EngineCmd}, {"engineWait", EngineWait}, {"engineRelease", EngineRelease}, {"engineQueued", EngineQueued}, {"monoNow", MonoNow}};
  for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
    napi_value fn;
    napi_create_function(env, fns[k].name, NAPI_AUTO_LENGTH, fns[k].cb, NULL, &fn);
    napi_set_named_property(env, exports, fns[k].name, fn);
  }
}
