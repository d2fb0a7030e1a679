// Batch iterator. One producer (a worker thread, or bi_next itself without prefetch) fills two
// slots in turn; the consumer copies a ready slot out. Everything random is a pure function of
// (seed, epoch, example), so results do not depend on timing.
#include "loaders/batch.h"
#include "loaders/lderr.h"
#include "nn/nn.h"
#include "nn/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_EMPTY, SLOT_READY };

typedef struct {
    float *x;
    int *y, *idx;
    int nvalid, k, state, failed;
    char err[1024];
} Slot;

struct BatchIter {
    const Dataset *d;
    BatchOpts o;
    int nb, epoch, next, failed;
    int *perm;
    long per;               // floats per example: 3*S*S
    Slot slot[2];
    int *last_idx;          // dataset indices of the batch bi_next returned last
    // producer state (touched only by the single producer)
    uint8_t *cache;         // n * 3*S*S, CHW
    uint8_t *cached;        // n flags
    float *src, *tmp;       // decoded image, cached image as float
    size_t src_cap;
    // worker
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop;
};

void bi_opts_default(BatchOpts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->size = 224;
    o->shuffle = 1;
    o->scale[0] = 0.08f; o->scale[1] = 1.0f;
    o->ratio[0] = 3.0f / 4.0f; o->ratio[1] = 4.0f / 3.0f;
    o->flip_p = 0.5f;
    o->resize = RESIZE_BILINEAR;
    tf_norm_preset("inception", o->mean, o->std);
    o->prefetch = 1;
}

void bi_opts_eval(BatchOpts *o) {
    bi_opts_default(o);
    o->shuffle = 0;
    o->drop_last = 0;
    o->augment = 0;
}

static void make_perm(BatchIter *bi) {
    int n = bi->d->n;
    for (int i = 0; i < n; i++) bi->perm[i] = i;
    if (!bi->o.shuffle) return;
    uint64_t s = rng_stream_i(bi->o.seed, "batch-order", (uint64_t)bi->epoch);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_next(&s) % (uint64_t)(i + 1));
        int t = bi->perm[i]; bi->perm[i] = bi->perm[j]; bi->perm[j] = t;
    }
}

// *buf holds at least n floats (its contents are not kept).
static void grow(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return;
    free(*buf);
    *buf = nn_malloc(sizeof(float) * n);
    *cap = n;
}

int bi_image_input(const Image *im, int S, ResizeMode mode, const float mean[3], const float std[3], float *out,
                   float **scratch, size_t *cap) {
    float *dst = out;
    if (im->w != S || im->h != S) {
        grow(scratch, cap, (size_t)3 * im->w * im->h);
        dst = *scratch;
    }
    if (tf_from_image(im, dst)) return -1;
    if (dst != out) tf_resize(dst, 3, im->h, im->w, out, S, S, mode);
    tf_normalize(out, 3, S, S, mean, std);
    return 0;
}

int bi_load_input(const char *path, int S, ResizeMode mode, const float mean[3], const float std[3], float *out,
                  float **scratch, size_t *cap) {
    Image im;
    if (img_load(path, &im)) return -1;
    int r = bi_image_input(&im, S, mode, mean, std, out, scratch, cap);
    if (r) ld_seterr("%s: %d channels (expected gray, RGB or RGBA)", path, im.c);
    img_free(&im);
    return r;
}

// Decodes example i to float CHW 3 x h x w in bi->src.
static int decode(BatchIter *bi, int i, int *h, int *w) {
    Image im;
    if (ds_load_image(bi->d, i, &im)) return -1;
    grow(&bi->src, &bi->src_cap, (size_t)3 * im.w * im.h);
    int r = tf_from_image(&im, bi->src);
    *h = im.h; *w = im.w;
    img_free(&im);
    return r;
}

