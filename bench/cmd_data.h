// `petl data inspect` and `petl data fewshot`: check a dataset folder, and write few-shot
// list files in the FGVC layout from any labelled split.
#ifndef BENCH_CMD_DATA_H
#define BENCH_CMD_DATA_H
// argv[0] is the subcommand name ("inspect" / "fewshot"); options follow.
// inspect: 0 when no problem was found, 1 when some were (all listed), 2 on usage errors.
int cmd_data_inspect(int argc, char **argv);
// fewshot: 0 on success, 1 on a data error, 2 on usage errors.
int cmd_data_fewshot(int argc, char **argv);
#endif
