// Every method's descriptor; the registry lists them in the order `petl methods` prints.
#ifndef METHODS_REGISTRY_H
#define METHODS_REGISTRY_H
#include "methods/method.h"

// Declared weak so that the registry builds while a method's file is being written; a method
// whose file is absent is simply not listed (tests check that every method below is present).
#define METHOD_DECL(x) extern const MethodDesc x __attribute__((weak))
METHOD_DECL(method_full);
METHOD_DECL(method_linear);
METHOD_DECL(method_bitfit);
METHOD_DECL(method_ssf);
METHOD_DECL(method_adapter);
METHOD_DECL(method_adaptformer);
METHOD_DECL(method_convpass);
METHOD_DECL(method_compacter);
METHOD_DECL(method_lora);
METHOD_DECL(method_fact_tt);
METHOD_DECL(method_fact_tk);
METHOD_DECL(method_kadaptation);
METHOD_DECL(method_vpt_shallow);
METHOD_DECL(method_vpt_deep);
// VL-Adapter's prefix and prompt tuning, for every backbone with the hook (issue 12).
METHOD_DECL(method_prefix);
METHOD_DECL(method_prompt);
// Memory-efficient and sparse methods (issue 6).
METHOD_DECL(method_lst);
METHOD_DECL(method_sparse_adapter);
METHOD_DECL(method_dsee);
METHOD_DECL(method_l0mask);
METHOD_DECL(method_prune);
METHOD_DECL(method_int8);
// Multi-task adapters for both backbones (issue 12).
METHOD_DECL(method_hyperformer);

// Shared by methods: freeze the backbone, train the head (if any).
void method_freeze_backbone_train_head(Backbone *bb);
// Adds "pet.<name>" with the given shape, trainable.
Tensor *method_param(Backbone *bb, const char *name, int ndim, const int *shape);
// Kaiming-uniform with a = sqrt(5) (PyTorch's Linear default): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void method_init_kaiming_uniform(Tensor *t, int fan_in, uint64_t *rng);
#endif