// One example, normalised, into out (3*S*S).
static int produce(BatchIter *bi, int i, float *out) {
    const BatchOpts *o = &bi->o;
    int S = o->size, h, w;
    const float *src;
    if (!o->cache && !o->augment) {   // the path VL image features share (bi_load_input)
        Image im;
        if (ds_load_image(bi->d, i, &im)) return -1;
        int r = bi_image_input(&im, S, o->resize, o->mean, o->std, out, &bi->src, &bi->src_cap);
        img_free(&im);
        return r;
    }
    if (o->cache) {
        uint8_t *c = bi->cache + (size_t)i * bi->per;
        if (!bi->cached[i]) {
            if (decode(bi, i, &h, &w)) return -1;
            tf_resize(bi->src, 3, h, w, bi->tmp, S, S, o->resize);
            for (long k = 0; k < bi->per; k++) {
                float v = bi->tmp[k] * 255.0f + 0.5f;
                c[k] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
            }
            bi->cached[i] = 1;
        }
        for (long k = 0; k < bi->per; k++) bi->tmp[k] = c[k] * (1.0f / 255.0f);
        src = bi->tmp;
        h = w = S;
    } else {
        if (decode(bi, i, &h, &w)) return -1;
        src = bi->src;
    }
    if (o->augment) {
        uint64_t r = nn_hash_combine(rng_stream_i(o->seed, "augment", (uint64_t)bi->epoch), (uint64_t)i);
        int y0, x0, ch, cw;
        tf_rrc_window(&r, h, w, o->scale[0], o->scale[1], o->ratio[0], o->ratio[1], &y0, &x0, &ch, &cw);
        tf_resized_crop(src, 3, h, w, y0, x0, ch, cw, out, S, S, o->resize);
        if (rng_uniform(&r) < o->flip_p) tf_hflip(out, 3, S, S);
    } else {   // cached: already S x S
        memcpy(out, src, sizeof(float) * bi->per);
    }
    tf_normalize(out, 3, S, S, o->mean, o->std);
    return 0;
}

// Fills slot s with batch k of the current epoch. Errors go into s->err.
static void fill(BatchIter *bi, int k, Slot *s) {
    int B = bi->o.batch, n = bi->d->n;
    int start = k * B, nv = n - start < B ? n - start : B;
    ld_err_capture(s->err, sizeof s->err);
    s->failed = 0;
    s->k = k;
    s->nvalid = nv;
    for (int j = 0; j < B; j++) {
        float *xo = s->x + (size_t)j * bi->per;
        if (j >= nv) {
            memset(xo, 0, sizeof(float) * bi->per);
            s->y[j] = -1;
            s->idx[j] = -1;
            continue;
        }
        int i = bi->perm[start + j];
        s->idx[j] = i;
        s->y[j] = bi->d->labels[i];
        if (produce(bi, i, xo)) {
            s->failed = 1;
            break;
        }
    }
    ld_err_capture(NULL, 0);
}

static void *worker(void *arg) {
    BatchIter *bi = arg;
    for (int k = bi->next; k < bi->nb; k++) {
        Slot *s = &bi->slot[k & 1];
        pthread_mutex_lock(&bi->mu);
        while (s->state != SLOT_EMPTY && !bi->stop) pthread_cond_wait(&bi->cv, &bi->mu);
        int stop = bi->stop;
        pthread_mutex_unlock(&bi->mu);
        if (stop) break;
        fill(bi, k, s);
        pthread_mutex_lock(&bi->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&bi->cv);
        pthread_mutex_unlock(&bi->mu);
        if (s->failed) break;
    }
    return NULL;
}

static void stop_worker(BatchIter *bi) {
    if (!bi->running) return;
    pthread_mutex_lock(&bi->mu);
    bi->stop = 1;
    pthread_cond_broadcast(&bi->cv);
    pthread_mutex_unlock(&bi->mu);
    pthread_join(bi->th, NULL);
    bi->running = 0;
    bi->stop = 0;
}

static void start_worker(BatchIter *bi) {
    bi->slot[0].state = bi->slot[1].state = SLOT_EMPTY;
    bi->stop = 0;
    if (pthread_create(&bi->th, NULL, worker, bi) == 0) bi->running = 1;
    else bi->o.prefetch = 0;   // no thread: produce synchronously
}

