// PET methods behind one interface and a registry. A method is its own parameters (in the
// model's store, named "pet.<method>.<...>") plus handlers at the backbone's sites (VitSites).
// It never reaches into the ViT except through sites and the backbone's named weights.
#ifndef METHODS_METHOD_H
#define METHODS_METHOD_H

#include "vit/vit.h"

#define METHOD_MAXARGS 16

typedef struct {
    const char *key;
    const char *def;       // default value as text
    const char *help;
} MethodArg;

typedef struct Method Method;

typedef struct {
    const char *name;
    const char *summary;                 // one line
    const MethodArg *args;               // NULL-key terminated
    int mergeable;                       // folds into the backbone weights for inference
    // Creates parameters (zero/identity or random init from seed), sets which parameters are
    // trainable (the head included unless the method says otherwise), fills m->sites.
    // -1 with nn_err() for a site the backbone lacks or a bad argument value.
    int (*attach)(Method *m, Vit *v, uint64_t seed);
    void (*detach)(Method *m);           // frees m->state (parameters stay in the store)
    // Extra inference multiply-adds per image over the plain backbone, unmerged.
    double (*extra_macs)(const Method *m, const VitConfig *c);
    // Fold into the backbone's weights (mergeable methods only); afterwards sites are empty.
    int (*merge)(Method *m, Vit *v);
} MethodDesc;

struct Method {
    const MethodDesc *desc;
    char keys[METHOD_MAXARGS][32];
    char vals[METHOD_MAXARGS][64];
    int nargs;                            // every arg of desc, defaults filled in
    Vit *v;
    VitSites sites;
    void *state;
};

const MethodDesc *const *method_registry(int *n);
const MethodDesc *method_find(const char *name);
// name + "k=v,k=v": unknown method or key, or a bad value -> NULL with nn_err() naming it.
Method *method_new(const char *name, const char *args);
int method_attach(Method *m, Vit *v, uint64_t seed);
void method_free(Method *m);
const char *method_arg(const Method *m, const char *key);
int method_arg_int(const Method *m, const char *key);
float method_arg_float(const Method *m, const char *key);
// "k=v,k=v" of every argument, as stored in delta checkpoints and result records.
void method_args_string(const Method *m, char *buf, size_t cap);

// Trainable parameter counts: the method's own (without the head), and the head's.
long method_trainable(const Vit *v, long *head);
// Parameter-name helpers for methods.
int method_is_head(const char *name);
// The sites of a method as a pointer for vit_forward (NULL when it has none).
const VitSites *method_sites(const Method *m);

// Delta checkpoints: only the method's parameters and the head, with the method and its
// arguments in __metadata__.
int method_save_delta(const Method *m, const char *path);
// Loads a delta into an attached method (names and shapes must match). -1 with nn_err().
int method_load_delta(Method *m, const char *path);
// Reads the method name and args of a delta file (caller provides buffers).
int method_delta_info(const char *path, char *name, size_t ncap, char *args, size_t acap);

#endif
