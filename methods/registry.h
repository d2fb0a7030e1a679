// Every method's descriptor; the registry lists them in the order `petl methods` prints.
#ifndef METHODS_REGISTRY_H
#define METHODS_REGISTRY_H
#include "methods/method.h"

extern const MethodDesc method_full, method_linear, method_bitfit, method_lora;

// Shared by methods: freeze the backbone, train the head (if any).
void method_freeze_backbone_train_head(Vit *v);
// Adds "pet.<name>" with the given shape, trainable.
Tensor *method_param(Vit *v, const char *name, int ndim, const int *shape);
// Kaiming-uniform with a = sqrt(5) (PyTorch's Linear default): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void method_init_kaiming_uniform(Tensor *t, int fan_in, uint64_t *rng);
#endif
