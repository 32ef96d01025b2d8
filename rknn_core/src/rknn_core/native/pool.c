/* A persistent thread pool for the compiled kernels, and per-thread scratch buffers.
 *
 * pool_run(tasks, fn, ctx) calls fn(ctx, t) once for every 0 <= t < tasks, spread over the calling
 * thread and (threads - 1) persistent workers, and returns when all calls have finished. Each thread
 * first takes its own contiguous share of the task numbers in order (the caller the first share, worker
 * i the (i+1)-th), then helps with the others' remaining tasks (one atomic counter per share). Kernels
 * number their tasks in the order of the image (bands of rows, runs of columns), so consecutive layers
 * give the same thread the same part of the image and it finds that part in its own cache: on some
 * machines reading a tensor that another core has just written costs more than a second thread saves.
 * Workers are created lazily, spin briefly after a job
 * (without `pause`: under KVM it triggers pause-loop exits) and then sleep on a condition variable,
 * so idle workers do not take the cores from numpy code. Submissions from several threads are
 * serialized; a pool_run issued from inside a task runs serially. After fork() the child starts with
 * no workers (they are recreated on demand). The thread count defaults to OMP_NUM_THREADS, else the
 * CPUs of the process's affinity mask.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pool.h"

#define POOL_MAX_THREADS 256
#define POOL_SPIN_NS 400000 /* busy-wait this long before sleeping: the gaps between the kernels of an inference */

/* Busy-wait (no `pause`: under KVM it triggers pause-loop exits) until
   *v != old or POOL_SPIN_NS elapse; returns the last value seen. */
static unsigned spin_while_equal(atomic_uint *v, unsigned old)
{
    struct timespec t0, t;
    unsigned x;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1;; i++) {
        if ((x = atomic_load_explicit(v, memory_order_acquire)) != old)
            return x;
        if ((i & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec)
                > POOL_SPIN_NS)
                return x;
        }
    }
}

/* One thread's share of a job's tasks: the next task number to take and the end of the share, on a cache
   line of their own. */
typedef struct {
    _Alignas(64) atomic_int next;
    int end;
} share_t;

static struct {
    pthread_mutex_t submit; /* serializes pool_run / resizing */
    pthread_mutex_t mu;     /* guards sleeping and wake-ups */
    pthread_cond_t wake, done;
    pthread_t *th;
    int nworkers; /* live workers; 0 = not created */
    int stop;     /* set (with a new gen) to make workers exit */
    atomic_uint gen;     /* incremented for every job */
    atomic_uint pending; /* workers that have not finished the current job */
    unsigned start_gen;  /* the generation new workers start from */
    int nshares;         /* threads of the current job: the caller and the workers */
    share_t share[POOL_MAX_THREADS];
    void (*fn)(void *, int);
    void *ctx;
} P = {.submit = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
       .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static atomic_int pool_threads_wanted = 1; /* requested total threads (incl. caller) */
static __thread int in_pool_task;   /* nested pool_run -> run serially */

/* The tasks of share `self`, then what is left of the other shares. */
static void pool_take_tasks(int self)
{
    int t;
    in_pool_task = 1;
    for (int d = 0; d < P.nshares; d++) {
        share_t *s = &P.share[(self + d) % P.nshares];
        while ((t = atomic_fetch_add(&s->next, 1)) < s->end)
            P.fn(P.ctx, t);
    }
    in_pool_task = 0;
}

static void *pool_worker(void *arg)
{
    const int self = (int)(uintptr_t)arg;
    unsigned seen = P.start_gen;
    for (;;) {
        unsigned g = spin_while_equal(&P.gen, seen);
        if (g == seen) {
            pthread_mutex_lock(&P.mu);
            while ((g = atomic_load(&P.gen)) == seen)
                pthread_cond_wait(&P.wake, &P.mu);
            pthread_mutex_unlock(&P.mu);
        }
        seen = g;
        if (P.stop)
            return NULL;
        pool_take_tasks(self);
        if (atomic_fetch_sub(&P.pending, 1) == 1) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_broadcast(&P.done);
            pthread_mutex_unlock(&P.mu);
        }
    }
}

/* Publish a job to the workers (P.submit held). */
static void pool_publish(void)
{
    pthread_mutex_lock(&P.mu);
    atomic_fetch_add_explicit(&P.gen, 1, memory_order_release);
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
}

/* Stop and join all workers (P.submit held). */
static void pool_shutdown(void)
{
    if (P.nworkers == 0)
        return;
    P.stop = 1;
    pool_publish();
    for (int i = 0; i < P.nworkers; i++)
        pthread_join(P.th[i], NULL);
    free(P.th);
    P.th = NULL;
    P.nworkers = 0;
    P.stop = 0;
}

