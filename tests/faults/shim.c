/*
 * faultshim: an LD_PRELOAD library that injects I/O faults into a process, for the storage
 * fault tests (tests/faults.rs). It counts the calls of the chosen kinds made on files whose
 * path contains FAULT_MATCH, and at the chosen call fails it, stops the process, or kills it.
 *
 *   FAULT_MATCH       substring of the file's path (/proc/self/fd/N) a call must have to count;
 *                     without it the shim does nothing
 *   FAULT_OPS         "fsync" (fsync, fdatasync), "write" (write, pwrite, pwrite64, writev,
 *                     pwritev) or "fsync,write" (the default)
 *   FAULT_AT          the counted call (from 1) that fails; 0 or unset: none fails
 *   FAULT_ERRNO       "EIO" (default) or "ENOSPC": the errno of the failure
 *   FAULT_PERSIST     if set, every counted call from FAULT_AT on fails (a disk that stays
 *                     broken, a disk that stays full), not only that one
 *   FAULT_KILL_AFTER  after the failure, the process kills itself (SIGKILL) before this many
 *                     more fsyncs or writes on matching files, of either kind (1: the very next)
 *   FAULT_STOP_AT     the counted call before which the process stops itself (SIGSTOP)
 *   FAULT_COUNT_FILE  when the process exits normally, the number of counted calls is written
 *                     here
 *   FAULT_TRACE       if set, every counted call is listed on stderr
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static unsigned long counted;
static unsigned long any_counted;
static unsigned long any_at_failure;

/* Writes to stderr without going through the interposed write(). */
static void syscall_write_stderr(const char *text, size_t len) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    if (real) (void)real(2, text, len);
}

static int ops_include(const char *op) {
    const char *ops = getenv("FAULT_OPS");
    if (!ops || !*ops) return 1;
    return strstr(ops, op) != NULL;
}

static unsigned long env_number(const char *name) {
    const char *v = getenv(name);
    return v ? strtoul(v, NULL, 10) : 0;
}

/* Decides what happens to a call of kind `op` on `fd`: 0 to go ahead, -1 to fail it (errno
 * set). Stops or kills the process when asked to. */
static int decide(const char *op, int fd) {
    const char *match = getenv("FAULT_MATCH");
    if (!match || !*match) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    if (!strstr(path, match)) return 0;
    unsigned long any = __atomic_add_fetch(&any_counted, 1, __ATOMIC_SEQ_CST);
    unsigned long kill_after = env_number("FAULT_KILL_AFTER");
    unsigned long failed_any = __atomic_load_n(&any_at_failure, __ATOMIC_SEQ_CST);
    if (getenv("FAULT_TRACE")) {
        char line[4200];
        int len = snprintf(line, sizeof line, "faultshim: any %lu %s %s (failed at %lu)\n", any, op, path, failed_any);
        if (len > 0) syscall_write_stderr(line, (size_t)len);
    }
    if (kill_after && failed_any && any == failed_any + kill_after) raise(SIGKILL);
    if (!ops_include(op)) return 0;
    unsigned long call = __atomic_add_fetch(&counted, 1, __ATOMIC_SEQ_CST);
    if (getenv("FAULT_TRACE")) {
        char line[4200];
        int len = snprintf(line, sizeof line, "faultshim: %lu %s %s\n", call, op, path);
        if (len > 0) syscall_write_stderr(line, (size_t)len);
    }
    unsigned long stop_at = env_number("FAULT_STOP_AT");
    if (stop_at && call == stop_at) raise(SIGSTOP);
    unsigned long at = env_number("FAULT_AT");
    if (at && (call == at || (call > at && getenv("FAULT_PERSIST")))) {
        const char *e = getenv("FAULT_ERRNO");
        errno = (e && strcmp(e, "ENOSPC") == 0) ? ENOSPC : EIO;
        if (call == at) __atomic_store_n(&any_at_failure, any, __ATOMIC_SEQ_CST);
        return -1;
    }
    return 0;
}

#define REAL(name, ret, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

int fsync(int fd) {
    REAL(fsync, int, int);
    if (decide("fsync", fd)) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    if (decide("fsync", fd)) return -1;
    return real_fdatasync(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, ssize_t, int, const void *, size_t);
    if (decide("write", fd)) return -1;
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    if (decide("write", fd)) return -1;
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    if (decide("write", fd)) return -1;
    return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    if (decide("write", fd)) return -1;
    return real_writev(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t);
    if (decide("write", fd)) return -1;
    return real_pwritev(fd, iov, iovcnt, offset);
}

__attribute__((destructor)) static void write_count(void) {
    const char *file = getenv("FAULT_COUNT_FILE");
    if (!file || !*file) return;
    FILE *f = fopen(file, "w");
    if (!f) return;
    fprintf(f, "%lu\n", counted);
    fclose(f);
}
