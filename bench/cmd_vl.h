// The vision-language entry points of petl run and petl pretrain (bench/cmd_vl.c).
#ifndef BENCH_CMD_VL_H
#define BENCH_CMD_VL_H
#include "vl/vlmethods.h"
int cmd_vl_run(int argc, char **argv);        // petl run --format vl
int cmd_vl_pretrain(int argc, char **argv);   // petl pretrain --preset vl-...
// "k=v,k=v" method arguments -> options; -1 with nn_err() naming an unknown key or bad value.
int vl_parse_method_args(const char *margs, VlMethodOpts *o);
#endif