/* Make the pool have `want` workers (P.submit held); returns the count. */
static int pool_resize(int want)
{
    if (P.nworkers == want)
        return want;
    pool_shutdown();
    if (want <= 0)
        return 0;
    P.th = malloc(sizeof(pthread_t) * (size_t)want);
    if (!P.th)
        return 0;
    P.start_gen = atomic_load(&P.gen);
    int made = 0;
    while (made < want && pthread_create(&P.th[made], NULL, pool_worker, (void *)(uintptr_t)(made + 1)) == 0)
        made++;
    P.nworkers = made;
    return made;
}

void pool_run(int tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    if (tasks <= 0)
        return;
    int nt = atomic_load(&pool_threads_wanted);
    if (nt <= 1 || tasks == 1 || in_pool_task) {
        for (int t = 0; t < tasks; t++)
            fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&P.submit);
    int nw = pool_resize(nt - 1);
    P.fn = fn;
    P.ctx = ctx;
    P.nshares = nw + 1;
    for (int i = 0; i < P.nshares; i++) {
        atomic_store(&P.share[i].next, (int)((long)tasks * i / P.nshares));
        P.share[i].end = (int)((long)tasks * (i + 1) / P.nshares);
    }
    atomic_store(&P.pending, nw);
    if (nw > 0)
        pool_publish();
    pool_take_tasks(0);
    for (unsigned p; (p = atomic_load(&P.pending)) > 0;)
        if (spin_while_equal(&P.pending, p) == p)
            break; /* no progress for a while: sleep */
    if (atomic_load(&P.pending) > 0) {
        pthread_mutex_lock(&P.mu);
        while (atomic_load(&P.pending) > 0)
            pthread_cond_wait(&P.done, &P.mu);
        pthread_mutex_unlock(&P.mu);
    }
    pthread_mutex_unlock(&P.submit);
}

void pool_set_threads(int t)
{
    if (t < 1)
        t = 1;
    if (t > POOL_MAX_THREADS)
        t = POOL_MAX_THREADS;
    pthread_mutex_lock(&P.submit);
    atomic_store(&pool_threads_wanted, t);
    if (P.nworkers != t - 1)
        pool_shutdown(); /* recreated lazily with the new size */
    pthread_mutex_unlock(&P.submit);
}

static void pool_atfork_prepare(void) { pthread_mutex_lock(&P.submit); }
static void pool_atfork_parent(void) { pthread_mutex_unlock(&P.submit); }
static void pool_atfork_child(void)
{
    /* Workers do not exist in the child: forget them (the thread handles are
       leaked on purpose) and reinitialize the synchronization objects. */
    P.th = NULL;
    P.nworkers = 0;
    P.stop = 0;
    pthread_mutex_init(&P.submit, NULL);
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.wake, NULL);
    pthread_cond_init(&P.done, NULL);
}

static int default_threads(void)
{
    const char *s = getenv("OMP_NUM_THREADS");
    if (s && *s) {
        long v = strtol(s, NULL, 10); /* "4" or "4,2": first level */
        if (v >= 1)
            return v > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)v;
    }
#ifdef CPU_COUNT
    cpu_set_t cs;
    if (sched_getaffinity(0, sizeof(cs), &cs) == 0 && CPU_COUNT(&cs) >= 1)
        return CPU_COUNT(&cs) > POOL_MAX_THREADS ? POOL_MAX_THREADS
                                                  : CPU_COUNT(&cs);
#endif
    return 1;
}

/* Per-thread scratch buffers, one per slot (64-byte aligned, grown on demand, freed when the thread
   exits): kernels working inside a task use SCRATCH_TASK, a caller's temporaries around a pool run
   SCRATCH_CALLER (the caller also runs tasks). */
static pthread_key_t scratch_key;
typedef struct {
    size_t cap;
    float *p;
} scratch_t;

static void scratch_free(void *v)
{
    scratch_t *s = v;
    for (int i = 0; i < SCRATCH_SLOTS; i++)
        free(s[i].p);
    free(s);
}

float *scratch_get(size_t nfloats) { return scratch_slot(SCRATCH_TASK, nfloats); }

float *scratch_slot(int slot, size_t nfloats)
{
    scratch_t *all = pthread_getspecific(scratch_key);
    if (!all) {
        all = calloc(SCRATCH_SLOTS, sizeof(*all));
        if (!all || pthread_setspecific(scratch_key, all) != 0) {
            free(all);
            return NULL;
        }
    }
    scratch_t *s = &all[slot];
    if (s->cap < nfloats) {
        size_t bytes = (nfloats * sizeof(float) + 63) & ~(size_t)63;
        float *p = aligned_alloc(64, bytes);
        if (!p)
            return NULL;
        free(s->p);
        s->p = p;
        s->cap = bytes / sizeof(float);
    }
    return s->p;
}

int pool_get_threads(void) { return atomic_load(&pool_threads_wanted); }

int pool_init(void)
{
    if (pthread_key_create(&scratch_key, scratch_free) != 0 ||
        pthread_atfork(pool_atfork_prepare, pool_atfork_parent, pool_atfork_child) != 0)
        return -1;
    atomic_store(&pool_threads_wanted, default_threads());
    return 0;
}
