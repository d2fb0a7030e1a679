// ViT checkpoints: timm- and Hugging Face-named safetensors, Google's .npz, position-embedding
// resampling, and saving with timm names and the config in __metadata__.
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"
#include "vit/vit.h"

// ---------------------------------------------------------------- config JSON
// The integer fields: JSON key, place, and bounds far above any real ViT that keep every size
// product (parameter shapes are int) from overflowing and every divisor positive.
static const struct {
    const char *key;
    size_t off;
    int lo, hi, variant;   // variant: written only when non-zero
} g_fields[] = {
    {"img_size", offsetof(VitConfig, img), 1, 1 << 16, 0},
    {"patch_size", offsetof(VitConfig, patch), 1, 4096, 0},
    {"in_chans", offsetof(VitConfig, in_ch), 1, 64, 0},
    {"embed_dim", offsetof(VitConfig, dim), 1, 1 << 16, 0},
    {"depth", offsetof(VitConfig, depth), 1, 4096, 0},
    {"num_heads", offsetof(VitConfig, heads), 1, 1 << 16, 0},
    {"mlp_hidden", offsetof(VitConfig, mlp), 1, 1 << 18, 0},
    {"num_classes", offsetof(VitConfig, classes), 0, 1 << 22, 0},
    {"layerscale", offsetof(VitConfig, layerscale), 0, 1, 1},
    {"reg_tokens", offsetof(VitConfig, reg_tokens), 0, 4096, 1},
    {"no_embed_class", offsetof(VitConfig, no_embed_class), 0, 1, 1},
    {"pool_avg", offsetof(VitConfig, pool_avg), 0, 1, 1},
    {"pre_logits", offsetof(VitConfig, pre_logits), 0, 1, 1},
};
#define NFIELDS (int)(sizeof g_fields / sizeof g_fields[0])
#define FIELD(c, i) (*(int *)((char *)(c) + g_fields[i].off))

char *vit_config_json(const VitConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    for (int i = 0; i < NFIELDS; i++)
        if (!g_fields[i].variant || FIELD(c, i)) cJSON_AddNumberToObject(o, g_fields[i].key, FIELD(c, i));
    cJSON_AddNumberToObject(o, "ln_eps", c->ln_eps);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int vit_config_check(const VitConfig *c, const char *what) {
    for (int i = 0; i < NFIELDS; i++) {
        int x = FIELD(c, i);
        if (x < g_fields[i].lo || x > g_fields[i].hi) {
            nn_seterr("%s: %s is %d, expected %d .. %d", what, g_fields[i].key, x, g_fields[i].lo, g_fields[i].hi);
            return -1;
        }
    }
    if (c->img % c->patch) {
        nn_seterr("%s: image size %d is not a multiple of the patch size %d", what, c->img, c->patch);
        return -1;
    }
    if (c->dim % c->heads) {
        nn_seterr("%s: embed_dim %d is not divisible by %d heads (hint: pass --heads)", what, c->dim, c->heads);
        return -1;
    }
    long long D = c->dim, T = vit_tokens(c), big = 0x7fffffffLL;
    long long prods[] = {T * D, 3 * D * D, D * c->mlp, D * c->classes, D * c->in_ch * c->patch * c->patch,
                         T * T * c->heads};
    for (size_t i = 0; i < sizeof prods / sizeof prods[0]; i++)
        if (prods[i] > big) {
            nn_seterr("%s: sizes too large (embed_dim %d, %lld tokens, mlp_hidden %d, %d classes, patch %d): a tensor "
                      "would hold %lld > %lld elements",
                      what, c->dim, T, c->mlp, c->classes, c->patch, prods[i], big);
            return -1;
        }
    return 0;
}

// Every integer field present must be a whole number in its bounds (a negative, zero or huge
// value would divide by zero or overflow a size later).
int vit_config_from_json(const char *json, VitConfig *c) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        nn_seterr("config metadata is not a JSON object: %.80s", json);
        return -1;
    }
    for (int i = 0; i < NFIELDS; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, g_fields[i].key);
        if (!x) continue;
        double d = cJSON_IsBool(x) ? cJSON_IsTrue(x) : cJSON_IsNumber(x) ? x->valuedouble : NAN;
        if (!nn_is_whole(d, g_fields[i].lo, g_fields[i].hi)) {
            char *t = cJSON_PrintUnformatted(x);
            nn_seterr("config metadata: '%s' is %.40s, expected a whole number in %d .. %d", g_fields[i].key,
                      t ? t : "?", g_fields[i].lo, g_fields[i].hi);
            free(t);
            cJSON_Delete(o);
            return -1;
        }
        FIELD(c, i) = (int)d;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "ln_eps");
    if (e && !(cJSON_IsNumber(e) && e->valuedouble > 0 && e->valuedouble < 1)) {
        nn_seterr("config metadata: 'ln_eps' is not a number in (0, 1)");
        cJSON_Delete(o);
        return -1;
    }
    if (e) c->ln_eps = (float)e->valuedouble;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (cJSON_IsString(n)) snprintf(c->name, sizeof c->name, "%s", n->valuestring);
    cJSON_Delete(o);
    return 0;
}

