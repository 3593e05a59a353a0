/* The listing workers: while the walk descends in its order, they fetch (open,
 * read, stat: walk_list.c) the directories it will need next, so that the
 * system calls of listing run on every core. Core: no Python.h.
 *
 * Tasks wait on a stack whose top is needed first: the walk pushes the child
 * directories of each directory it consumes in reverse need order, above the
 * tasks it will need only after their subtrees (ripgrep's walker keeps a
 * stack for the same reason). The first child is reserved for the walk
 * itself, which needs it next; a worker claims, in the newest group of
 * children, the one needed last (rfn_par_claim).
 * When the walk reaches a directory, it takes the worker's listing, waits for
 * a worker that is fetching it, or fetches it itself. Workers stop claiming
 * once RFN_LIST_AHEAD listings (or RFN_LIST_AHEAD_BYTES) wait to be consumed,
 * and close the descriptor of a listing past RFN_LIST_AHEAD_FDS (its child
 * directories then open by path): memory and descriptors stay bounded.
 */
#include "walk_par.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rfn_par_workers_setting;    /* rfn_par_set_workers(); atomic */

int
rfn_par_set_workers(int n)
{
    return __atomic_exchange_n(&rfn_par_workers_setting, n, __ATOMIC_RELAXED);
}

/* The default: one fewer than the CPUs for a plain walk; for the
 * fingerprint's walk, half the CPUs minus one, since its readers and the hash
 * keep the other half busy (on 2 CPUs a listing worker there only takes the
 * readers' core: T9 75 -> 86 ms). */
static size_t
rfn_par_worker_count(const rfn_par *p)
{
    int n = __atomic_load_n(&rfn_par_workers_setting, __ATOMIC_RELAXED);
    if (n == 0) {
        int cpus = rfn_cpu_count();
        n = p->fingerprint ? cpus / 2 - 1 : cpus - 1;
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
rfn_par_claim(rfn_par *p)
{
    if (p->ahead >= RFN_LIST_AHEAD || p->ahead_bytes >= RFN_LIST_AHEAD_BYTES) {
        return NULL;
    }
    while (p->ngroups > 0) {
        rfn_todo_group *g = &p->groups[p->ngroups - 1];
        if (g->lo < p->ntodo && p->todo[g->lo]->state == RFN_TASK_NEW) {
            rfn_task *t = p->todo[g->lo++];
            t->state = RFN_TASK_CLAIMED;
            p->todo_new--;
            p->ahead++;
            return t;
        }
        p->ntodo = g->start;
        p->ngroups--;
    }
    return NULL;
}

/* A worker's fetch is done (lock held): count it against the bounds; past
 * the descriptor bound, returns the descriptor the caller must close. */
static int
rfn_par_finish_task(rfn_par *p, rfn_task *t, int rc)
{
    int drop = -1;
    if (rc < 0) {
        t->out.open_err = ENOMEM;
    }
    if (t->out.fd >= 0) {
        if (p->ahead_fds < RFN_LIST_AHEAD_FDS) {
            p->ahead_fds++;
        }
        else {
            drop = t->out.fd;
            t->out.fd = -1;
        }
    }
    p->ahead_bytes += t->out.len;
    t->state = RFN_TASK_DONE;
    if (p->waiting) {
        pthread_cond_broadcast(&p->listed);
    }
    return drop;
}

static void *
rfn_par_worker(void *arg)
{
    rfn_par *p = arg;
    rfn_dir dir;
    memset(&dir, 0, sizeof(dir));
    pthread_mutex_lock(&p->list.lock);
    for (;;) {
        rfn_task *t = NULL;
        while (!p->stop && !p->list.cancel && (t = rfn_par_claim(p)) == NULL) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->list.lock);
            p->idle--;
        }
        if (t == NULL) {
            break;
        }
        pthread_mutex_unlock(&p->list.lock);
        int rc = rfn_list_fetch(&p->list, t, &dir);
        pthread_mutex_lock(&p->list.lock);
        int drop = rfn_par_finish_task(p, t, rc);
        if (drop >= 0) {
            pthread_mutex_unlock(&p->list.lock);
            close(drop);
            pthread_mutex_lock(&p->list.lock);
        }
    }
    pthread_mutex_unlock(&p->list.lock);
    rfn_dir_free(&dir);
    return NULL;
}

/* Start the workers once there is work for them (two tasks at least: the
 * walk takes the first itself). A thread that fails to start is one worker
 * fewer; the walk fetches what nobody else does. */
static void
rfn_par_start_workers(rfn_par *p)
{
    p->workers_started = 1;
    size_t n = rfn_par_worker_count(p);
    if (n == 0) {
        return;
    }
    p->workers = calloc(n, sizeof(pthread_t));
    if (p->workers == NULL) {
        return;
    }
    while (p->nworkers < n && rfn_thread_start(&p->workers[p->nworkers], rfn_par_worker, p) == 0) {
        p->nworkers++;
    }
}

void
rfn_par_stop_workers(rfn_par *p)
{
    if (p->nworkers == 0) {
        return;
    }
    pthread_mutex_lock(&p->list.lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->list.lock);
    for (size_t i = 0; i < p->nworkers; i++) {
        pthread_join(p->workers[i], NULL);
    }
    p->nworkers = 0;
}

/* ---- the walk's side -------------------------------------------------------------- */

