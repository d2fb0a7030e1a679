// ViT checkpoints: timm- and Hugging Face-named safetensors, Google's .npz, position-embedding
// resampling, and saving with timm names and the config in __metadata__.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"
#include "vit/vit.h"

// ---------------------------------------------------------------- config JSON
char *vit_config_json(const VitConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "img_size", c->img);
    cJSON_AddNumberToObject(o, "patch_size", c->patch);
    cJSON_AddNumberToObject(o, "in_chans", c->in_ch);
    cJSON_AddNumberToObject(o, "embed_dim", c->dim);
    cJSON_AddNumberToObject(o, "depth", c->depth);
    cJSON_AddNumberToObject(o, "num_heads", c->heads);
    cJSON_AddNumberToObject(o, "mlp_hidden", c->mlp);
    cJSON_AddNumberToObject(o, "num_classes", c->classes);
    cJSON_AddNumberToObject(o, "ln_eps", c->ln_eps);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int jint(const cJSON *o, const char *k, int *dst) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!x) return 0;
    if (!cJSON_IsNumber(x)) return -1;
    *dst = x->valueint;
    return 1;
}

int vit_config_from_json(const char *json, VitConfig *c) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        nn_seterr("config metadata is not a JSON object: %.80s", json);
        return -1;
    }
    static const char *keys[] = {"img_size", "patch_size", "in_chans", "embed_dim", "depth",
                                 "num_heads", "mlp_hidden", "num_classes"};
    int *dst[] = {&c->img, &c->patch, &c->in_ch, &c->dim, &c->depth, &c->heads, &c->mlp, &c->classes};
    for (int i = 0; i < 8; i++)
        if (jint(o, keys[i], dst[i]) < 0) {
            nn_seterr("config metadata: '%s' is not a number", keys[i]);
            cJSON_Delete(o);
            return -1;
        }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "ln_eps");
    if (cJSON_IsNumber(e)) c->ln_eps = (float)e->valuedouble;
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
    memcpy(dst, src, sizeof(float) * D);   // class token
    const float *s = src + D;
    float *d = dst + D;
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
} Src;

static const StEntry *src_find(const Src *s, const char *name) {
    char full[300];
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

// Reads a tensor expecting numel elements; returns a malloc'd float array or NULL.
static float *read_t(const Src *s, const char *name, long numel, int required) {
    const StEntry *e = src_find(s, name);
    if (!e) {
        if (required) nn_seterr("%s: tensor '%s%s' is missing", s->f.path, s->prefix, name);
        return NULL;
    }
    if (e->numel != numel) {
        char sh[128] = "";
        size_t k = 0;
        for (int i = 0; i < e->ndim; i++) k += snprintf(sh + k, sizeof sh - k, i ? ", %ld" : "%ld", e->shape[i]);
        nn_seterr("%s: tensor '%s%s' has shape (%s) = %ld elements, expected %ld", s->f.path, s->prefix, name,
                  sh, e->numel, numel);
        return NULL;
    }
    float *d = nn_malloc(sizeof(float) * numel);
    if (st_read_f32(&s->f, e, d)) {
        free(d);
        return NULL;
    }
    return d;
}

// dst (rows, cols) = transpose of src (cols, rows)
static void transpose(const float *src, float *dst, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(long)r * cols + c] = src[(long)c * rows + r];
}