// ---------------------------------------------------------------- bicubic resampling
static double cubic_w(double x) {   // PyTorch's bicubic kernel, A = -0.75
    const double A = -0.75;
    x = fabs(x);
    if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0;
}

void vit_resample_pos(const float *src, int g0, float *dst, int g1, int D) {
    vit_resample_pos_n(src, g0, dst, g1, D, 1);
}

void vit_resample_pos_n(const float *src, int g0, float *dst, int g1, int D, int npre) {
    memcpy(dst, src, sizeof(float) * D * npre);   // class and register tokens
    const float *s = src + (long)D * npre;
    float *d = dst + (long)D * npre;
    double scale = (double)g0 / g1;
    for (int oy = 0; oy < g1; oy++)
        for (int ox = 0; ox < g1; ox++) {
            double sy = (oy + 0.5) * scale - 0.5, sx = (ox + 0.5) * scale - 0.5;
            int iy = (int)floor(sy), ix = (int)floor(sx);
            double wy[4], wx[4];
            for (int k = 0; k < 4; k++) {
                wy[k] = cubic_w(sy - (iy - 1 + k));
                wx[k] = cubic_w(sx - (ix - 1 + k));
            }
            for (int c = 0; c < D; c++) {
                double acc = 0;
                for (int ky = 0; ky < 4; ky++) {
                    int yy = iy - 1 + ky;
                    yy = yy < 0 ? 0 : yy >= g0 ? g0 - 1 : yy;
                    for (int kx = 0; kx < 4; kx++) {
                        int xx = ix - 1 + kx;
                        xx = xx < 0 ? 0 : xx >= g0 ? g0 - 1 : xx;
                        acc += wy[ky] * wx[kx] * s[((long)yy * g0 + xx) * D + c];
                    }
                }
                d[((long)oy * g1 + ox) * D + c] = (float)acc;
            }
        }
}

// ---------------------------------------------------------------- name mapping
typedef enum { FMT_TIMM, FMT_HF, FMT_NPZ } Fmt;

typedef struct {
    StFile f;
    Fmt fmt;
    char prefix[32];      // "vit." for HF, "opt/target/" for npz, or ""
    unsigned char *used;  // per entry of f: read into the model (strict loading)
} Src;

static const StEntry *src_find(const Src *s, const char *name) {
    char full[400];
    snprintf(full, sizeof full, "%s%s", s->prefix, name);
    const StEntry *e = st_find(&s->f, full);
    // Hugging Face keeps the classifier outside the "vit." prefix
    if (!e && s->fmt == FMT_HF && !strncmp(name, "classifier.", 11)) e = st_find(&s->f, name);
    return e;
}

static int count_blocks(const Src *s) {
    char nm[256];
    int n = 0;
    for (;; n++) {
        if (s->fmt == FMT_TIMM) snprintf(nm, sizeof nm, "blocks.%d.attn.qkv.weight", n);
        else if (s->fmt == FMT_HF) snprintf(nm, sizeof nm, "encoder.layer.%d.attention.attention.query.weight", n);
        else snprintf(nm, sizeof nm, "Transformer/encoderblock_%d/LayerNorm_0/scale", n);
        if (!src_find(s, nm)) return n;
    }
}

