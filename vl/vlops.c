// VL bridge ops: adaptive average pooling of a token grid (forward/backward) and the boxes of
// the pooled cells. Pooling is pure data movement plus one add per pooled element.
#include "vl/vlops.h"

#include <string.h>

void vl_pool_cell(int G, int P, int i, int *start, int *end) {
    *start = (int)(((long)i * G) / P);
    *end = (int)(((long)(i + 1) * G + P - 1) / P);
}

void vl_pool_boxes(int G, int P, float *boxes) {
    for (int i = 0; i < P; i++)
        for (int j = 0; j < P; j++) {
            int y0, y1, x0, x1;
            vl_pool_cell(G, P, i, &y0, &y1);
            vl_pool_cell(G, P, j, &x0, &x1);
            float *b = boxes + 4L * (i * P + j);
            b[0] = (float)x0 / G;
            b[1] = (float)y0 / G;
            b[2] = (float)x1 / G;
            b[3] = (float)y1 / G;
        }
}

typedef struct {
    Tensor *x, *out;
    int skip, G, P;
} PoolCtx;

// dst (P*P, C) (+)= pooled src (skip + G*G, C) for one batch element; rev: scatter dst into src
static void pool_one(float *y, float *x, int skip, int G, int P, int C, int rev) {
    for (int i = 0; i < P; i++) {
        int r0, r1;
        vl_pool_cell(G, P, i, &r0, &r1);
        for (int j = 0; j < P; j++) {
            int c0, c1;
            vl_pool_cell(G, P, j, &c0, &c1);
            float inv = 1.0f / (float)((r1 - r0) * (c1 - c0));
            float *yr = y + (long)(i * P + j) * C;
            if (!rev) memset(yr, 0, (size_t)C * sizeof(float));
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++) {
                    float *xr = x + (long)(skip + r * G + c) * C;
                    if (rev)
                        for (int k = 0; k < C; k++) xr[k] += yr[k] * inv;
                    else
                        for (int k = 0; k < C; k++) yr[k] += xr[k];
                }
            if (!rev)
                for (int k = 0; k < C; k++) yr[k] *= inv;
        }
    }
}

static double pool_count(int G, int P) {
    double n = 0;
    for (int i = 0; i < P; i++) {
        int a, b;
        vl_pool_cell(G, P, i, &a, &b);
        n += b - a;
    }
    return n * n;   // sum over cells of (rows * cols) = (sum of row spans)(sum of col spans)
}

static void pool_backward(Graph *g, void *vctx) {
    PoolCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->x);
    int B = c->x->shape[0], T = c->x->shape[1], C = c->x->shape[2], PP = c->P * c->P;
#pragma omp parallel for schedule(static) if (B > 1 && (long)B * T * C > 32768)
    for (int b = 0; b < B; b++)
        pool_one((float *)dy + (long)b * PP * C, dx + (long)b * T * C, c->skip, c->G, c->P, C, 1);
    graph_add_flops(g, 0, (double)B * C * pool_count(c->G, c->P));
}

Tensor *op_pool_grid(Graph *g, Tensor *x, int skip, int G, int P) {
    char s[64];
    tensor_shape_str(x, s, sizeof s);
    NN_ASSERT(x->ndim == 3 && skip >= 0 && G > 0 && P > 0 && x->shape[1] == skip + G * G,
              "op_pool_grid: x must be (B, %d + %d*%d, C) with P = %d > 0; got %s", skip, G, G, P, s);
    int B = x->shape[0], T = x->shape[1], C = x->shape[2], PP = P * P;
    Tensor *y = graph_tensor3(g, B, PP, C);
#pragma omp parallel for schedule(static) if (B > 1 && (long)B * T * C > 32768)
    for (int b = 0; b < B; b++) pool_one(y->data + (long)b * PP * C, x->data + (long)b * T * C, skip, G, P, C, 0);
    graph_add_flops(g, (double)B * C * pool_count(G, P), 0);
    if (graph_needs_grad(g, x, NULL, NULL)) {
        PoolCtx *c = graph_alloc(g, sizeof *c);
        *c = (PoolCtx){x, y, skip, G, P};
        graph_record(g, pool_backward, c, y);
    }
    return y;
}
