// `petl data make`: generates the embedded default data (see loaders/gen.h) in the VTAB-1k layout.
#ifndef BENCH_CMD_GEN_H
#define BENCH_CMD_GEN_H
// argv[0] == "make". Returns the process exit status (0 ok, 1 failure, 2 usage).
int cmd_data_make(int argc, char **argv);
#endif