static const char *patch_name(Fmt f) {
    return f == FMT_TIMM ? "patch_embed.proj.weight"
           : f == FMT_HF ? "embeddings.patch_embeddings.projection.weight"
                         : "embedding/kernel";
}
static const char *pos_name(Fmt f) {
    return f == FMT_TIMM ? "pos_embed" : f == FMT_HF ? "embeddings.position_embeddings"
                                                     : "Transformer/posembed_input/pos_embedding";
}
static const char *head_name(Fmt f) {
    return f == FMT_TIMM ? "head.weight" : f == FMT_HF ? "classifier.weight" : "head/kernel";
}
// pre_logits (Linear + tanh on the class token): timm's, Hugging Face's ViTModel pooler, Google's.
static const char *pre_name(Fmt f, int bias) {
    if (f == FMT_TIMM) return bias ? "pre_logits.fc.bias" : "pre_logits.fc.weight";
    if (f == FMT_HF) return bias ? "pooler.dense.bias" : "pooler.dense.weight";
    return bias ? "pre_logits/bias" : "pre_logits/kernel";
}

static int detect(Src *s) {
    static const char *pre[] = {"", "vit.", "opt/target/"};
    for (int fmt = 0; fmt < 3; fmt++)
        for (int p = 0; p < 3; p++) {
            snprintf(s->prefix, sizeof s->prefix, "%s", pre[p]);
            s->fmt = (Fmt)fmt;
            if (src_find(s, patch_name(s->fmt))) return 0;
        }
    nn_seterr("%s: no patch embedding found (expected 'patch_embed.proj.weight' (timm), "
              "'[vit.]embeddings.patch_embeddings.projection.weight' (Hugging Face) or "
              "'[opt/target/]embedding/kernel' (Google .npz)); found %d tensors, first '%s'",
              s->f.path, s->f.n, s->f.n ? s->f.e[0].name : "(none)");
    return -1;
}

static void shape_str(char *dst, size_t n, int ndim, const long *shape) {
    size_t k = snprintf(dst, n, "(");
    for (int i = 0; i < ndim && k < n; i++) k += snprintf(dst + k, n - k, i ? ", %ld" : "%ld", shape[i]);
    if (k < n) snprintf(dst + k, n - k, ndim == 1 ? ",)" : ")");
}

// Reads a tensor of exactly the given shape (dimension by dimension: a transposed tensor with the
// same element count is a different tensor) into dst and marks it used; 0, or -1 with nn_err()
// (a missing tensor is an error).
static int read_t(const Src *s, const char *name, int ndim, const long *shape, float *dst) {
    const StEntry *e = src_find(s, name);
    if (!e) {
        nn_seterr("%s: tensor '%s%s' is missing", s->f.path, s->prefix, name);
        return -1;
    }
    int same = e->ndim == ndim;
    for (int i = 0; i < ndim && same; i++) same = e->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, e->ndim, e->shape);
        nn_seterr("%s: tensor '%s' has shape %s, expected %s", s->f.path, e->name, got, want);
        return -1;
    }
    if (st_read_f32(&s->f, e, dst)) return -1;
    s->used[e - s->f.e] = 1;
    return 0;
}
#define SHAPE(...) (int)(sizeof((long[]){__VA_ARGS__}) / sizeof(long)), (long[]){__VA_ARGS__}

// dst (rows, cols) = transpose of src (cols, rows)
static void transpose(const float *src, float *dst, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(long)r * cols + c] = src[(long)c * rows + r];
}

static int isqrt_exact(long n) {   // g with g*g == n, g >= 1, else -1
    if (n < 1) return -1;
    long g = lround(sqrt((double)n));
    return g * g == n ? (int)g : -1;
}