BatchIter *bi_new(const Dataset *d, const BatchOpts *o) {
    if (!d || !o) { nn_seterr("bi_new: no dataset or options"); return NULL; }
    if (o->batch <= 0) {
        nn_seterr("--batch must be a positive integer, got %d", o->batch);
        return NULL;
    }
    if (o->size <= 0 || o->size > 4096) {
        nn_seterr("image size %d is outside [1, 4096] (the model's input size)", o->size);
        return NULL;
    }
    if (d->n <= 0) {
        nn_seterr("bi_new: dataset %s%s%s is empty", d->task, d->task[0] ? "/" : "", d->split);
        return NULL;
    }
    if (o->drop_last && d->n < o->batch) {
        nn_seterr("bi_new: %d examples, fewer than one batch of %d with drop_last", d->n, o->batch);
        return NULL;
    }
    if (o->augment && !(o->scale[0] > 0 && o->scale[0] <= o->scale[1] && o->scale[1] <= 1 && o->ratio[0] > 0 &&
                        o->ratio[0] <= o->ratio[1])) {
        nn_seterr("bi_new: bad crop scale (%g, %g) or ratio (%g, %g)", o->scale[0], o->scale[1], o->ratio[0],
                  o->ratio[1]);
        return NULL;
    }
    for (int k = 0; k < 3; k++)
        if (!(o->std[k] > 0)) { nn_seterr("bi_new: std[%d] = %g must be > 0", k, o->std[k]); return NULL; }
    BatchIter *bi = nn_calloc(sizeof *bi);
    bi->d = d;
    bi->o = *o;
    bi->per = 3L * o->size * o->size;
    bi->nb = o->drop_last ? d->n / o->batch : (d->n + o->batch - 1) / o->batch;
    bi->perm = nn_malloc(sizeof(int) * d->n);
    for (int s = 0; s < 2; s++) {
        bi->slot[s].x = nn_malloc(sizeof(float) * bi->per * o->batch);
        bi->slot[s].y = nn_malloc(sizeof(int) * o->batch);
        bi->slot[s].idx = nn_malloc(sizeof(int) * o->batch);
    }
    bi->tmp = nn_malloc(sizeof(float) * bi->per);
    if (o->cache) {
        bi->cache = nn_malloc((size_t)d->n * bi->per);
        bi->cached = nn_calloc((size_t)d->n);
    }
    pthread_mutex_init(&bi->mu, NULL);
    pthread_cond_init(&bi->cv, NULL);
    bi->last_idx = nn_malloc(sizeof(int) * o->batch);
    for (int j = 0; j < o->batch; j++) bi->last_idx[j] = -1;
    bi->epoch = 0;
    make_perm(bi);
    if (bi->o.prefetch) start_worker(bi);
    return bi;
}

void bi_reset_epoch(BatchIter *bi, int epoch) {
    // Already positioned at the start of this epoch: keep the batches being prepared.
    if (epoch == bi->epoch && bi->next == 0 && !bi->failed) return;
    stop_worker(bi);
    bi->epoch = epoch;
    bi->next = 0;
    bi->failed = 0;
    make_perm(bi);
    if (bi->o.prefetch) start_worker(bi);
}

int bi_next(BatchIter *bi, float *x, int *y, int *nvalid) {
    if (bi->failed) {
        nn_seterr("bi_next: an earlier batch of epoch %d failed; call bi_reset_epoch", bi->epoch);
        return -1;
    }
    if (bi->next >= bi->nb) { if (nvalid) *nvalid = 0; return 0; }
    int k = bi->next;
    Slot *s = &bi->slot[k & 1];
    if (bi->o.prefetch) {
        pthread_mutex_lock(&bi->mu);
        while (s->state != SLOT_READY) pthread_cond_wait(&bi->cv, &bi->mu);
        pthread_mutex_unlock(&bi->mu);
    } else {
        fill(bi, k, s);
    }
    NN_ASSERT(s->k == k, "batch iterator: slot holds batch %d, expected %d", s->k, k);
    if (s->failed) {
        bi->failed = 1;
        nn_seterr("%s", s->err);
        stop_worker(bi);
        return -1;
    }
    int B = bi->o.batch;
    if (x) memcpy(x, s->x, sizeof(float) * bi->per * B);
    if (y) memcpy(y, s->y, sizeof(int) * B);
    if (nvalid) *nvalid = s->nvalid;
    memcpy(bi->last_idx, s->idx, sizeof(int) * B);   // before the slot goes back to the producer
    bi->next++;
    if (bi->o.prefetch) {
        pthread_mutex_lock(&bi->mu);
        s->state = SLOT_EMPTY;
        pthread_cond_broadcast(&bi->cv);
        pthread_mutex_unlock(&bi->mu);
    }
    return 1;
}

const int *bi_last_indices(const BatchIter *bi) { return bi->last_idx; }

int bi_num_batches(const BatchIter *bi) { return bi->nb; }
int bi_epoch(const BatchIter *bi) { return bi->epoch; }

void bi_free(BatchIter *bi) {
    if (!bi) return;
    stop_worker(bi);
    pthread_mutex_destroy(&bi->mu);
    pthread_cond_destroy(&bi->cv);
    for (int s = 0; s < 2; s++) {
        free(bi->slot[s].x);
        free(bi->slot[s].y);
        free(bi->slot[s].idx);
    }
    free(bi->perm);
    free(bi->last_idx);
    free(bi->tmp);
    free(bi->src);
    free(bi->cache);
    free(bi->cached);
    free(bi);
}