static int infer_config(Src *s, VitConfig *c, int heads) {
    const StEntry *pe = src_find(s, patch_name(s->fmt));
    if (pe->ndim != 4) {
        nn_seterr("%s: patch embedding has %d dimensions, expected 4", s->f.path, pe->ndim);
        return -1;
    }
    if (s->fmt == FMT_NPZ) {   // (P, P, C, D)
        c->patch = (int)pe->shape[0];
        c->in_ch = (int)pe->shape[2];
        c->dim = (int)pe->shape[3];
    } else {                   // (D, C, P, P)
        c->dim = (int)pe->shape[0];
        c->in_ch = (int)pe->shape[1];
        c->patch = (int)pe->shape[2];
    }
    const StEntry *pos = src_find(s, pos_name(s->fmt));
    if (!pos) {
        nn_seterr("%s: position embedding '%s%s' is missing", s->f.path, s->prefix, pos_name(s->fmt));
        return -1;
    }
    long ntok = pos->numel / c->dim;
    int g = (int)lround(sqrt((double)(ntok - 1)));
    if ((long)g * g + 1 != ntok) {
        nn_seterr("%s: position embedding holds %ld tokens, not a square grid plus a class token", s->f.path, ntok);
        return -1;
    }
    c->img = g * c->patch;
    c->depth = count_blocks(s);
    if (c->depth == 0) {
        nn_seterr("%s: no transformer blocks found", s->f.path);
        return -1;
    }
    char nm[256];
    const StEntry *fc1;
    if (s->fmt == FMT_TIMM) snprintf(nm, sizeof nm, "blocks.0.mlp.fc1.weight");
    else if (s->fmt == FMT_HF) snprintf(nm, sizeof nm, "encoder.layer.0.intermediate.dense.weight");
    else snprintf(nm, sizeof nm, "Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel");
    fc1 = src_find(s, nm);
    if (!fc1) {
        nn_seterr("%s: tensor '%s%s' is missing", s->f.path, s->prefix, nm);
        return -1;
    }
    c->mlp = (int)(fc1->numel / c->dim);
    const StEntry *he = src_find(s, head_name(s->fmt));
    c->classes = he ? (int)(he->numel / c->dim) : 0;
    const char *meta = st_meta(&s->f, "config");
    VitConfig mc = *c;
    if (meta && vit_config_from_json(meta, &mc) == 0 && mc.heads > 0) c->heads = mc.heads;
    if (s->fmt == FMT_NPZ) {   // query kernel (D, H, hd) carries the head count
        const StEntry *q = src_find(s, "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel");
        if (q && q->ndim == 3) c->heads = (int)q->shape[1];
    }
    if (heads > 0) c->heads = heads;
    if (c->heads <= 0) c->heads = c->dim >= 64 ? c->dim / 64 : 1;
    if (c->dim % c->heads) {
        nn_seterr("%s: dim %d is not divisible by %d heads (hint: pass --heads)", s->f.path, c->dim, c->heads);
        return -1;
    }
    c->ln_eps = 1e-6f;
    if (!c->name[0]) snprintf(c->name, sizeof c->name, "vit-d%d-l%d-p%d", c->dim, c->depth, c->patch);
    return 0;
}

#define TRY(x)             \
    do {                   \
        if (!(x)) goto fail; \
    } while (0)