// The config from the tensor shapes (and heads from __metadata__); every size checked before it
// divides anything or sizes an allocation.
static int infer_config(Src *s, VitConfig *c, int heads, int meta_no_embed_class) {
    const char *path = s->f.path;
    const StEntry *pe = src_find(s, patch_name(s->fmt));
    if (pe->ndim != 4) {
        nn_seterr("%s: patch embedding '%s' has %d dimensions, expected 4", path, pe->name, pe->ndim);
        return -1;
    }
    long dim, in_ch, patch, patch2;
    if (s->fmt == FMT_NPZ) dim = pe->shape[3], in_ch = pe->shape[2], patch = pe->shape[0], patch2 = pe->shape[1];
    else dim = pe->shape[0], in_ch = pe->shape[1], patch = pe->shape[2], patch2 = pe->shape[3];
    if (dim < 1 || dim > 1 << 16 || in_ch < 1 || in_ch > 64 || patch < 1 || patch > 4096 || patch2 != patch) {
        char sh[128];
        shape_str(sh, sizeof sh, pe->ndim, pe->shape);
        nn_seterr("%s: patch embedding '%s' has shape %s, expected %s with embed_dim 1 .. 65536, channels 1 .. 64 "
                  "and a square patch of 1 .. 4096",
                  path, pe->name, sh, s->fmt == FMT_NPZ ? "(P, P, C, D)" : "(D, C, P, P)");
        return -1;
    }
    c->dim = (int)dim, c->in_ch = (int)in_ch, c->patch = (int)patch;
    const int D = c->dim;
    // variants (timm names; pre_logits in every layout)
    c->layerscale = s->fmt == FMT_TIMM && src_find(s, "blocks.0.ls1.gamma");
    c->pool_avg = s->fmt == FMT_TIMM && src_find(s, "fc_norm.weight") && !src_find(s, "norm.weight");
    c->pre_logits = src_find(s, pre_name(s->fmt, 0)) != NULL;
    c->reg_tokens = 0;
    const StEntry *reg = s->fmt == FMT_TIMM ? src_find(s, "reg_token") : NULL;
    if (reg) {
        if (reg->ndim != 3 || reg->shape[0] != 1 || reg->shape[2] != D || reg->shape[1] < 1 || reg->shape[1] > 4096) {
            char sh[128];
            shape_str(sh, sizeof sh, reg->ndim, reg->shape);
            nn_seterr("%s: tensor 'reg_token' has shape %s, expected (1, R, %d) with 1 .. 4096 register tokens", path,
                      sh, D);
            return -1;
        }
        c->reg_tokens = (int)reg->shape[1];
    }
    const StEntry *pos = src_find(s, pos_name(s->fmt));
    if (!pos) {
        nn_seterr("%s: position embedding '%s%s' is missing", path, s->prefix, pos_name(s->fmt));
        return -1;
    }
    if (pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != D) {
        char sh[128];
        shape_str(sh, sizeof sh, pos->ndim, pos->shape);
        nn_seterr("%s: position embedding '%s' has shape %s, expected (1, tokens, %d)", path, pos->name, sh, D);
        return -1;
    }
    // Rows: prefix (class + registers) + grid, or the grid alone (no_embed_class: DeiT-III, and
    // timm's register models). __metadata__ says which when present; else the row count does,
    // preferring no_embed_class with registers (as timm's register models are).
    long ntok = pos->shape[1];
    int npre = 1 + c->reg_tokens, g_cls = isqrt_exact(ntok - npre), g_no = isqrt_exact(ntok);
    if (meta_no_embed_class >= 0) c->no_embed_class = meta_no_embed_class;
    else c->no_embed_class = g_no > 0 && (g_cls < 0 || c->reg_tokens > 0);
    int g = c->no_embed_class ? g_no : g_cls;
    if (g < 1 || g > 65536 / c->patch) {
        nn_seterr("%s: position embedding '%s' holds %ld tokens, expected a square grid of patches%s (%d prefix "
                  "token%s: class%s)",
                  path, pos->name, ntok, c->no_embed_class ? "" : " plus the prefix tokens", npre, npre > 1 ? "s" : "",
                  c->reg_tokens ? " and registers" : "");
        return -1;
    }
    c->img = g * c->patch;
    c->depth = count_blocks(s);
    if (c->depth == 0) {
        nn_seterr("%s: no transformer blocks found", path);
        return -1;
    }
    char nm[256];
    if (s->fmt == FMT_TIMM) snprintf(nm, sizeof nm, "blocks.0.mlp.fc1.weight");
    else if (s->fmt == FMT_HF) snprintf(nm, sizeof nm, "encoder.layer.0.intermediate.dense.weight");
    else snprintf(nm, sizeof nm, "Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel");
    const StEntry *fc1 = src_find(s, nm);
    if (!fc1) {
        nn_seterr("%s: tensor '%s%s' is missing", path, s->prefix, nm);
        return -1;
    }
    // the hidden width from the dimension that is not D (shapes are checked in full when read)
    long mlp = fc1->ndim == 2 ? fc1->shape[s->fmt == FMT_NPZ ? 1 : 0] : -1;
    const StEntry *he = src_find(s, head_name(s->fmt));
    long k = he && he->ndim == 2 ? he->shape[s->fmt == FMT_NPZ ? 1 : 0] : he ? -1 : 0;
    const StEntry *bad = mlp < 1 || mlp > 1 << 18 ? fc1 : k < 0 || k > 1 << 22 ? he : NULL;
    if (bad) {
        char sh[128];
        shape_str(sh, sizeof sh, bad->ndim, bad->shape);
        nn_seterr("%s: tensor '%s' has shape %s, expected %s with %s", path, bad->name, sh,
                  s->fmt == FMT_NPZ ? "(D, out)" : "(out, D)",
                  bad == fc1 ? "an MLP width of 1 .. 262144" : "0 .. 4194304 classes");
        return -1;
    }
    c->mlp = (int)mlp;
    c->classes = (int)k;
    if (s->fmt == FMT_NPZ) {   // query kernel (D, H, hd) carries the head count
        const StEntry *q = src_find(s, "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel");
        if (q && q->ndim == 3 && q->shape[1] >= 1 && q->shape[1] <= D) c->heads = (int)q->shape[1];
    }
    if (heads > 0) c->heads = heads;
    if (c->heads <= 0) c->heads = c->dim >= 64 ? c->dim / 64 : 1;
    c->ln_eps = 1e-6f;
    if (!c->name[0]) snprintf(c->name, sizeof c->name, "vit-d%d-l%d-p%d", c->dim, c->depth, c->patch);
    return vit_config_check(c, path);
}

