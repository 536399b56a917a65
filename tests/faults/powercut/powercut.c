/*
 * powercut.c: an LD_PRELOAD shim that records what a process made durable, so that the disk a
 * power cut would leave behind can be rebuilt afterwards (tests/faults/powercut/model.py).
 *
 * It acts only on paths under the folder named by POWERCUT_DIR (one flat folder: the store's) and
 * writes under POWERCUT_OUT:
 *   snap/INO-GEN   the whole content of file INO, life GEN, as it was when its last fsync or
 *                  fdatasync returned (copied to a temporary name, then renamed: a SIGKILL during
 *                  the copy leaves the previous snapshot)
 *   events.log     one line per event, appended with a single write():
 *     S PID CALL INO GEN PATH          a snapshot of INO (life GEN) was taken after CALL returned
 *     L PID DIR\tINO:GEN:NAME\t...     the folder was fsynced: its regular files at that moment
 *     G PID INO GEN                    the last link of INO went (unlink, rename over): life GEN ended
 *
 * An inode number is reused once its file is gone, so each inode has lives: GEN counts how often
 * this process saw its last link go. Snapshots and listings name the life they belong to.
 *
 * The event is recorded before the intercepted call returns to the program: a program that was
 * told "synced" always finds its data in the model. One mutex orders everything (SQLite syncs on
 * its own thread, Python on another).
 *
 * Without POWERCUT_DIR and POWERCUT_OUT every call passes straight through.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

typedef int (*fd_fn)(int);
typedef int (*unlink_fn)(const char *);
typedef int (*unlinkat_fn)(int, const char *, int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned int);

static fd_fn real_fsync, real_fdatasync;
static unlink_fn real_unlink, real_remove;
static unlinkat_fn real_unlinkat;
static rename_fn real_rename;
static renameat_fn real_renameat;
static renameat2_fn real_renameat2;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int enabled;
static char watch[PATH_MAX];
static size_t watch_len;
static char out[PATH_MAX];
static int log_fd = -1;

/* Lives per inode: a handful of files, so a small array searched linearly is plenty. */
struct life {
    ino_t ino;
    unsigned gen;
};
static struct life *lives;
static size_t n_lives, cap_lives;

static void init(void) {
    real_fsync = (fd_fn)dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (fd_fn)dlsym(RTLD_NEXT, "fdatasync");
    real_unlink = (unlink_fn)dlsym(RTLD_NEXT, "unlink");
    real_remove = (unlink_fn)dlsym(RTLD_NEXT, "remove");
    real_unlinkat = (unlinkat_fn)dlsym(RTLD_NEXT, "unlinkat");
    real_rename = (rename_fn)dlsym(RTLD_NEXT, "rename");
    real_renameat = (renameat_fn)dlsym(RTLD_NEXT, "renameat");
    real_renameat2 = (renameat2_fn)dlsym(RTLD_NEXT, "renameat2");
    const char *dir = getenv("POWERCUT_DIR");
    const char *where = getenv("POWERCUT_OUT");
    if (!dir || !where || !realpath(dir, watch) || strlen(where) >= sizeof(out) - 32) return;
    watch_len = strlen(watch);
    strcpy(out, where);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/snap", out);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/events.log", out);
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    enabled = log_fd >= 0;
}

static void ready(void) { pthread_once(&once, init); }

__attribute__((constructor)) static void at_load(void) { ready(); }

static unsigned *gen_of(ino_t ino) {
    for (size_t i = 0; i < n_lives; i++)
        if (lives[i].ino == ino) return &lives[i].gen;
    if (n_lives == cap_lives) {
        size_t cap = cap_lives ? cap_lives * 2 : 64;
        struct life *more = realloc(lives, cap * sizeof *more);
        if (!more) abort(); /* a model that forgets a life would be silently wrong */
        lives = more;
        cap_lives = cap;
    }
    lives[n_lives].ino = ino;
    lives[n_lives].gen = 0;
    return &lives[n_lives++].gen;
}

static void log_line(const char *fmt, ...) {
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) abort();
    if (write(log_fd, line, (size_t)n) != n) abort();
}

/* Is PATH the watched folder (folder=1) or directly inside it (folder=0)? */
static int watched(const char *path, int folder) {
    if (strncmp(path, watch, watch_len) != 0) return 0;
    if (folder) return path[watch_len] == '\0';
    return path[watch_len] == '/' && strchr(path + watch_len + 1, '/') == NULL;
}

static int fd_path(int fd, char *buf, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, size - 1);
    if (n < 0) return -1;
    buf[n] = '\0';
    return 0;
}

/* DIRFD + PATH as an absolute path with its folder resolved (the file itself may not exist). */
static int full_path(int dirfd, const char *path, char *buf, size_t size) {
    char joined[PATH_MAX * 2], folder[PATH_MAX], real[PATH_MAX];
    if (path[0] == '/') {
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return -1;
        } else if (fd_path(dirfd, base, sizeof base) < 0) {
            return -1;
        }
        snprintf(joined, sizeof joined, "%s/%s", base, path);
    }
    char *slash = strrchr(joined, '/');
    if (!slash || slash[1] == '\0') return -1;
    size_t len = (size_t)(slash - joined);
    if (len >= sizeof folder) return -1;
    memcpy(folder, joined, len);
    folder[len] = '\0';
    if (!realpath(len ? folder : "/", real)) return -1;
    if ((size_t)snprintf(buf, size, "%s/%s", real, slash + 1) >= size) return -1;
    return 0;
}

