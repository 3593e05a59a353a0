/* The listing workers: while the walk descends in its order, they fetch (open,
 * read, stat: walk_list.c) the directories it will need next, so that the
 * system calls of listing run on every core. Core: no Python.h.
 *
 * Tasks wait on a stack whose top is needed first: the walk pushes the child
 * directories of each directory it consumes in reverse need order, above the
 * tasks it will need only after their subtrees (ripgrep's walker keeps a
 * stack for the same reason). The first child is reserved for the walk
 * itself, which needs it next; a worker claims, in the newest group of
 * children, the one needed last (rfn_walk_claim).
 * When the walk reaches a directory, it takes the worker's listing, waits for
 * a worker that is fetching it, or fetches it itself. Workers stop claiming
 * once RFN_LIST_AHEAD listings (or RFN_LIST_AHEAD_BYTES) wait to be consumed,
 * and close the descriptor of a listing past RFN_LIST_AHEAD_FDS (its child
 * directories then open by path): memory and descriptors stay bounded.
 */
#include "walk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rfn_list_workers_setting;    /* rfn_walk_set_list_workers(); atomic */

int
rfn_walk_set_list_workers(int n)
{
    return __atomic_exchange_n(&rfn_list_workers_setting, n, __ATOMIC_RELAXED);
}

/* The default: one fewer than the CPUs for a plain walk; for the
 * fingerprint's walk, half the CPUs minus one, since its readers and the hash
 * keep the other half busy (on 2 CPUs a listing worker there only takes the
 * readers' core: T9 75 -> 86 ms). */
static size_t
rfn_walk_worker_count(const rfn_walker *w)
{
    int n = __atomic_load_n(&rfn_list_workers_setting, __ATOMIC_RELAXED);
    if (n == 0) {
        int cpus = rfn_cpu_count();
        n = w->sorted ? cpus / 2 - 1 : cpus - 1;
    }
    if (n <= 0) {
        return 0;  /* -1: none; or a default of none */
    }
    return (size_t)(n > RFN_MAX_LIST_WORKERS ? RFN_MAX_LIST_WORKERS : n);
}

/* ---- workers ------------------------------------------------------------------ */

/* Claim a task nobody took, within the look-ahead bounds (lock held): in
 * the newest group (the children of the directory the walk entered last),
 * the one needed last. The walk takes a group's tasks from its top down,
 * contiguously, so a group whose lowest unclaimed task is taken is done. A
 * worker that took the walk's very next directory would make the walk wait
 * for it, one directory after another. */
static rfn_task *
rfn_walk_claim(rfn_walker *w)
{
    if (w->ahead >= RFN_LIST_AHEAD || w->ahead_bytes >= RFN_LIST_AHEAD_BYTES) {
        return NULL;
    }
    while (w->ngroups > 0) {
        rfn_todo_group *g = &w->groups[w->ngroups - 1];
        if (g->lo < w->ntodo && w->todo[g->lo]->state == RFN_TASK_NEW) {
            rfn_task *t = w->todo[g->lo++];
            t->state = RFN_TASK_CLAIMED;
            w->todo_new--;
            w->ahead++;
            return t;
        }
        w->ntodo = g->start;
        w->ngroups--;
    }
    return NULL;
}

/* A worker's fetch is done (lock held): count it against the bounds; past
 * the descriptor bound, returns the descriptor the caller must close. */
static int
rfn_walk_finish_task(rfn_walker *w, rfn_task *t, int rc)
{
    int drop = -1;
    if (rc < 0) {
        t->out.open_err = ENOMEM;
    }
    if (t->out.fd >= 0) {
        if (w->ahead_fds < RFN_LIST_AHEAD_FDS) {
            w->ahead_fds++;
        }
        else {
            drop = t->out.fd;
            t->out.fd = -1;
        }
    }
    w->ahead_bytes += t->out.len;
    t->state = RFN_TASK_DONE;
    if (w->waiting) {
        pthread_cond_broadcast(&w->listed);
    }
    return drop;
}

