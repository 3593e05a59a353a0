/* copy: shutil.copy2 for many files at once (runpod_flash_native.build's
 * copy_project_files). Compiles without Python.h.
 *
 * Each job is one copy2(src, dst): a directory dst receives
 * dst/basename(src); same file -> RFN_COPY_SAME; a FIFO on either side ->
 * RFN_COPY_FIFO; the content (Linux: FICLONE, else copy_file_range; macOS:
 * fcopyfile; then read/write), then from a stat of the source path taken
 * after the copy: atime/mtime in ns, the extended attributes (Linux, as copy2;
 * errors copy2 ignores are ignored), the permission bits, and st_flags where
 * stat has them (macOS, FreeBSD). Several worker threads take the jobs in
 * list order; the first failing job in list order is reported, and every job
 * before it is completed. */
#ifndef RFN_COPY_H
#define RFN_COPY_H

#include <stddef.h>

enum rfn_copy_kind {
    RFN_COPY_OK = 0,
    RFN_COPY_OS,            /* err_no; which path: see rfn_copy_path */
    RFN_COPY_SAME,          /* shutil.SameFileError */
    RFN_COPY_FIFO,          /* shutil.SpecialFileError ("is a named pipe") */
    RFN_COPY_NO_DIR,        /* copy2's FileNotFoundError "Directory does not exist" */
    RFN_COPY_CHANGED,       /* the source path names another file after the copy */
    RFN_COPY_NOMEM,
    RFN_COPY_THREAD,        /* err_no from pthread_create */
    RFN_COPY_INTERRUPTED,   /* the poll callback asked to stop */
};

enum rfn_copy_path {
    RFN_COPY_PATH_SRC = 0,
    RFN_COPY_PATH_DST = 1,
    RFN_COPY_PATH_BOTH = 2,  /* during the data copy: "src -> dst", as copy2's sendfile */
};

/* Content copy methods, for tests and measurements. */
enum rfn_copy_method {
    RFN_COPY_AUTO = 0,      /* Linux: FICLONE, then copy_file_range; macOS: fcopyfile; then read/write */
    RFN_COPY_RANGE = 1,     /* Linux: copy_file_range; macOS: fcopyfile; then read/write */
    RFN_COPY_READWRITE = 2, /* read/write only */
};

typedef struct {
    const char *src;        /* in: NUL-terminated paths */
    const char *dst;
    char *dst_into;         /* out: malloc'd dst/basename(src) when dst was a directory */
    unsigned char created;  /* out: this copy created the destination */
    unsigned char done;     /* out: copied completely */
} rfn_copy_job;

typedef struct {
    enum rfn_copy_kind kind;
    int err_no;
    enum rfn_copy_path path;
    size_t index;
} rfn_copy_failure;

typedef struct {
    unsigned threads;                   /* >= 1; capped at the number of jobs */
    enum rfn_copy_method method;
    /* Called on the calling thread at least every poll_ns while the workers
     * run; nonzero stops them (RFN_COPY_INTERRUPTED). May be NULL. */
    int (*poll)(void *ctx);
    void *poll_ctx;
    long poll_ns;
} rfn_copy_opts;

/* Run the jobs. Returns 0, or -1 with *fail set to the failure of the first
 * failing job in list order (or RFN_COPY_INTERRUPTED / NOMEM / THREAD).
 * Every job before fail->index is complete; the failing job's destination is
 * removed if this copy had opened it; destinations that later jobs created
 * are removed again. Interrupted: partial destinations are removed, finished
 * ones stay. Call rfn_copy_jobs_release() afterwards in every case. */
int rfn_copy_run(rfn_copy_job *jobs, size_t n, const rfn_copy_opts *opts, rfn_copy_failure *fail);

void rfn_copy_jobs_release(rfn_copy_job *jobs, size_t n);

/* 1 when this build uses FICLONE and copy_file_range (Linux, not
 * RFN_PORTABLE), else 0 (read/write only, or macOS's fcopyfile). */
int rfn_copy_kernel_paths(void);

#endif
