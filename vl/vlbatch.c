// VL batches: example sets from loaders/vldata.h (prefixes, targets, tokens, padding), the image
// feature cache over the loaders' image preparation, batches for the model, and task -> metric.
#include "vl/vlbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaders/batch.h"
#include "loaders/ldutil.h"
#include "nn/util.h"
#include "loaders/transform.h"
#include "vl/metrics.h"

// ---------------------------------------------------------------- feature cache
struct VlFeatCache {
    int P, D;               // visual tokens per image, feature width
    int n, cap;             // rows
    float *feat;            // (cap, P, D)
    char **path;            // row -> image path
    int *slot;              // open addressing: hash slot -> row + 1 (0 empty)
    int nslot;
    double flops;
};

VlFeatCache *vlb_cache_new(int vis_tokens, int feat_dim) {
    VlFeatCache *fc = calloc(1, sizeof *fc);
    fc->P = vis_tokens;
    fc->D = feat_dim;
    fc->nslot = 1024;
    fc->slot = calloc(fc->nslot, sizeof(int));
    return fc;
}

void vlb_cache_free(VlFeatCache *fc) {
    if (!fc) return;
    for (int i = 0; i < fc->n; i++) free(fc->path[i]);
    free(fc->path);
    free(fc->feat);
    free(fc->slot);
    free(fc);
}

int vlb_cache_images(const VlFeatCache *fc) { return fc->n; }
double vlb_cache_flops(const VlFeatCache *fc) { return fc->flops; }
const float *vlb_cache_row(const VlFeatCache *fc, int row) { return fc->feat + (size_t)row * fc->P * fc->D; }

static int cache_find(const VlFeatCache *fc, const char *path) {
    for (uint64_t h = nn_hash_str(path) & (fc->nslot - 1);; h = (h + 1) & (fc->nslot - 1)) {
        int r = fc->slot[h];
        if (!r) return -1;
        if (!strcmp(fc->path[r - 1], path)) return r - 1;
    }
}

static void cache_rehash(VlFeatCache *fc) {
    free(fc->slot);
    fc->nslot *= 2;
    fc->slot = calloc(fc->nslot, sizeof(int));
    for (int r = 0; r < fc->n; r++) {
        uint64_t h = nn_hash_str(fc->path[r]) & (fc->nslot - 1);
        while (fc->slot[h]) h = (h + 1) & (fc->nslot - 1);
        fc->slot[h] = r + 1;
    }
}

// Adds a row for path (features filled later); returns its row.
static int cache_add(VlFeatCache *fc, const char *path) {
    int r = cache_find(fc, path);
    if (r >= 0) return r;
    if (2 * (fc->n + 1) > fc->nslot) cache_rehash(fc);
    if (fc->n == fc->cap) {
        fc->cap = fc->cap ? 2 * fc->cap : 256;
        fc->path = realloc(fc->path, sizeof(char *) * fc->cap);
        fc->feat = realloc(fc->feat, sizeof(float) * (size_t)fc->cap * fc->P * fc->D);
    }
    r = fc->n++;
    fc->path[r] = nn_strdup(path);
    uint64_t h = nn_hash_str(path) & (fc->nslot - 1);
    while (fc->slot[h]) h = (h + 1) & (fc->nslot - 1);
    fc->slot[h] = r + 1;
    return r;
}

// Runs the frozen image encoder over rows [from, fc->n), 64 images per forward, each image as
// the loaders prepare it without augmentation (bi_load_input). 0, or -1 with nn_err().
static int cache_fill(VlFeatCache *fc, int from, Vit *enc, const char *norm, int verbose) {
    float mean[3], std[3];
    if (tf_norm_preset(norm ? norm : "inception", mean, std)) {
        nn_seterr("unknown image normalisation '%s' (expected inception, imagenet or none)", norm);
        return -1;
    }
    int S = enc->cfg.img, NB = 64;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    graph_set_training(g, 0);
    float *tmp = NULL;
    size_t tcap = 0;
    double t0 = nn_now();
    for (int r0 = from; r0 < fc->n; r0 += NB) {
        int nb = fc->n - r0 < NB ? fc->n - r0 : NB;
        graph_reset(g);
        Tensor *x = graph_tensor(g, 4, (int[]){nb, 3, S, S});
        for (int i = 0; i < nb; i++)
            if (bi_load_input(fc->path[r0 + i], S, RESIZE_BILINEAR, mean, std, x->data + (size_t)i * 3 * S * S, &tmp,
                              &tcap)) {
                graph_free(g);
                free(tmp);
                return -1;
            }
        double f0 = graph_flops_fwd(g);
        Tensor *v = vl_visual_tokens(enc, g, x, fc->P, NULL);
        fc->flops += graph_flops_fwd(g) - f0;
        memcpy(fc->feat + (size_t)r0 * fc->P * fc->D, v->data, sizeof(float) * (size_t)nb * fc->P * fc->D);
        if (verbose && ((r0 - from) / NB % 10 == 9 || r0 + nb == fc->n))
            printf("  image features %d/%d (%.1f s)\n", r0 + nb - from, fc->n - from, nn_now() - t0), fflush(stdout);
    }
    graph_free(g);
    free(tmp);
    return 0;
}

