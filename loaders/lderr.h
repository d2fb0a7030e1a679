// Error reporting inside loaders/: like nn_seterr, but a thread may divert its messages into
// its own buffer (the batch worker does, so it never races the main thread on nn_err()).
#ifndef LOADERS_LDERR_H
#define LOADERS_LDERR_H
#include <stddef.h>

// buf != NULL: this thread's loader errors go to buf (cap bytes); NULL: back to nn_seterr.
void ld_err_capture(char *buf, size_t cap);
void ld_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// The last loader error of this thread (the capture buffer, or nn_err()).
const char *ld_err(void);
#endif
