/* comm.c: the MPI transport of oe.dist (see comm.h for the failure model). */
#include "comm.h"
#include <mpi.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG_LEFT 7301
#define MAX_INFLIGHT 4
/* largest element count of one MPI call (counts are int) */
#define CHUNK_ELEMS (INT64_C(1) << 30)

static struct {
  int inited, finalized, broken, rank, size, we_inited, atexit_set;
  double timeout;
  MPI_Comm data, ctl;      /* collectives; exit notices and the exit barrier */
  char *left;              /* left[r]: rank r sent its "left" notice */
  int notices;             /* notices received so far */
  int first_left;          /* the first rank seen leaving, or -1 */
  double first_left_at;
  float *stage[MAX_INFLIGHT];
  int64_t stage_cap;
} S = { .first_left = -1, .first_left_at = -1 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(oe_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(oe_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return code;
}

static int fail_mpi(oe_err *e, int rc, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
  return fail(e, OE_EIO, "%s: %s (rank %d)", what, s, S.rank);
}

static MPI_Datatype mpi_type(oe_dist_type t) {
  switch (t) {
  case OE_DIST_F32: return MPI_FLOAT;
  case OE_DIST_I32: return MPI_INT32_T;
  case OE_DIST_I64: return MPI_INT64_T;
  case OE_DIST_U8: return MPI_UINT8_T;
  default: return MPI_DOUBLE;
  }
}
static size_t type_size(oe_dist_type t) {
  static const size_t sz[] = { 4, 4, 8, 1, 8 };
  return sz[t];
}
static MPI_Op mpi_op(oe_dist_op op) { return op == OE_DIST_MAX ? MPI_MAX : op == OE_DIST_MIN ? MPI_MIN : MPI_SUM; }

int oe_dist_initialized(void) { return S.inited && !S.finalized; }
int oe_dist_finalized(void) { return S.finalized; }
int oe_dist_broken(void) { return S.broken; }
int oe_dist_rank(void) { return S.rank; }
int oe_dist_size(void) { return S.inited ? S.size : 1; }
double oe_dist_timeout(void) { return S.timeout; }
void oe_dist_set_timeout(double t) { S.timeout = t; }

/* the job ends for this process without oe_dist_finalize (os.exit without closing the
 * Lua state): finalise, or abort the job when that cannot be done cleanly */
static void at_exit(void) {
  if (!oe_dist_initialized()) return;
  oe_err e;
  if (oe_dist_finalize(&e) != OE_OK) oe_dist_abort(1);
}

int oe_dist_init(double timeout_s, oe_err *e) {
  if (S.finalized) return fail(e, OE_EINVAL, "MPI was finalised already; it cannot be initialised again in this process");
  if (S.inited) { S.timeout = timeout_s; return OE_OK; }
  int flag = 0, rc;
  MPI_Initialized(&flag);
  if (!flag) {
    int provided;
    rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return fail_mpi(e, rc, "MPI_Init_thread");
    S.we_inited = 1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &S.data)) != MPI_SUCCESS) return fail_mpi(e, rc, "MPI_Comm_dup");
  if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &S.ctl)) != MPI_SUCCESS) return fail_mpi(e, rc, "MPI_Comm_dup");
  MPI_Comm_set_errhandler(S.data, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(S.ctl, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &S.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &S.size);
  S.left = calloc((size_t)S.size, 1);
  if (!S.left) return fail(e, OE_ENOMEM, "out of memory for %d ranks", S.size);
  S.timeout = timeout_s;
  S.inited = 1;
  if (!S.atexit_set) { atexit(at_exit); S.atexit_set = 1; }
  return OE_OK;
}

/* receive every "left" notice that has arrived */
static void poll_notices(void) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_LEFT, S.ctl, &flag, &st) != MPI_SUCCESS || !flag) return;
    int who = -1;
    if (MPI_Recv(&who, 1, MPI_INT, st.MPI_SOURCE, TAG_LEFT, S.ctl, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
    int r = st.MPI_SOURCE;
    if (r >= 0 && r < S.size && !S.left[r]) {
      S.left[r] = 1;
      S.notices++;
      if (S.first_left < 0) { S.first_left = r; S.first_left_at = now_s(); }
    }
  }
}