// ---------------------------------------------------------------- texts
int vlb_parse_tasks(const char *list, unsigned *mask) {
    *mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list ? list : "");
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
        int k = -1;
        for (int t = 0; t < VL_NTASKS; t++)
            if (!strcmp(s, vld_task_name((VlTask)t))) k = t;
        if (k < 0) {
            nn_seterr("unknown VL task '%s' (expected a comma-separated list of vqa, gqa, nlvr, caption)", s);
            return -1;
        }
        *mask |= 1u << k;
    }
    if (!*mask) {
        nn_seterr("no VL task given (expected a comma-separated list of vqa, gqa, nlvr, caption)");
        return -1;
    }
    return 0;
}

char *vlb_encoder_text(VlTask t, const VlExample *e) {
    if (t == VL_CAPTION) return nn_strdup("caption:");
    return xprintf("%s: %s", vld_task_name(t), e->text ? e->text : "");
}

const char *vlb_majority_answer(const VlExample *e) {
    int best = -1, bc = 0;
    for (int i = 0; i < e->nanswers; i++) {
        int c = 0;
        for (int j = 0; j < e->nanswers; j++) c += !strcmp(e->answers[i], e->answers[j]);
        if (c > bc) bc = c, best = i;
    }
    return best >= 0 ? e->answers[best] : "";
}

const char *vlb_target_text(VlTask t, const VlExample *e, int ref) {
    if (t == VL_VQA) return e->mc_answer ? e->mc_answer : vlb_majority_answer(e);
    if (t == VL_NLVR2) return e->label ? "true" : "false";
    return ref >= 0 && e->nanswers > ref ? e->answers[ref] : "";
}

// ---------------------------------------------------------------- example sets
void vlb_free_set(VlSet *s) {
    free(s->enc);
    free(s->tgt);
    free(s->img);
    free(s->src);
    if (s->d && s->owns_d) vld_free(s->d);
    memset(s, 0, sizeof *s);
}

void vlb_free_sets(VlSet sets[VL_NTASKS]) {
    for (int t = 0; t < VL_NTASKS; t++) vlb_free_set(&sets[t]);
}