/* Make the task of directory node c. */
static rfn_task *
rfn_par_new_task(rfn_par *p, uint32_t c)
{
    rfn_task *t = rfn_arena_alloc(&p->list.tree.arena, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    memset(t, 0, sizeof(*t));
    t->out.fd = -1;
    const rfn_node *n = &p->list.tree.nodes[c];
    t->name = n->name;
    t->parent = n->parent != RFN_NONE ? p->list.tree.nodes[n->parent].held : NULL;
    if (t->parent == NULL) {
        if (rfn_tree_dir_strings(&p->list.tree, c) < 0) {
            return NULL;
        }
        t->path = p->list.tree.nodes[c].path;
    }
    p->list.tree.nodes[c].task = t;
    return t;
}

int
rfn_par_enqueue(rfn_par *p, const uint32_t *kids, size_t n)
{
    size_t fresh = 0;
    int reserved = 0;
    for (size_t i = 0; i < n; i++) {
        if (!p->list.tree.nodes[kids[i]].is_dir) {
            continue;
        }
        rfn_task *t = rfn_par_new_task(p, kids[i]);
        if (t == NULL) {
            p->list.tree.failure = RFN_WALK_NOMEM;
            return -1;
        }
        t->state = reserved ? RFN_TASK_NEW : RFN_TASK_MINE;
        fresh += (size_t)reserved;
        reserved = 1;
    }
    if (fresh == 0) {
        return 0;
    }
    if (!p->workers_started) {
        rfn_par_start_workers(p);
    }
    if (p->nworkers == 0) {
        return 0;  /* the walk fetches every task itself */
    }
    pthread_mutex_lock(&p->list.lock);
    int grown = RFN_GROW(p, todo, cap_todo, p->ntodo + fresh);
    if (grown == 0) {
        grown = RFN_GROW(p, groups, cap_groups, p->ngroups + 1);
    }
    if (grown == 0) {
        p->groups[p->ngroups++] = (rfn_todo_group){p->ntodo, p->ntodo};
    }
    for (size_t i = n; grown == 0 && i-- > 0;) {
        rfn_task *t = p->list.tree.nodes[kids[i]].task;
        if (p->list.tree.nodes[kids[i]].is_dir && t->state == RFN_TASK_NEW) {
            p->todo[p->ntodo++] = t;
        }
    }
    if (grown == 0) {
        p->todo_new += fresh;
        if (p->idle > 0) {
            pthread_cond_broadcast(&p->work);
        }
    }
    pthread_mutex_unlock(&p->list.lock);
    if (grown < 0) {
        p->list.tree.failure = RFN_WALK_NOMEM;
        return -1;
    }
    return 0;
}

/* Take task t for the walk (lock held). Returns 1 when the walk must fetch
 * it itself, 0 when a worker's listing is there, -1 cancelled. */
static int
rfn_par_take(rfn_par *p, rfn_task *t)
{
    if (t->state == RFN_TASK_NEW) {
        t->state = RFN_TASK_MINE;
        p->todo_new--;
    }
    while (t->state == RFN_TASK_CLAIMED && !p->list.cancel) {
        p->waiting = 1;
        pthread_cond_wait(&p->listed, &p->list.lock);
        p->waiting = 0;
    }
    if (t->state == RFN_TASK_MINE) {
        return 1;
    }
    if (t->state != RFN_TASK_DONE) {
        return -1;
    }
    t->state = RFN_TASK_MINE;
    p->ahead--;
    p->ahead_bytes -= t->out.len;
    p->ahead_fds -= (size_t)(t->out.fd >= 0);
    if (p->idle > 0 && p->todo_new > 0) {
        pthread_cond_signal(&p->work);
    }
    return 0;
}

rfn_listing *
rfn_par_need(rfn_par *p, uint32_t d)
{
    rfn_task *t = p->list.tree.nodes[d].task;
    int here = 1;
    if (p->nworkers > 0) {
        pthread_mutex_lock(&p->list.lock);
        here = rfn_par_take(p, t);
        pthread_mutex_unlock(&p->list.lock);
    }
    if (here < 0) {
        p->list.tree.failure = RFN_WALK_CANCELLED;
        return NULL;
    }
    if (here && rfn_list_fetch(&p->list, t, &p->list.dir) < 0) {
        p->list.tree.failure = RFN_WALK_NOMEM;
        return NULL;
    }
    return &t->out;
}

/* ---- setup and teardown ------------------------------------------------------- */

int
rfn_par_init(rfn_par *p, const char *root, size_t root_len, const uint32_t *prefix,
             size_t prefix_len, const rfn_matcher *matcher, int fingerprint)
{
    p->fingerprint = fingerprint;
    if (rfn_list_init(&p->list, root, root_len, prefix, prefix_len, matcher) < 0) {
        return -1;
    }
    p->have_work = rfn_cond_init(&p->work) == 0;
    p->have_listed = p->have_work && rfn_cond_init(&p->listed) == 0;
    return p->have_listed ? 0 : -1;
}

void
rfn_par_dispose(rfn_par *p)
{
    rfn_par_stop_workers(p);
    free(p->workers);
    free(p->todo);
    free(p->groups);
    if (p->have_work) {
        pthread_cond_destroy(&p->work);
    }
    if (p->have_listed) {
        pthread_cond_destroy(&p->listed);
    }
    rfn_list_dispose(&p->list);
}