/* be kind to a shared CPU while waiting long: spin first, then yield, then sleep */
static void backoff(double waited) {
  if (waited < 2e-3) return;
  if (waited < 0.05) { sched_yield(); return; }
  struct timespec ts = { 0, waited < 1.0 ? 200000 : 1000000 };
  nanosleep(&ts, NULL);
}

/* waits for n requests (in order); exiting: the exit barrier, where notices are expected and
 * there is no deadline (a rank still at work is waited for; a killed one ends the job) */
static int wait_requests(MPI_Request *req, int n, const char *what, int exiting, oe_err *e) {
  double t0 = now_s(), last_probe = t0;
  for (int i = 0; i < n; i++) {
    for (;;) {
      int done = 0;
      int rc = MPI_Test(&req[i], &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) { S.broken = 1; return fail_mpi(e, rc, what); }
      if (done) break;
      double t = now_s();
      if (t - last_probe > 1e-3) { poll_notices(); last_probe = t; }
      if (!exiting && S.first_left >= 0 && t - S.first_left_at > OE_DIST_GRACE_S) {
        S.broken = 1;
        return fail(e, OE_EIO, "%s: rank %d left the job (its script ended or failed) while rank %d waits for it", what,
                    S.first_left, S.rank);
      }
      if (!exiting && S.timeout > 0 && t - t0 > S.timeout) {
        S.broken = 1;
        return fail(e, OE_EIO, "%s: no answer from the other ranks after %.0f s on rank %d (a rank hangs or was stopped; "
                    "oe.dist.init{timeout = seconds} sets the limit)", what, t - t0, S.rank);
      }
      backoff(t - t0);
    }
  }
  return OE_OK;
}

/* ready for a collective: initialised, not broken, nobody gone */
static int ready(const char *what, oe_err *e) {
  if (!oe_dist_initialized()) return fail(e, OE_EINVAL, "%s: oe.dist.init() was not called (or finalize() was)", what);
  if (S.broken) return fail(e, OE_EIO, "%s: an earlier collective failed on rank %d; the job must stop", what, S.rank);
  poll_notices();
  if (S.first_left >= 0)
    return fail(e, OE_EIO, "%s: rank %d left the job (its script ended or failed); rank %d cannot continue", what, S.first_left,
                S.rank);
  return OE_OK;
}

int oe_dist_all_reduce(void *buf, int64_t n, oe_dist_type t, oe_dist_op op, const char *what, oe_err *e) {
  if (ready(what, e) != OE_OK) return OE_EIO;
  if (n <= 0) return OE_OK;
  MPI_Request req[MAX_INFLIGHT];
  int64_t done = 0;
  while (done < n) { /* chunks of at most CHUNK_ELEMS, up to MAX_INFLIGHT in flight */
    int k = 0;
    while (done < n && k < MAX_INFLIGHT) {
      int64_t m = n - done < CHUNK_ELEMS ? n - done : CHUNK_ELEMS;
      int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + done * type_size(t), (int)m, mpi_type(t), mpi_op(op), S.data, &req[k]);
      if (rc != MPI_SUCCESS) { S.broken = k > 0; return fail_mpi(e, rc, what); }
      done += m;
      k++;
    }
    if (wait_requests(req, k, what, 0, e) != OE_OK) return OE_EIO;
  }
  return OE_OK;
}