static int copy_all(int src, int dst, off_t size) {
    off_t done = 0;
    while (done < size) {
        ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)(size - done), 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
            off_t at = done;
            n = sendfile(dst, src, &at, (size_t)(size - done));
            if (n > 0 && lseek(src, at, SEEK_SET) < 0) return -1;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1; /* n == 0: the file shrank under us; the snapshot would lie */
        done += n;
    }
    return 0;
}

/* Called with the lock held, after a successful fsync/fdatasync of a regular file FD at PATH. */
static void snapshot(int fd, const struct stat *st, const char *path, const char *call) {
    if (st->st_nlink == 0) return; /* unlinked: no name can lead to this content any more */
    unsigned gen = *gen_of(st->st_ino);
    char link[64], tmp[PATH_MAX + 72], final[PATH_MAX + 64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    snprintf(final, sizeof final, "%s/snap/%lu-%u", out, (unsigned long)st->st_ino, gen);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    int src = open(link, O_RDONLY | O_CLOEXEC); /* FD itself may be write-only */
    if (src < 0) abort();
    struct stat now;
    if (fstat(src, &now) < 0) abort();
    int dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dst < 0 || copy_all(src, dst, now.st_size) < 0) abort();
    close(src);
    close(dst);
    if (real_rename(tmp, final) < 0) abort();
    log_line("S %d %s %lu %u %s\n", (int)getpid(), call, (unsigned long)st->st_ino, gen, path);
}

/* Called with the lock held, after a successful fsync/fdatasync of the watched folder. */
static void listing(int fd, const char *path) {
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) abort();
    DIR *dir = fdopendir(dfd);
    if (!dir) abort();
    char line[8192];
    size_t len = (size_t)snprintf(line, sizeof line, "L %d %s", (int)getpid(), path);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) continue;
        if (strpbrk(e->d_name, "\t\n")) abort(); /* the line format cannot carry it */
        int n = snprintf(line + len, sizeof line - len, "\t%lu:%u:%s", (unsigned long)st.st_ino,
                         *gen_of(st.st_ino), e->d_name);
        if (n < 0 || (size_t)n >= sizeof line - len - 1) abort();
        len += (size_t)n;
    }
    closedir(dir);
    (void)fd;
    log_line("%s\n", line);
}

static void after_sync(int fd, const char *call) {
    if (!enabled) return;
    struct stat st;
    char path[PATH_MAX];
    if (fstat(fd, &st) < 0 || fd_path(fd, path, sizeof path) < 0) return;
    pthread_mutex_lock(&lock);
    if (S_ISDIR(st.st_mode) && watched(path, 1)) listing(fd, path);
    else if (S_ISREG(st.st_mode) && watched(path, 0)) snapshot(fd, &st, path, call);
    pthread_mutex_unlock(&lock);
}

int fsync(int fd) {
    ready();
    int rc = real_fsync(fd);
    if (rc == 0) after_sync(fd, "fsync");
    return rc;
}

int fdatasync(int fd) {
    ready();
    int rc = real_fdatasync(fd);
    if (rc == 0) after_sync(fd, "fdatasync");
    return rc;
}

/* Called with the lock held: the inode whose last link DIRFD/PATH is, if that name is watched and
 * is not another link of the inode at KEEP_DIRFD/KEEP (renaming a file onto itself removes nothing);
 * 0 otherwise. */
static ino_t doomed(int dirfd, const char *path, int keep_dirfd, const char *keep) {
    char full[PATH_MAX];
    struct stat st, ks;
    if (!enabled || full_path(dirfd, path, full, sizeof full) < 0 || !watched(full, 0)) return 0;
    if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) return 0;
    if (keep && fstatat(keep_dirfd, keep, &ks, AT_SYMLINK_NOFOLLOW) == 0 && ks.st_ino == st.st_ino) return 0;
    return st.st_ino;
}

/* Called with the lock held, after the call that may have removed INO's last link; releases it. */
static int finish(int rc, ino_t ino) {
    int saved = errno;
    if (rc == 0 && ino) {
        unsigned *gen = gen_of(ino);
        log_line("G %d %lu %u\n", (int)getpid(), (unsigned long)ino, *gen);
        ++*gen;
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}

static void begin(void) {
    ready();
    pthread_mutex_lock(&lock);
}

int unlink(const char *path) {
    begin();
    ino_t ino = doomed(AT_FDCWD, path, AT_FDCWD, NULL);
    return finish(real_unlink(path), ino);
}

int remove(const char *path) {
    begin();
    ino_t ino = doomed(AT_FDCWD, path, AT_FDCWD, NULL);
    return finish(real_remove(path), ino);
}

int unlinkat(int dirfd, const char *path, int flags) {
    begin();
    ino_t ino = doomed(dirfd, path, dirfd, NULL);
    return finish(real_unlinkat(dirfd, path, flags), ino);
}

int rename(const char *from, const char *to) {
    begin();
    ino_t ino = doomed(AT_FDCWD, to, AT_FDCWD, from);
    return finish(real_rename(from, to), ino);
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
    begin();
    ino_t ino = doomed(tofd, to, fromfd, from);
    return finish(real_renameat(fromfd, from, tofd, to), ino);
}

int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags) {
    begin();
    /* RENAME_EXCHANGE swaps two names: no link goes. */
    ino_t ino = (flags & RENAME_EXCHANGE) ? 0 : doomed(tofd, to, fromfd, from);
    return finish(real_renameat2(fromfd, from, tofd, to, flags), ino);
}
