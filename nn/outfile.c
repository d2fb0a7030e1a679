// Output files written whole or not at all: a temporary file beside the target, renamed over it on
// success. Only regular files (or new paths) are replaced; "-" is stdout and a character device is
// written in place, so `--out /dev/null` or `--out -` work and `--out /dev/full` fails instead of
// turning the device into a regular file.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"

enum { OUT_ATOMIC, OUT_STDOUT, OUT_DEVICE };

int nn_out_open(NnOut *o, const char *path, int durable) {
    memset(o, 0, sizeof *o);
    o->durable = durable;
    if (!path || !path[0]) {
        nn_seterr("no output path given");
        return -1;
    }
    if (!strcmp(path, "-")) {
        o->mode = OUT_STDOUT;
        o->f = stdout;
        snprintf(o->path, sizeof o->path, "(standard output)");
        return 0;
    }
    if (strlen(path) >= sizeof o->path - 32) {
        nn_seterr("%.200s...: output path too long (%zu bytes)", path, strlen(path));
        return -1;
    }
    snprintf(o->path, sizeof o->path, "%s", path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        // Replace the file the link names, not the link.
        char *real = realpath(path, NULL);
        if (!real || strlen(real) >= sizeof o->path - 32) {
            nn_seterr("%s: a symbolic link whose target %s", path, real ? "has too long a path" : "does not exist");
            free(real);
            return -1;
        }
        snprintf(o->path, sizeof o->path, "%s", real);
        free(real);
    }
    if (stat(o->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISCHR(st.st_mode)) {
            o->mode = OUT_DEVICE;
            o->f = fopen(o->path, "wb");
            if (!o->f) {
                nn_seterr("%s: cannot open the device for writing (%s)", path, strerror(errno));
                return -1;
            }
            return 0;
        }
        nn_seterr("%s: exists and is %s, not a regular file; refusing to replace it (expected a file path, or - for "
                  "standard output)", path,
                  S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket"
                  : S_ISBLK(st.st_mode) ? "a block device" : "a special file");
        return -1;
    }
    o->mode = OUT_ATOMIC;
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", o->path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        nn_seterr("%s: cannot create the temporary file %s (%s) (hint: does the folder exist and is it writable?)",
                  path, o->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

int nn_out_close(NnOut *o, int ok) {
    if (!o->f) return -1;
    int en = 0;
    if (ok && (fflush(o->f) != 0 || ferror(o->f))) ok = 0, en = errno;
    if (ok && o->durable && o->mode == OUT_ATOMIC && fsync(fileno(o->f)) != 0) ok = 0, en = errno;
    if (o->mode != OUT_STDOUT && fclose(o->f) != 0 && ok) ok = 0, en = errno;
    o->f = NULL;
    if (o->mode == OUT_ATOMIC) {
        if (ok && rename(o->tmp, o->path) != 0) {
            en = errno;
            nn_seterr("%s: cannot rename %s into place (%s)", o->path, o->tmp, strerror(en));
            unlink(o->tmp);
            return -1;
        }
        if (!ok) unlink(o->tmp);
    }
    if (!ok && en) {
        nn_seterr("%s: write failed (%s)", o->path, strerror(en));
        return -1;
    }
    return ok ? 0 : -1;   // !ok without errno: the caller's own failure, its message stands
}

int nn_write_file(const char *path, const void *data, size_t n, int durable) {
    NnOut o;
    if (nn_out_open(&o, path, durable)) return -1;
    int ok = fwrite(data, 1, n, o.f) == n;
    if (!ok) {   // keep the write's errno for the message
        int en = errno;
        nn_out_close(&o, 0);
        nn_seterr("%s: write failed (%s)", path, strerror(en ? en : EIO));
        return -1;
    }
    return nn_out_close(&o, 1);
}
