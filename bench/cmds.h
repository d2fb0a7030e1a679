// Subcommands of the petl program: each takes the arguments after its name.
#ifndef BENCH_CMDS_H
#define BENCH_CMDS_H
int cmd_info(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_methods(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_score(int argc, char **argv);
#endif
