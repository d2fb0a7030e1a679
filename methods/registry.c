// The registry of methods and helpers every method uses.
#include "methods/registry.h"

#include <math.h>
#include <stdio.h>

const MethodDesc *const *method_registry(int *n) {
    static const MethodDesc *all[32];
    static int count = -1;
    if (count < 0) {
        const MethodDesc *cand[] = {
            &method_full,     &method_linear,     &method_bitfit,  &method_ssf,      &method_adapter,
            &method_adaptformer, &method_convpass, &method_compacter, &method_lora,  &method_fact_tt,
            &method_fact_tk,  &method_kadaptation, &method_vpt_shallow, &method_vpt_deep, &method_prefix, &method_prompt,
            &method_lst,      &method_sparse_adapter, &method_dsee, &method_l0mask, &method_prune, &method_int8,
            &method_hyperformer,
        };
        count = 0;
        for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
            if (cand[i]) all[count++] = cand[i];
    }
    *n = count;
    return all;
}

void method_freeze_backbone_train_head(Backbone *bb) {
    ps_freeze_all(bb->ps);
    for (int i = 0; i < bb->ps->n; i++)
        if (method_is_head(bb->ps->p[i]->name)) ps_set_trainable(bb->ps, bb->ps->p[i], 1);
}

Tensor *method_param(Backbone *bb, const char *name, int ndim, const int *shape) {
    char nm[128];
    snprintf(nm, sizeof nm, "pet.%s", name);
    return ps_add(bb->ps, nm, ndim, shape, 1);
}

void method_init_kaiming_uniform(Tensor *t, int fan_in, uint64_t *rng) {
    float b = 1.0f / sqrtf((float)fan_in);
    rng_fill_uniform(rng, t->data, t->n, -b, b);
}