int oe_dist_all_reduce_buckets(float *const *bufs, const int64_t *lens, int nbufs, int64_t bucket_elems, oe_dist_op op,
                               const char *what, oe_err *e) {
  if (ready(what, e) != OE_OK) return OE_EIO;
  if (bucket_elems < 1) bucket_elems = 1;
  if (bucket_elems > CHUNK_ELEMS) bucket_elems = CHUNK_ELEMS;
  int64_t total = 0;
  for (int i = 0; i < nbufs; i++) total += lens[i];
  if (total == 0) return OE_OK;
  if (nbufs == 1) return oe_dist_all_reduce(bufs[0], lens[0], OE_DIST_F32, op, what, e);
  int64_t cap = total < bucket_elems ? total : bucket_elems;
  if (S.stage_cap < cap) {
    for (int s = 0; s < MAX_INFLIGHT; s++) {
      free(S.stage[s]);
      S.stage[s] = NULL;
    }
    S.stage_cap = 0;
    for (int s = 0; s < MAX_INFLIGHT; s++) {
      S.stage[s] = malloc((size_t)cap * sizeof(float));
      if (!S.stage[s]) return fail(e, OE_ENOMEM, "%s: out of memory for a bucket of %lld floats", what, (long long)cap);
    }
    S.stage_cap = cap;
  }
  /* bucket b covers the flat range [b cap, (b + 1) cap) of the concatenated buffers */
  int64_t nb = (total + cap - 1) / cap;
  MPI_Request req[MAX_INFLIGHT];
  int64_t slot_bucket[MAX_INFLIGHT];
  int inflight = 0;
  int64_t next = 0, unpacked = 0;
  while (unpacked < nb) {
    while (next < nb && inflight < MAX_INFLIGHT) { /* pack and start bucket `next` */
      int s = (int)(next % MAX_INFLIGHT);
      int64_t lo = next * cap, hi = lo + cap < total ? lo + cap : total, pos = 0;
      for (int i = 0; i < nbufs && pos < hi; i++) {
        int64_t a = pos > lo ? pos : lo, b = pos + lens[i] < hi ? pos + lens[i] : hi;
        if (a < b) memcpy(S.stage[s] + (a - lo), bufs[i] + (a - pos), (size_t)(b - a) * sizeof(float));
        pos += lens[i];
      }
      int rc = MPI_Iallreduce(MPI_IN_PLACE, S.stage[s], (int)(hi - lo), MPI_FLOAT, mpi_op(op), S.data, &req[s]);
      if (rc != MPI_SUCCESS) { S.broken = inflight > 0; return fail_mpi(e, rc, what); }
      slot_bucket[s] = next;
      next++;
      inflight++;
    }
    int s = (int)(unpacked % MAX_INFLIGHT); /* wait for the oldest, unpack it */
    if (wait_requests(&req[s], 1, what, 0, e) != OE_OK) return OE_EIO;
    int64_t lo = slot_bucket[s] * cap, hi = lo + cap < total ? lo + cap : total, pos = 0;
    for (int i = 0; i < nbufs && pos < hi; i++) {
      int64_t a = pos > lo ? pos : lo, b = pos + lens[i] < hi ? pos + lens[i] : hi;
      if (a < b) memcpy(bufs[i] + (a - pos), S.stage[s] + (a - lo), (size_t)(b - a) * sizeof(float));
      pos += lens[i];
    }
    unpacked++;
    inflight--;
  }
  return OE_OK;
}

/* int counts and displacements for the v-collectives; total must fit an int */
static int int_counts(const int64_t *counts, int *ic, int *disp, const char *what, oe_err *e) {
  int64_t off = 0;
  for (int r = 0; r < S.size; r++) {
    if (counts[r] < 0) return fail(e, OE_EINVAL, "%s: negative count %lld for rank %d", what, (long long)counts[r], r);
    ic[r] = (int)counts[r];
    disp[r] = (int)off;
    off += counts[r];
    if (off > INT_MAX)
      return fail(e, OE_EINVAL, "%s: %lld elements in all are more than one MPI call moves (%d); split the tensor", what,
                  (long long)off, INT_MAX);
  }
  return OE_OK;
}

int oe_dist_all_gatherv(const void *src, void *dst, const int64_t *counts, oe_dist_type t, const char *what, oe_err *e) {
  if (ready(what, e) != OE_OK) return OE_EIO;
  int *ic = malloc(2 * (size_t)S.size * sizeof(int));
  if (!ic) return fail(e, OE_ENOMEM, "%s: out of memory", what);
  int *disp = ic + S.size;
  if (int_counts(counts, ic, disp, what, e) != OE_OK) { free(ic); return OE_EINVAL; }
  MPI_Request req;
  int rc = MPI_Iallgatherv(src, ic[S.rank], mpi_type(t), dst, ic, disp, mpi_type(t), S.data, &req);
  if (rc != MPI_SUCCESS) { free(ic); return fail_mpi(e, rc, what); }
  rc = wait_requests(&req, 1, what, 0, e);
  if (rc == OE_OK || !S.broken) free(ic); /* a pending collective may still read the counts */
  return rc;
}