static int load_block(Src *s, Vit *v, int l) {
    const VitConfig *c = &v->cfg;
    VitBlock *b = &v->blocks[l];
    int D = c->dim, M = c->mlp;
    char nm[320];
    float *t = NULL, *u = NULL;
#define COPY(dst, name_fmt, n)                                   \
    do {                                                         \
        snprintf(nm, sizeof nm, name_fmt, l);                    \
        TRY(t = read_t(s, nm, n, 1));                            \
        memcpy((dst)->data, t, sizeof(float) * (n));             \
        free(t), t = NULL;                                       \
    } while (0)
#define COPY_T(dst, name_fmt, rows, cols) /* dst (rows, cols) from src (cols, rows) */ \
    do {                                                         \
        snprintf(nm, sizeof nm, name_fmt, l);                    \
        TRY(t = read_t(s, nm, (long)(rows) * (cols), 1));        \
        transpose(t, (dst), rows, cols);                         \
        free(t), t = NULL;                                       \
    } while (0)
    if (s->fmt == FMT_TIMM) {
        COPY(b->norm1_w, "blocks.%d.norm1.weight", D);
        COPY(b->norm1_b, "blocks.%d.norm1.bias", D);
        COPY(b->qkv_w, "blocks.%d.attn.qkv.weight", 3L * D * D);
        COPY(b->qkv_b, "blocks.%d.attn.qkv.bias", 3L * D);
        COPY(b->proj_w, "blocks.%d.attn.proj.weight", (long)D * D);
        COPY(b->proj_b, "blocks.%d.attn.proj.bias", D);
        COPY(b->norm2_w, "blocks.%d.norm2.weight", D);
        COPY(b->norm2_b, "blocks.%d.norm2.bias", D);
        COPY(b->fc1_w, "blocks.%d.mlp.fc1.weight", (long)M * D);
        COPY(b->fc1_b, "blocks.%d.mlp.fc1.bias", M);
        COPY(b->fc2_w, "blocks.%d.mlp.fc2.weight", (long)D * M);
        COPY(b->fc2_b, "blocks.%d.mlp.fc2.bias", D);
    } else if (s->fmt == FMT_HF) {
        static const char *qkv[3] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            char f[160];
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.attention.%s.weight", qkv[j]);
            snprintf(nm, sizeof nm, f, l);
            TRY(t = read_t(s, nm, (long)D * D, 1));
            memcpy(b->qkv_w->data + (long)j * D * D, t, sizeof(float) * D * D);
            free(t), t = NULL;
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.attention.%s.bias", qkv[j]);
            snprintf(nm, sizeof nm, f, l);
            TRY(t = read_t(s, nm, D, 1));
            memcpy(b->qkv_b->data + (long)j * D, t, sizeof(float) * D);
            free(t), t = NULL;
        }
        COPY(b->norm1_w, "encoder.layer.%d.layernorm_before.weight", D);
        COPY(b->norm1_b, "encoder.layer.%d.layernorm_before.bias", D);
        COPY(b->proj_w, "encoder.layer.%d.attention.output.dense.weight", (long)D * D);
        COPY(b->proj_b, "encoder.layer.%d.attention.output.dense.bias", D);
        COPY(b->norm2_w, "encoder.layer.%d.layernorm_after.weight", D);
        COPY(b->norm2_b, "encoder.layer.%d.layernorm_after.bias", D);
        COPY(b->fc1_w, "encoder.layer.%d.intermediate.dense.weight", (long)M * D);
        COPY(b->fc1_b, "encoder.layer.%d.intermediate.dense.bias", M);
        COPY(b->fc2_w, "encoder.layer.%d.output.dense.weight", (long)D * M);
        COPY(b->fc2_b, "encoder.layer.%d.output.dense.bias", D);
    } else {
        const char *pre = "Transformer/encoderblock_%d/";
        char f[160];
#define NPZ(x) (snprintf(f, sizeof f, "%s%s", pre, x), f)
        COPY(b->norm1_w, NPZ("LayerNorm_0/scale"), D);
        COPY(b->norm1_b, NPZ("LayerNorm_0/bias"), D);
        COPY(b->norm2_w, NPZ("LayerNorm_2/scale"), D);
        COPY(b->norm2_b, NPZ("LayerNorm_2/bias"), D);
        static const char *qkv[3] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            char g2[80];
            snprintf(g2, sizeof g2, "MultiHeadDotProductAttention_1/%s/kernel", qkv[j]);
            // kernel (D, H, hd) = (in, out): W rows are outputs
            COPY_T(b->qkv_w->data + (long)j * D * D, NPZ(g2), D, D);
            snprintf(g2, sizeof g2, "MultiHeadDotProductAttention_1/%s/bias", qkv[j]);
            snprintf(nm, sizeof nm, NPZ(g2), l);
            TRY(t = read_t(s, nm, D, 1));
            memcpy(b->qkv_b->data + (long)j * D, t, sizeof(float) * D);
            free(t), t = NULL;
        }
        COPY_T(b->proj_w->data, NPZ("MultiHeadDotProductAttention_1/out/kernel"), D, D);   // (H, hd, D) = (in, out)
        COPY(b->proj_b, NPZ("MultiHeadDotProductAttention_1/out/bias"), D);
        COPY_T(b->fc1_w->data, NPZ("MlpBlock_3/Dense_0/kernel"), M, D);
        COPY(b->fc1_b, NPZ("MlpBlock_3/Dense_0/bias"), M);
        COPY_T(b->fc2_w->data, NPZ("MlpBlock_3/Dense_1/kernel"), D, M);
        COPY(b->fc2_b, NPZ("MlpBlock_3/Dense_1/bias"), D);
#undef NPZ
    }
#undef COPY
#undef COPY_T
    (void)u;
    return 0;
fail:
    free(t);
    return -1;
}