#define TRY(x)             \
    do {                   \
        if (!(x)) goto fail; \
    } while (0)

// Reads name (formatted with layer l) of the given shape into dst, as stored.
static int take(Src *s, float *dst, const char *name_fmt, int l, int ndim, const long *shape) {
    char nm[320];
    snprintf(nm, sizeof nm, name_fmt, l);
    return read_t(s, nm, ndim, shape, dst);
}
// Reads a (cols, rows)-shaped kernel (in, out) as given, transposed into dst (rows, cols).
static int take_t(Src *s, float *dst, const char *name_fmt, int l, int rows, int cols, int ndim, const long *shape) {
    float *t = nn_malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    int rc = take(s, t, name_fmt, l, ndim, shape);
    if (!rc) transpose(t, dst, rows, cols);
    free(t);
    return rc;
}

static int load_block(Src *s, Vit *v, int l) {
    const VitConfig *c = &v->cfg;
    VitBlock *b = &v->blocks[l];
    const long D = c->dim, M = c->mlp, H = c->heads, hd = c->dim / c->heads;
#define T_(dst, nm, ...) TRY(take(s, (dst)->data, nm, l, SHAPE(__VA_ARGS__)) == 0)
    if (s->fmt == FMT_TIMM) {
        T_(b->norm1_w, "blocks.%d.norm1.weight", D);
        T_(b->norm1_b, "blocks.%d.norm1.bias", D);
        T_(b->qkv_w, "blocks.%d.attn.qkv.weight", 3 * D, D);
        T_(b->qkv_b, "blocks.%d.attn.qkv.bias", 3 * D);
        T_(b->proj_w, "blocks.%d.attn.proj.weight", D, D);
        T_(b->proj_b, "blocks.%d.attn.proj.bias", D);
        T_(b->norm2_w, "blocks.%d.norm2.weight", D);
        T_(b->norm2_b, "blocks.%d.norm2.bias", D);
        T_(b->fc1_w, "blocks.%d.mlp.fc1.weight", M, D);
        T_(b->fc1_b, "blocks.%d.mlp.fc1.bias", M);
        T_(b->fc2_w, "blocks.%d.mlp.fc2.weight", D, M);
        T_(b->fc2_b, "blocks.%d.mlp.fc2.bias", D);
        if (c->layerscale) {
            T_(b->ls1, "blocks.%d.ls1.gamma", D);
            T_(b->ls2, "blocks.%d.ls2.gamma", D);
        }
    } else if (s->fmt == FMT_HF) {
        static const char *qkv[3] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            char f[160];
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.attention.%s.weight", qkv[j]);
            TRY(take(s, b->qkv_w->data + j * D * D, f, l, SHAPE(D, D)) == 0);
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.attention.%s.bias", qkv[j]);
            TRY(take(s, b->qkv_b->data + j * D, f, l, SHAPE(D)) == 0);
        }
        T_(b->norm1_w, "encoder.layer.%d.layernorm_before.weight", D);
        T_(b->norm1_b, "encoder.layer.%d.layernorm_before.bias", D);
        T_(b->proj_w, "encoder.layer.%d.attention.output.dense.weight", D, D);
        T_(b->proj_b, "encoder.layer.%d.attention.output.dense.bias", D);
        T_(b->norm2_w, "encoder.layer.%d.layernorm_after.weight", D);
        T_(b->norm2_b, "encoder.layer.%d.layernorm_after.bias", D);
        T_(b->fc1_w, "encoder.layer.%d.intermediate.dense.weight", M, D);
        T_(b->fc1_b, "encoder.layer.%d.intermediate.dense.bias", M);
        T_(b->fc2_w, "encoder.layer.%d.output.dense.weight", D, M);
        T_(b->fc2_b, "encoder.layer.%d.output.dense.bias", D);
    } else {
        const char *pre = "Transformer/encoderblock_%d/";
        char f[160];
#define NPZ(x) (snprintf(f, sizeof f, "%s%s", pre, x), f)
        T_(b->norm1_w, NPZ("LayerNorm_0/scale"), D);
        T_(b->norm1_b, NPZ("LayerNorm_0/bias"), D);
        T_(b->norm2_w, NPZ("LayerNorm_2/scale"), D);
        T_(b->norm2_b, NPZ("LayerNorm_2/bias"), D);
        static const char *qkv[3] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            char g2[80];
            snprintf(g2, sizeof g2, "MultiHeadDotProductAttention_1/%s/kernel", qkv[j]);
            // kernel (D, H, hd) = (in, out): W rows are outputs
            TRY(take_t(s, b->qkv_w->data + j * D * D, NPZ(g2), l, D, D, SHAPE(D, H, hd)) == 0);
            snprintf(g2, sizeof g2, "MultiHeadDotProductAttention_1/%s/bias", qkv[j]);
            TRY(take(s, b->qkv_b->data + j * D, NPZ(g2), l, SHAPE(H, hd)) == 0);
        }
        // (H, hd, D) = (in, out)
        TRY(take_t(s, b->proj_w->data, NPZ("MultiHeadDotProductAttention_1/out/kernel"), l, D, D, SHAPE(H, hd, D)) == 0);
        T_(b->proj_b, NPZ("MultiHeadDotProductAttention_1/out/bias"), D);
        TRY(take_t(s, b->fc1_w->data, NPZ("MlpBlock_3/Dense_0/kernel"), l, M, D, SHAPE(D, M)) == 0);
        T_(b->fc1_b, NPZ("MlpBlock_3/Dense_0/bias"), M);
        TRY(take_t(s, b->fc2_w->data, NPZ("MlpBlock_3/Dense_1/kernel"), l, D, M, SHAPE(M, D)) == 0);
        T_(b->fc2_b, NPZ("MlpBlock_3/Dense_1/bias"), D);