static int build_set(VlSet *s, VlTask task, VlData *d, int expand_captions, int max_examples, const Tokenizer *tok,
                     const VlConfig *c, VlFeatCache *fc, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->task = task;
    s->d = d;
    s->owns_d = 1;
    s->fc = fc;
    s->nimg = task == VL_NLVR2 ? 2 : 1;
    // (source example, which caption) pairs
    int cap = 0, n = 0;
    int *pairs = NULL;
    for (int i = 0; i < d->n; i++) {
        int k = (task == VL_CAPTION && expand_captions) ? d->ex[i].nanswers : 1;
        if (task == VL_CAPTION && d->ex[i].nanswers < 1) {
            nn_seterr("%s: example %d (%s) has no caption", d->file, i, d->ex[i].qid ? d->ex[i].qid : "?");
            free(pairs);
            return -1;
        }
        for (int j = 0; j < k; j++) {
            if (n == cap) pairs = realloc(pairs, sizeof(int) * 2 * (cap = cap ? 2 * cap : 1024));
            pairs[2 * n] = i, pairs[2 * n + 1] = j;
            n++;
        }
    }
    int *order = nn_malloc(sizeof(int) * (n ? n : 1));
    for (int i = 0; i < n; i++) order[i] = i;
    uint64_t rs = seed * 0x9E3779B97F4A7C15ULL + 0x51ed + (uint64_t)task;
    if (max_examples > 0 && max_examples < n) {
        ld_shuffle(order, n, &rs);
        n = max_examples;
        // keep the file order among the chosen (stable, readable predictions)
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && order[j - 1] > order[j]; j--) {
                int t = order[j];
                order[j] = order[j - 1], order[j - 1] = t;
            }
    }
    int E = c->max_enc_len, T = c->max_dec_len;
    int *enc = nn_malloc(sizeof(int) * (size_t)(n ? n : 1) * E), *tgt = nn_malloc(sizeof(int) * (size_t)(n ? n : 1) * T);
    s->img = nn_malloc(sizeof(int) * 2 * (n ? n : 1));
    s->src = nn_malloc(sizeof(int) * (n ? n : 1));
    int el = 1, dl = 1;
    for (int q = 0; q < n; q++) {
        int i = pairs[2 * order[q]], j = pairs[2 * order[q] + 1];
        const VlExample *e = &d->ex[i];
        s->src[q] = i;
        char *text = vlb_encoder_text(task, e);
        int L = tok_encode_pad(tok, text, 1, enc + (size_t)q * E, E);
        free(text);
        int A = tok_encode_pad(tok, vlb_target_text(task, e, j), 1, tgt + (size_t)q * T, T);
        if (L < 0 || A < 0) {
            free(pairs), free(order), free(enc), free(tgt);
            return -1;
        }
        if (L > el) el = L > E ? E : L;
        if (A > dl) dl = A > T ? T : A;
        for (int k = 0; k < 2; k++) {
            const char *p = k < s->nimg ? e->image[k] : NULL;
            if (k < s->nimg && !p) {
                nn_seterr("%s: example %d (%s) has no image path (was the image folder found?)", d->file, i,
                          e->qid ? e->qid : "?");
                free(pairs), free(order), free(enc), free(tgt);
                return -1;
            }
            if (p) {   // one row per file however its path is spelt (vqav2/../coco/x.png = coco/x.png)
                char *rp = realpath(p, NULL);
                s->img[2 * q + k] = cache_add(fc, rp ? rp : p);
                free(rp);
            } else {
                s->img[2 * q + k] = -1;
            }
        }
    }
    // compact to the set's lengths
    s->enc = nn_malloc(sizeof(int) * (size_t)(n ? n : 1) * el);
    s->tgt = nn_malloc(sizeof(int) * (size_t)(n ? n : 1) * dl);
    for (int q = 0; q < n; q++) {
        memcpy(s->enc + (size_t)q * el, enc + (size_t)q * E, sizeof(int) * el);
        memcpy(s->tgt + (size_t)q * dl, tgt + (size_t)q * T, sizeof(int) * dl);
    }
    s->n = n;
    s->enc_len = el;
    s->dec_len = dl;
    int lim = c->max_dec_len - 1;
    s->ans_len = task == VL_CAPTION ? lim : (8 < lim ? 8 : lim);
    free(pairs), free(order), free(enc), free(tgt);
    return 0;
}

int vlb_load_split(const VlLoadOpts *o, const char *split, const Tokenizer *tok, const VlConfig *c, Vit *enc,
                   VlFeatCache *fc, uint64_t seed, VlSet sets[VL_NTASKS]) {
    memset(sets, 0, sizeof(VlSet) * VL_NTASKS);
    int from = fc->n;
    int expand = !strcmp(split, "train") || !strcmp(split, "pretrain");
    for (int t = 0; t < VL_NTASKS; t++) {
        if (!(o->tasks & (1u << t))) continue;
        VlData *d = vld_open_task(o->root, (VlTask)t, split, o->skip_bad);
        if (!d) goto bad;
        if (d->n == 0) {
            nn_seterr("%s: no %s examples in split %s", d->file, vld_task_name((VlTask)t), split);
            vld_free(d);
            goto bad;
        }
        if (build_set(&sets[t], (VlTask)t, d, expand, o->max_examples, tok, c, fc, seed)) {
            vld_free(d);
            sets[t].d = NULL;
            goto bad;
        }
        if (o->verbose)
            printf("  %-7s %-8s %5d examples from %s (%d records, %d skipped), encoder %d / decoder %d tokens\n",
                   vld_task_name((VlTask)t), split, sets[t].n, d->file, d->n, d->skipped, sets[t].enc_len,
                   sets[t].dec_len);
    }
    if (from < fc->n && cache_fill(fc, from, enc, o->norm, o->verbose)) goto bad;
    return 0;
bad:
    vlb_free_sets(sets);
    return -1;
}