static void *
rfn_walk_worker(void *arg)
{
    rfn_walker *w = arg;
    rfn_dir dir;
    memset(&dir, 0, sizeof(dir));
    pthread_mutex_lock(&w->lock);
    for (;;) {
        rfn_task *t = NULL;
        while (!w->stop && !w->cancel && (t = rfn_walk_claim(w)) == NULL) {
            w->idle++;
            pthread_cond_wait(&w->work, &w->lock);
            w->idle--;
        }
        if (t == NULL) {
            break;
        }
        pthread_mutex_unlock(&w->lock);
        int rc = rfn_walk_fetch(w, t, &dir);
        pthread_mutex_lock(&w->lock);
        int drop = rfn_walk_finish_task(w, t, rc);
        if (drop >= 0) {
            pthread_mutex_unlock(&w->lock);
            close(drop);
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    rfn_dir_free(&dir);
    return NULL;
}

/* Start the workers once there is work for them (two tasks at least: the
 * walk takes the first itself). A thread that fails to start is one worker
 * fewer; the walk fetches what nobody else does. */
static void
rfn_walk_start_workers(rfn_walker *w)
{
    w->workers_started = 1;
    size_t n = rfn_walk_worker_count(w);
    if (n == 0) {
        return;
    }
    w->workers = calloc(n, sizeof(pthread_t));
    if (w->workers == NULL) {
        return;
    }
    while (w->nworkers < n && rfn_thread_start(&w->workers[w->nworkers], rfn_walk_worker, w) == 0) {
        w->nworkers++;
    }
}

void
rfn_walk_stop_workers(rfn_walker *w)
{
    if (w->nworkers == 0) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->nworkers; i++) {
        pthread_join(w->workers[i], NULL);
    }
    w->nworkers = 0;
}

/* ---- the walk's side -------------------------------------------------------------- */

/* Make the task of directory node c. */
static rfn_task *
rfn_walk_new_task(rfn_walker *w, uint32_t c)
{
    rfn_task *t = rfn_arena_alloc(&w->arena, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    memset(t, 0, sizeof(*t));
    t->out.fd = -1;
    const rfn_node *n = &w->nodes[c];
    t->name = n->name;
    t->parent = n->parent != RFN_NONE ? w->nodes[n->parent].held : NULL;
    if (t->parent == NULL) {
        if (rfn_walk_dir_strings(w, c) < 0) {
            return NULL;
        }
        t->path = w->nodes[c].path;
    }
    w->nodes[c].task = t;
    return t;
}

int
rfn_walk_enqueue(rfn_walker *w, const uint32_t *kids, size_t n)
{
    size_t fresh = 0;
    int reserved = 0;
    for (size_t i = 0; i < n; i++) {
        if (!w->nodes[kids[i]].is_dir) {
            continue;
        }
        rfn_task *t = rfn_walk_new_task(w, kids[i]);
        if (t == NULL) {
            w->failure = RFN_WALK_NOMEM;
            return -1;
        }
        t->state = reserved ? RFN_TASK_NEW : RFN_TASK_MINE;
        fresh += (size_t)reserved;
        reserved = 1;
    }
    if (fresh == 0) {
        return 0;
    }
    if (!w->workers_started) {
        rfn_walk_start_workers(w);
    }
    if (w->nworkers == 0) {
        return 0;  /* the walk fetches every task itself */
    }
    pthread_mutex_lock(&w->lock);
    int grown = RFN_GROW(w, todo, cap_todo, w->ntodo + fresh);
    if (grown == 0) {
        grown = RFN_GROW(w, groups, cap_groups, w->ngroups + 1);
    }
    if (grown == 0) {
        w->groups[w->ngroups++] = (rfn_todo_group){w->ntodo, w->ntodo};
    }
    for (size_t i = n; grown == 0 && i-- > 0;) {
        rfn_task *t = w->nodes[kids[i]].task;
        if (w->nodes[kids[i]].is_dir && t->state == RFN_TASK_NEW) {
            w->todo[w->ntodo++] = t;
        }
    }
    if (grown == 0) {
        w->todo_new += fresh;
        if (w->idle > 0) {
            pthread_cond_broadcast(&w->work);
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (grown < 0) {
        w->failure = RFN_WALK_NOMEM;
        return -1;
    }
    return 0;
}

/* Take task t for the walk (lock held). Returns 1 when the walk must fetch
 * it itself, 0 when a worker's listing is there, -1 cancelled. */
static int
rfn_walk_take(rfn_walker *w, rfn_task *t)
{
    if (t->state == RFN_TASK_NEW) {
        t->state = RFN_TASK_MINE;
        w->todo_new--;
    }
    while (t->state == RFN_TASK_CLAIMED && !w->cancel) {
        w->waiting = 1;
        pthread_cond_wait(&w->listed, &w->lock);
        w->waiting = 0;
    }
    if (t->state == RFN_TASK_MINE) {
        return 1;
    }
    if (t->state != RFN_TASK_DONE) {
        return -1;
    }
    t->state = RFN_TASK_MINE;
    w->ahead--;
    w->ahead_bytes -= t->out.len;
    w->ahead_fds -= (size_t)(t->out.fd >= 0);
    if (w->idle > 0 && w->todo_new > 0) {
        pthread_cond_signal(&w->work);
    }
    return 0;
}

rfn_listing *
rfn_walk_need(rfn_walker *w, uint32_t d)
{
    rfn_task *t = w->nodes[d].task;
    int here = 1;
    if (w->nworkers > 0) {
        pthread_mutex_lock(&w->lock);
        here = rfn_walk_take(w, t);
        pthread_mutex_unlock(&w->lock);
    }
    if (here < 0) {
        w->failure = RFN_WALK_CANCELLED;
        return NULL;
    }
    if (here && rfn_walk_fetch(w, t, &w->dir) < 0) {
        w->failure = RFN_WALK_NOMEM;
        return NULL;
    }
    return &t->out;
}