int vit_load(Vit *v, const char *path, int heads, int img_size, int classes) {
    Src s;
    memset(&s, 0, sizeof s);
    size_t L = strlen(path);
    int is_npz = L > 4 && !strcmp(path + L - 4, ".npz");
    if ((is_npz ? npz_open(&s.f, path) : st_open(&s.f, path)) != 0) return -1;
    if (detect(&s)) goto fail0;
    VitConfig c;
    memset(&c, 0, sizeof c);
    const char *meta = st_meta(&s.f, "config");
    if (meta && vit_config_from_json(meta, &c) != 0) goto fail0;
    if (infer_config(&s, &c, heads)) goto fail0;
    int ck_img = c.img, ck_classes = c.classes;
    vit_init(v, &c);
    const VitConfig *cc = &v->cfg;
    int D = c.dim;
    float *t = NULL;
    // patch embedding
    long pn = (long)D * c.in_ch * c.patch * c.patch;
    TRY(t = read_t(&s, patch_name(s.fmt), pn, 1));
    if (s.fmt == FMT_NPZ) {   // (P, P, C, D) -> (D, C, P, P)
        int P = c.patch, C = c.in_ch;
        for (int py = 0; py < P; py++)
            for (int px = 0; px < P; px++)
                for (int ch = 0; ch < C; ch++)
                    for (int d = 0; d < D; d++)
                        v->patch_w->data[(((long)d * C + ch) * P + py) * P + px] =
                            t[(((long)py * P + px) * C + ch) * D + d];
    } else memcpy(v->patch_w->data, t, sizeof(float) * pn);
    free(t);
    const char *pb = s.fmt == FMT_TIMM ? "patch_embed.proj.bias"
                     : s.fmt == FMT_HF ? "embeddings.patch_embeddings.projection.bias"
                                       : "embedding/bias";
    TRY(t = read_t(&s, pb, D, 1));
    memcpy(v->patch_b->data, t, sizeof(float) * D);
    free(t);
    const char *cn = s.fmt == FMT_TIMM ? "cls_token" : s.fmt == FMT_HF ? "embeddings.cls_token" : "cls";
    TRY(t = read_t(&s, cn, D, 1));
    memcpy(v->cls->data, t, sizeof(float) * D);
    free(t);
    TRY(t = read_t(&s, pos_name(s.fmt), (long)vit_tokens(cc) * D, 1));
    memcpy(v->pos->data, t, sizeof(float) * v->pos->n);
    free(t);
    for (int l = 0; l < c.depth; l++)
        if (load_block(&s, v, l)) goto fail;
    const char *nw = s.fmt == FMT_TIMM ? "norm.weight" : s.fmt == FMT_HF ? "layernorm.weight" : "Transformer/encoder_norm/scale";
    const char *nb = s.fmt == FMT_TIMM ? "norm.bias" : s.fmt == FMT_HF ? "layernorm.bias" : "Transformer/encoder_norm/bias";
    TRY(t = read_t(&s, nw, D, 1));
    memcpy(v->norm_w->data, t, sizeof(float) * D);
    free(t);
    TRY(t = read_t(&s, nb, D, 1));
    memcpy(v->norm_b->data, t, sizeof(float) * D);
    free(t);
    if (ck_classes > 0) {
        const char *hb = s.fmt == FMT_TIMM ? "head.bias" : s.fmt == FMT_HF ? "classifier.bias" : "head/bias";
        TRY(t = read_t(&s, head_name(s.fmt), (long)ck_classes * D, 1));
        if (s.fmt == FMT_NPZ) transpose(t, v->head_w->data, ck_classes, D);
        else memcpy(v->head_w->data, t, sizeof(float) * ck_classes * D);
        free(t);
        TRY(t = read_t(&s, hb, ck_classes, 1));
        memcpy(v->head_b->data, t, sizeof(float) * ck_classes);
        free(t);
    }
    st_close(&s.f);
    // resample position embedding / new head
    if (img_size > 0 && img_size != ck_img) {
        if (img_size % c.patch) {
            nn_seterr("%s: image size %d is not a multiple of the patch size %d", path, img_size, c.patch);
            vit_free(v);
            return -1;
        }
        int g0 = ck_img / c.patch, g1 = img_size / c.patch;
        float *old = nn_malloc(sizeof(float) * v->pos->n);
        memcpy(old, v->pos->data, sizeof(float) * v->pos->n);
        ps_remove(&v->ps, "pos_embed");
        int s3[3] = {1, g1 * g1 + 1, D};
        v->pos = ps_add(&v->ps, "pos_embed", 3, s3, 1);
        vit_resample_pos(old, g0, v->pos->data, g1, D);
        free(old);
        v->cfg.img = img_size;
    }
    if (classes > 0 && classes != ck_classes) vit_reset_head(v, classes, 0);
    return 0;
fail:
    vit_free(v);
fail0:
    st_close(&s.f);
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