// ---------------------------------------------------------------- batches
VlBatch vlb_batch(Graph *g, const VlSet *s, const int *idx, int B, int *enc, int *tgt) {
    const VlFeatCache *fc = s->fc;
    int P = fc->P, D = fc->D;
    for (int i = 0; i < B; i++) {
        memcpy(enc + (size_t)i * s->enc_len, s->enc + (size_t)idx[i] * s->enc_len, sizeof(int) * s->enc_len);
        if (tgt) memcpy(tgt + (size_t)i * s->dec_len, s->tgt + (size_t)idx[i] * s->dec_len, sizeof(int) * s->dec_len);
    }
    Tensor *v = graph_tensor3(g, B, s->nimg * P, D);
    for (int i = 0; i < B; i++)
        for (int k = 0; k < s->nimg; k++)
            memcpy(v->data + ((size_t)i * s->nimg + k) * P * D, fc->feat + (size_t)s->img[2 * idx[i] + k] * P * D,
                   sizeof(float) * P * D);
    VlBatch b = {.B = B, .enc_len = s->enc_len, .enc_ids = enc, .vis = v, .dec_len = s->dec_len, .tgt_ids = tgt};
    return b;
}

// ---------------------------------------------------------------- pretraining's denoising
int vlb_denoise_set(const VlSet *cs, const Tokenizer *tok, const VlConfig *c, float mask, uint64_t seed, VlSet *out) {
    memset(out, 0, sizeof *out);
    const VlData *d = cs->d;
    int n = 0;
    for (int i = 0; i < d->n; i++) n += d->ex[i].nanswers;
    int E = c->max_enc_len, T = c->max_dec_len, el = 1, dl = 1;
    int *enc = nn_malloc(sizeof(int) * (size_t)(n ? n : 1) * E), *tgt = nn_malloc(sizeof(int) * (size_t)(n ? n : 1) * T);
    out->img = nn_malloc(sizeof(int) * 2 * (n ? n : 1));
    out->src = nn_malloc(sizeof(int) * (n ? n : 1));
    // image rows of each source example, from the caption set
    int *row = nn_malloc(sizeof(int) * (d->n ? d->n : 1));
    for (int i = 0; i < d->n; i++) row[i] = -1;
    for (int q = 0; q < cs->n; q++) row[cs->src[q]] = cs->img[2 * q];
    uint64_t rs = seed * 0x9E3779B97F4A7C15ULL + 0xd3;
    int q = 0;
    for (int i = 0; i < d->n; i++) {
        if (row[i] < 0) continue;
        for (int j = 0; j < d->ex[i].nanswers; j++) {
            const char *cap = d->ex[i].answers[j];
            size_t L = strlen(cap);
            char *m = nn_malloc(L + 16), *hid = nn_malloc(L + 4);
            strcpy(m, "denoise:");
            size_t o = strlen(m), h = 0;
            int words = 0, masked = 0;
            for (const char *p = cap; *p;) {
                while (*p == ' ') p++;
                if (!*p) break;
                const char *w = p;
                while (*p && *p != ' ') p++;
                int hide = rng_uniform(&rs) < mask;
                words++;
                m[o++] = ' ';
                if (hide) {
                    m[o++] = '_', masked++;
                    if (h) hid[h++] = ' ';
                    memcpy(hid + h, w, p - w), h += p - w;
                } else {
                    memcpy(m + o, w, p - w), o += p - w;
                }
            }
            m[o] = 0;
            hid[h] = 0;
            if (!masked && words) {   // hide the first word at least
                char *u = strchr(m + 8, ' ') + 1, *e = u;
                while (*e && *e != ' ') e++;
                memcpy(hid, u, e - u), hid[e - u] = 0;
                memmove(u + 1, e, strlen(e) + 1);
                *u = '_';
            }
            int a = tok_encode_pad(tok, m, 1, enc + (size_t)q * E, E);
            int b = tok_encode_pad(tok, hid, 1, tgt + (size_t)q * T, T);
            free(m), free(hid);
            if (a < 0 || b < 0) {
                free(enc), free(tgt), free(row);
                vlb_free_set(out);
                return -1;
            }
            if (a > el) el = a > E ? E : a;
            if (b > dl) dl = b > T ? T : b;
            out->img[2 * q] = row[i], out->img[2 * q + 1] = -1;
            out->src[q] = i;
            q++;
        }
    }
    out->task = VL_CAPTION;
    out->n = q;
    out->enc_len = el;
    out->dec_len = dl;
    out->nimg = 1;
    out->d = cs->d;
    out->owns_d = 0;
    out->fc = cs->fc;
    out->ans_len = cs->ans_len;
    out->enc = nn_malloc(sizeof(int) * (size_t)(q ? q : 1) * el);
    out->tgt = nn_malloc(sizeof(int) * (size_t)(q ? q : 1) * dl);
    for (int k = 0; k < q; k++) {
        memcpy(out->enc + (size_t)k * el, enc + (size_t)k * E, sizeof(int) * el);
        memcpy(out->tgt + (size_t)k * dl, tgt + (size_t)k * T, sizeof(int) * dl);
    }
    free(enc), free(tgt), free(row);
    return 0;
}