#undef NPZ
    }
#undef T_
    return 0;
fail:
    return -1;
}

// __metadata__'s no_embed_class (0 or 1), or -1 when it does not say.
static int meta_no_embed_class(const char *meta) {
    cJSON *o = meta ? cJSON_Parse(meta) : NULL;
    const cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, "no_embed_class") : NULL;
    int r = cJSON_IsBool(x) ? cJSON_IsTrue(x) : cJSON_IsNumber(x) ? x->valueint != 0 : -1;
    cJSON_Delete(o);
    return r;
}

int vit_load(Vit *v, const char *path, int heads, int img_size, int classes) {
    Src s;
    memset(&s, 0, sizeof s);
    memset(v, 0, sizeof *v);
    size_t L = strlen(path);
    int is_npz = L > 4 && !strcmp(path + L - 4, ".npz");
    if ((is_npz ? npz_open(&s.f, path) : st_open(&s.f, path)) != 0) return -1;
    s.used = nn_calloc(s.f.n + 1);
    if (detect(&s)) goto fail0;
    VitConfig c;
    memset(&c, 0, sizeof c);
    const char *meta = st_meta(&s.f, "config");
    if (meta && vit_config_from_json(meta, &c) != 0) {
        char e[512];
        snprintf(e, sizeof e, "%s", nn_err());
        nn_seterr("%s: __metadata__ %s", path, e);
        goto fail0;
    }
    if (infer_config(&s, &c, heads, meta_no_embed_class(meta))) goto fail0;
    int ck_img = c.img, ck_classes = c.classes;
    vit_init(v, &c);
    const VitConfig *cc = &v->cfg;
    const long D = c.dim, P = c.patch, C = c.in_ch;
    float *t = NULL;
    // patch embedding
    if (s.fmt == FMT_NPZ) {   // (P, P, C, D) -> (D, C, P, P)
        t = nn_malloc(sizeof(float) * P * P * C * D);
        TRY(read_t(&s, patch_name(s.fmt), SHAPE(P, P, C, D), t) == 0);
        for (long py = 0; py < P; py++)
            for (long px = 0; px < P; px++)
                for (long ch = 0; ch < C; ch++)
                    for (long d = 0; d < D; d++)
                        v->patch_w->data[((d * C + ch) * P + py) * P + px] = t[((py * P + px) * C + ch) * D + d];
        free(t), t = NULL;
    } else TRY(take(&s, v->patch_w->data, patch_name(s.fmt), 0, SHAPE(D, C, P, P)) == 0);
    const char *pb = s.fmt == FMT_TIMM ? "patch_embed.proj.bias"
                     : s.fmt == FMT_HF ? "embeddings.patch_embeddings.projection.bias"
                                       : "embedding/bias";
    TRY(take(&s, v->patch_b->data, pb, 0, SHAPE(D)) == 0);
    const char *cn = s.fmt == FMT_TIMM ? "cls_token" : s.fmt == FMT_HF ? "embeddings.cls_token" : "cls";
    TRY(take(&s, v->cls->data, cn, 0, SHAPE(1, 1, D)) == 0);
    if (v->reg) TRY(take(&s, v->reg->data, "reg_token", 0, SHAPE(1, c.reg_tokens, D)) == 0);
    TRY(take(&s, v->pos->data, pos_name(s.fmt), 0, SHAPE(1, vit_pos_tokens(cc), D)) == 0);
    for (int l = 0; l < c.depth; l++)
        if (load_block(&s, v, l)) goto fail;
    const char *nw = c.pool_avg ? "fc_norm.weight" : s.fmt == FMT_TIMM ? "norm.weight" : s.fmt == FMT_HF ? "layernorm.weight" : "Transformer/encoder_norm/scale";
    const char *nb = c.pool_avg ? "fc_norm.bias" : s.fmt == FMT_TIMM ? "norm.bias" : s.fmt == FMT_HF ? "layernorm.bias" : "Transformer/encoder_norm/bias";
    TRY(take(&s, v->norm_w->data, nw, 0, SHAPE(D)) == 0);
    TRY(take(&s, v->norm_b->data, nb, 0, SHAPE(D)) == 0);
    if (c.pre_logits) {
        if (s.fmt == FMT_NPZ) TRY(take_t(&s, v->pre_w->data, pre_name(s.fmt, 0), 0, D, D, SHAPE(D, D)) == 0);
        else TRY(take(&s, v->pre_w->data, pre_name(s.fmt, 0), 0, SHAPE(D, D)) == 0);
        TRY(take(&s, v->pre_b->data, pre_name(s.fmt, 1), 0, SHAPE(D)) == 0);
    }
    if (ck_classes > 0) {
        const long K = ck_classes;
        const char *hb = s.fmt == FMT_TIMM ? "head.bias" : s.fmt == FMT_HF ? "classifier.bias" : "head/bias";
        if (s.fmt == FMT_NPZ) TRY(take_t(&s, v->head_w->data, head_name(s.fmt), 0, K, D, SHAPE(D, K)) == 0);
        else TRY(take(&s, v->head_w->data, head_name(s.fmt), 0, SHAPE(K, D)) == 0);
        TRY(take(&s, v->head_b->data, hb, 0, SHAPE(K)) == 0);
    }
    // Strict: a tensor the model did not read means the file is another model. Google's .npz may
    // carry the optimizer state beside opt/target/: not model tensors.
    if (!strcmp(s.prefix, "opt/target/"))
        for (int i = 0; i < s.f.n; i++)
            if (!strncmp(s.f.e[i].name, "opt/", 4) && strncmp(s.f.e[i].name, "opt/target/", 11)) s.used[i] = 1;
    if (st_check_unused(&s.f, s.used, "ViT")) goto fail;
    st_close(&s.f);
    free(s.used);
    // resample position embedding / new head
    if (img_size > 0 && img_size != ck_img) {
        if (img_size % c.patch || img_size > 65536) {
            nn_seterr("%s: image size %d is not a multiple of the patch size %d (at most 65536)", path, img_size,
                      c.patch);
            vit_free(v);
            return -1;
        }
        int g0 = ck_img / c.patch, g1 = img_size / c.patch;
        v->cfg.img = img_size;
        if (vit_config_check(&v->cfg, path)) {
            vit_free(v);
            return -1;
        }
        int npre = c.no_embed_class ? 0 : vit_prefix_tokens(&c);
        float *old = nn_malloc(sizeof(float) * v->pos->n);
        memcpy(old, v->pos->data, sizeof(float) * v->pos->n);
        ps_remove(&v->ps, "pos_embed");
        int s3[3] = {1, g1 * g1 + npre, (int)D};
        v->pos = ps_add(&v->ps, "pos_embed", 3, s3, 1);
        vit_resample_pos_n(old, g0, v->pos->data, g1, (int)D, npre);
        free(old);
    }
    if (classes > 0 && classes != ck_classes) vit_reset_head(v, classes, 0);
    return 0;
fail:
    free(t);
    vit_free(v);
fail0:
    st_close(&s.f);
    free(s.used);
    return -1;
}

int vit_save(const Vit *v, const char *path, const char *const *extra_meta) {
    StWriter *w = st_writer_new();
    for (int i = 0; i < v->ps.n; i++) {
        const Param *p = v->ps.p[i];
        if (!strncmp(p->name, "pet.", 4)) continue;   // a method's own parameters: see delta checkpoints
        st_writer_add(w, p->name, p->t.ndim, p->t.shape, p->t.data);
    }
    char *cfg = vit_config_json(&v->cfg);
    st_writer_meta(w, "config", cfg);
    free(cfg);
    st_writer_meta(w, "format", "petl-vit-1");
    for (int i = 0; extra_meta && extra_meta[i] && extra_meta[i + 1]; i += 2)
        st_writer_meta(w, extra_meta[i], extra_meta[i + 1]);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}
