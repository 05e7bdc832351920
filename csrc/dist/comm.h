/* comm.h: data-parallel communication over MPI (Open MPI), the transport of oe.dist.
 * Built only into the optional module oneencoder/dist_mpi.so; the core never links MPI.
 *
 * One process-wide state (MPI itself is process-wide). Every collective is started
 * non-blocking and waited for by polling, so that a wait is bounded:
 *   - a rank that is killed: the MPI launcher (mpirun) ends every process of the job;
 *   - a rank that leaves (its script ended or failed before the others finished):
 *     it sends a "left" notice to every rank before its exit barrier; a rank waiting in a
 *     collective that sees the notice fails the collective after a grace period
 *     (OE_DIST_GRACE_S, time for messages already sent to arrive) with a message naming
 *     the rank that left;
 *   - a rank that hangs: the wait fails after the timeout (oe_dist_init's argument).
 * After a failed wait the collective is still pending inside MPI: the state is marked
 * broken, every later call fails at once, and the only way out is oe_dist_abort.
 * Functions return OE_OK or an error code with the reason in e (they never print or exit). */
#ifndef OE_DIST_COMM_H
#define OE_DIST_COMM_H
#include <stdint.h>
#include "../core/tensor.h"

#define OE_DIST_GRACE_S 3.0

typedef enum { OE_DIST_SUM = 0, OE_DIST_MAX = 1, OE_DIST_MIN = 2 } oe_dist_op;
/* element types: the tensor dtypes plus F64 (Lua numbers) */
typedef enum { OE_DIST_F32 = 0, OE_DIST_I32 = 1, OE_DIST_I64 = 2, OE_DIST_U8 = 3, OE_DIST_F64 = 4 } oe_dist_type;

/* MPI_Init_thread (FUNNELED: only the Lua thread calls MPI) unless MPI is already
 * initialised; duplicates MPI_COMM_WORLD for the data and for the exit notices, errors
 * returned instead of aborting. timeout_s <= 0: collectives wait without a deadline. */
int oe_dist_init(double timeout_s, oe_err *e);
int oe_dist_initialized(void); /* 1 between init and finalize */
int oe_dist_finalized(void);
int oe_dist_broken(void);      /* 1 after a failed wait */
int oe_dist_rank(void);
int oe_dist_size(void);
double oe_dist_timeout(void);
void oe_dist_set_timeout(double timeout_s);

/* In place over n elements; the result is identical on every rank. what names the
 * operation in messages. */
int oe_dist_all_reduce(void *buf, int64_t n, oe_dist_type t, oe_dist_op op, const char *what, oe_err *e);
/* Several float buffers reduced (summed, or max/min) in buckets of at most bucket_elems
 * floats, packed through staging buffers; up to 4 buckets in flight. */
int oe_dist_all_reduce_buckets(float *const *bufs, const int64_t *lens, int nbufs, int64_t bucket_elems,
                               oe_dist_op op, const char *what, oe_err *e);
/* dst = the src of every rank in rank order; counts[r] = rank r's element count
 * (src holds counts[rank]); dst holds their sum. */
int oe_dist_all_gatherv(const void *src, void *dst, const int64_t *counts, oe_dist_type t, const char *what, oe_err *e);
/* dst (counts[rank] floats) = rank's block of the element-wise sum over ranks of src
 * (sum of counts floats, blocks in rank order). */
int oe_dist_reduce_scatterv(const float *src, float *dst, const int64_t *counts, const char *what, oe_err *e);
/* nbytes from root's buf into every rank's buf */
int oe_dist_broadcast(void *buf, int64_t nbytes, int root, const char *what, oe_err *e);
int oe_dist_barrier(const char *what, oe_err *e);

/* The end of the job for this rank: "left" notice to every rank, exit barrier, MPI_Finalize.
 * The exit barrier has no deadline: a rank still at work (rank 0 evaluating after training)
 * is waited for, a rank waiting in a collective for this one fails on its notice and comes
 * to the barrier, and a killed rank ends the job through mpirun. OE_OK also when already
 * finalised; on failure (a broken state) nothing is finalised and the caller should abort. */
int oe_dist_finalize(oe_err *e);
/* MPI_Abort on the world communicator: ends every process of the job (does not return
 * when MPI is initialised). */
void oe_dist_abort(int code);
#endif