// ---------------------------------------------------------------- tokenizer corpus
static int corpus_add(const char *root, VlTask t, const char *split, char ***tx, int *n, int *cap) {
    VlData *d = vld_open_task(root, t, split, 0);
    if (!d) return -1;
    for (int i = 0; i < d->n; i++) {
        const VlExample *e = &d->ex[i];
        int need = 2 + e->nanswers;
        if (*n + need > *cap) *tx = realloc(*tx, sizeof(char *) * (*cap = 2 * (*cap + need)));
        if (e->text) (*tx)[(*n)++] = vlb_encoder_text(t, e);
        for (int j = 0; j < e->nanswers; j++) (*tx)[(*n)++] = nn_strdup(e->answers[j]);
    }
    vld_free(d);
    return 0;
}

int vlb_corpus(const char *root, char ***texts) {
    static const char *const fixed[] = {"vqa:", "gqa:", "nlvr:", "caption:", "denoise:", "true", "false"};
    int n = 0, cap = 64;
    char **tx = nn_malloc(sizeof(char *) * cap);
    for (int i = 0; i < 7; i++) tx[n++] = nn_strdup(fixed[i]);
    int rc = corpus_add(root, VL_CAPTION, "pretrain", &tx, &n, &cap);
    for (int t = 0; t < VL_NTASKS && !rc; t++) rc = corpus_add(root, (VlTask)t, "train", &tx, &n, &cap);
    if (rc) {
        for (int i = 0; i < n; i++) free(tx[i]);
        free(tx);
        return -1;
    }
    *texts = tx;
    return n;
}

// ---------------------------------------------------------------- task -> metric
const char *vlb_metric_name(VlTask t) {
    static const char *const metric[VL_NTASKS] = {"vqa_accuracy", "exact_match", "accuracy", "cider"};
    return t >= 0 && t < VL_NTASKS ? metric[t] : "?";
}

int vlb_score(const VlSet *s, const char *const *hyp, double *score, double *bleu4) {
    return vlb_score_each(s, hyp, score, bleu4, NULL);
}

int vlb_score_each(const VlSet *s, const char *const *hyp, double *score, double *bleu4, float *each) {
    *score = 0;
    if (bleu4) *bleu4 = 0;
    if (s->n <= 0) return 0;
    if (s->task == VL_CAPTION) {
        const char *const **refs = nn_malloc(sizeof(char **) * s->n);
        int *nr = nn_malloc(sizeof(int) * s->n);
        for (int i = 0; i < s->n; i++) {
            const VlExample *e = &s->d->ex[s->src[i]];
            refs[i] = (const char *const *)e->answers;
            nr[i] = e->nanswers;
        }
        CapScores cs;
        double *per = each ? nn_malloc(sizeof(double) * s->n) : NULL;
        int rc = cap_score_images(hyp, refs, nr, s->n, &cs, per);
        for (int i = 0; per && !rc && i < s->n; i++) each[i] = (float)per[i];
        free(refs), free(nr), free(per);
        if (rc) return -1;
        *score = 100 * cs.cider_d;
        if (bleu4) *bleu4 = 100 * cs.bleu[3];
        return 0;
    }
    double acc = 0;
    for (int i = 0; i < s->n; i++) {
        const VlExample *e = &s->d->ex[s->src[i]];
        double a;
        if (s->task == VL_VQA) {
            a = e->nanswers > 0 ? vqa_accuracy(hyp[i], (const char *const *)e->answers, e->nanswers) : 0;
            a = a > 0 ? a : 0;
        } else if (s->task == VL_GQA) {
            a = e->nanswers > 0 ? gqa_exact_match(hyp[i], e->answers[0]) : 0;
        } else {
            a = nlvr2_correct(hyp[i], e->label ? "true" : "false");
        }
        acc += a;
        if (each) each[i] = (float)a;
    }
    *score = 100 * acc / s->n;
    return 0;
}
