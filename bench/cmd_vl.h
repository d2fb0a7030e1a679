// The vision-language entry points of petl run and petl pretrain (bench/cmd_vl.c).
#ifndef BENCH_CMD_VL_H
#define BENCH_CMD_VL_H
int cmd_vl_run(int argc, char **argv);        // petl run --format vl
int cmd_vl_pretrain(int argc, char **argv);   // petl pretrain --preset vl-...
#endif