int oe_dist_reduce_scatterv(const float *src, float *dst, const int64_t *counts, const char *what, oe_err *e) {
  if (ready(what, e) != OE_OK) return OE_EIO;
  int *ic = malloc(2 * (size_t)S.size * sizeof(int));
  if (!ic) return fail(e, OE_ENOMEM, "%s: out of memory", what);
  int *disp = ic + S.size;
  if (int_counts(counts, ic, disp, what, e) != OE_OK) { free(ic); return OE_EINVAL; }
  MPI_Request req;
  int rc = MPI_Ireduce_scatter(src, dst, ic, MPI_FLOAT, MPI_SUM, S.data, &req);
  if (rc != MPI_SUCCESS) { free(ic); return fail_mpi(e, rc, what); }
  rc = wait_requests(&req, 1, what, 0, e);
  if (rc == OE_OK || !S.broken) free(ic);
  return rc;
}

int oe_dist_broadcast(void *buf, int64_t nbytes, int root, const char *what, oe_err *e) {
  if (ready(what, e) != OE_OK) return OE_EIO;
  if (root < 0 || root >= S.size) return fail(e, OE_EINVAL, "%s: root %d outside 0..%d", what, root, S.size - 1);
  for (int64_t done = 0; done < nbytes;) {
    int64_t m = nbytes - done < CHUNK_ELEMS ? nbytes - done : CHUNK_ELEMS;
    MPI_Request req;
    int rc = MPI_Ibcast((char *)buf + done, (int)m, MPI_BYTE, root, S.data, &req);
    if (rc != MPI_SUCCESS) return fail_mpi(e, rc, what);
    if (wait_requests(&req, 1, what, 0, e) != OE_OK) return OE_EIO;
    done += m;
  }
  return OE_OK;
}

int oe_dist_barrier(const char *what, oe_err *e) {
  if (ready(what, e) != OE_OK) return OE_EIO;
  MPI_Request req;
  int rc = MPI_Ibarrier(S.data, &req);
  if (rc != MPI_SUCCESS) return fail_mpi(e, rc, what);
  return wait_requests(&req, 1, what, 0, e);
}

int oe_dist_finalize(oe_err *e) {
  if (!S.inited || S.finalized) return OE_OK;
  const char *what = "oe.dist.finalize";
  if (S.broken) return fail(e, OE_EIO, "%s: a collective failed earlier on rank %d; the job must be aborted", what, S.rank);
  int n = S.size;
  MPI_Request *req = malloc((size_t)(n + 1) * sizeof(MPI_Request));
  if (!req) return fail(e, OE_ENOMEM, "%s: out of memory", what);
  int k = 0, rc = MPI_SUCCESS;
  for (int r = 0; r < n && rc == MPI_SUCCESS; r++)
    if (r != S.rank) rc = MPI_Isend(&S.rank, 1, MPI_INT, r, TAG_LEFT, S.ctl, &req[k++]);
  if (rc != MPI_SUCCESS) { S.broken = 1; return fail_mpi(e, rc, what); }
  /* the exit barrier: every rank has sent its notices once it completes */
  rc = MPI_Ibarrier(S.ctl, &req[k]);
  if (rc != MPI_SUCCESS) { S.broken = 1; return fail_mpi(e, rc, what); }
  if (wait_requests(&req[k], 1, "oe.dist.finalize (waiting for every rank to end)", 1, e) != OE_OK) return OE_EIO;
  while (S.notices < n - 1) { /* the rest of the notices, sent before the barrier */
    MPI_Status st;
    int who;
    if ((rc = MPI_Recv(&who, 1, MPI_INT, MPI_ANY_SOURCE, TAG_LEFT, S.ctl, &st)) != MPI_SUCCESS) {
      S.broken = 1;
      return fail_mpi(e, rc, what);
    }
    if (!S.left[st.MPI_SOURCE]) { S.left[st.MPI_SOURCE] = 1; S.notices++; }
  }
  if ((rc = MPI_Waitall(k, req, MPI_STATUSES_IGNORE)) != MPI_SUCCESS) { S.broken = 1; return fail_mpi(e, rc, what); }
  free(req);
  MPI_Comm_free(&S.data);
  MPI_Comm_free(&S.ctl);
  for (int s = 0; s < MAX_INFLIGHT; s++) { free(S.stage[s]); S.stage[s] = NULL; }
  S.stage_cap = 0;
  S.finalized = 1;
  if (S.we_inited && (rc = MPI_Finalize()) != MPI_SUCCESS) return fail_mpi(e, rc, "MPI_Finalize");
  return OE_OK;
}

void oe_dist_abort(int code) {
  int flag = 0;
  MPI_Initialized(&flag);
  if (flag && !S.finalized) MPI_Abort(MPI_COMM_WORLD, code);
}
