/* walk_par: the listing workers of a walk, above listing (walk_list.h): they
 * fetch the directories the walk will need next, in the order it will need
 * them, so that the system calls of listing run on every core. Core: no
 * Python.h.
 */
#ifndef RFN_WALK_PAR_H
#define RFN_WALK_PAR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "match.h"
#include "walk_list.h"
#include "walk_tree.h"

/* Listing workers of a walk: 0 = default (one fewer than the CPUs; for the
 * fingerprint's walk half the CPUs minus one; at most RFN_MAX_LIST_WORKERS),
 * -1 = none. Process-wide test hook. */
#define RFN_MAX_LIST_WORKERS 3
int rfn_par_set_workers(int n);   /* returns the previous setting */

/* Look-ahead bounds: fetched listings not yet consumed, those of them that
 * hold a descriptor, and their bytes. */
#define RFN_LIST_AHEAD 1024
#define RFN_LIST_AHEAD_FDS 48
#define RFN_LIST_AHEAD_BYTES (32u << 20)

/* rfn_task.state */
enum rfn_task_state {
    RFN_TASK_NEW = 0,         /* enqueued, nobody fetches it yet */
    RFN_TASK_MINE,            /* the walk fetches it itself (its next need) */
    RFN_TASK_CLAIMED,         /* a worker fetches it */
    RFN_TASK_DONE,            /* fetched by a worker, waiting for the walk */
};

/* The tasks one rfn_par_enqueue() pushed: todo[start..) up to the next
 * group's start. The walk takes them from the top (need order), workers from
 * lo upwards (needed last first), so the two meet instead of racing for the
 * same next directory. */
typedef struct {
    size_t start, lo;
} rfn_todo_group;

/* The lister and its workers; the fields below list are under list.lock. */
typedef struct {
    rfn_lister list;
    int fingerprint;                /* the fingerprint's walk: fewer workers by default */

    pthread_cond_t work;            /* workers wait for tasks */
    pthread_cond_t listed;          /* the walk waits for a worker's fetch */
    int have_work, have_listed;
    pthread_t *workers;
    size_t nworkers;
    int workers_started;
    rfn_task **todo;                /* a stack: the top is needed first */
    size_t ntodo, cap_todo;
    size_t todo_new;                /* tasks in todo still NEW */
    rfn_todo_group *groups;         /* one per enqueue: a directory's children */
    size_t ngroups, cap_groups;
    size_t ahead, ahead_fds;        /* fetched (or being fetched) by workers, not consumed */
    size_t ahead_bytes;
    size_t idle;                    /* workers waiting on work */
    int waiting;                    /* the walk waits on listed */
    int stop;                       /* workers: leave */
} rfn_par;

/* rfn_list_init() and the workers' conditions (no thread yet). Returns 0, or
 * -1 (then dispose it). */
int rfn_par_init(rfn_par *p, const char *root, size_t root_len, const uint32_t *prefix,
                 size_t prefix_len, const rfn_matcher *matcher, int fingerprint);

/* Stop the workers, free what p holds (p itself is the caller's). */
void rfn_par_dispose(rfn_par *p);

/* Stop and join the workers (started by rfn_par_enqueue() once there is
 * work for them; a walk without any fetches everything itself). */
void rfn_par_stop_workers(rfn_par *p);

/* Make the tasks of the directories among kids[0..n) (their parent just
 * consumed; in need order: kids[0] first) and push them for the workers; the
 * first is reserved for the walk itself. Returns 0, or -1 out of memory
 * (list.tree.failure set). */
int rfn_par_enqueue(rfn_par *p, const uint32_t *kids, size_t n);

/* Directory d's fetched listing: taken from a worker (waiting for one that
 * is fetching it) or fetched here. NULL when cancelled or out of memory
 * (list.tree.failure set). */
rfn_listing *rfn_par_need(rfn_par *p, uint32_t d);

#endif /* RFN_WALK_PAR_H */
