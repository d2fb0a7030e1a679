// Output files (nn/outfile.c): whole or not at all, only regular files replaced, "-" is stdout, a
// character device written in place; and `petl table --out` on each kind of target.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn.h"
#include "tests/test.h"

#define D TEST_TMP "/outfile"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}
static int kind(const char *path) {   // the file type bits, lstat
    struct stat st;
    return lstat(path, &st) == 0 ? (int)(st.st_mode & S_IFMT) : -1;
}
static int leftovers(void) {   // temporary files left in D
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.tmp\\.' > %s/.count", D, D);
    if (system(cmd) < 0) return -1;
    return atoi(slurp(D "/.count"));
}

static void test_library(void) {
    // a new file, then replaced whole
    CHECK(nn_write_file(D "/a.txt", "one\n", 4, 1) == 0 && !strcmp(slurp(D "/a.txt"), "one\n"), "new file: %s", nn_err());
    CHECK(nn_write_file(D "/a.txt", "two\n", 4, 0) == 0 && !strcmp(slurp(D "/a.txt"), "two\n"), "replace: %s", nn_err());
    // an abandoned write leaves the old content and no temporary file
    NnOut o;
    CHECK(nn_out_open(&o, D "/a.txt", 0) == 0, "open: %s", nn_err());
    fputs("half", o.f);
    nn_out_close(&o, 0);
    CHECK(!strcmp(slurp(D "/a.txt"), "two\n") && leftovers() == 0, "abandoned write keeps the file, leaves nothing");
    // a directory is refused and stays a directory
    mkdir(D "/dir", 0755);
    CHECK(nn_write_file(D "/dir", "x", 1, 0) < 0 && strstr(nn_err(), "a directory") && strstr(nn_err(), "dir") &&
              kind(D "/dir") == S_IFDIR,
          "directory refused: %s", nn_err());
    // a FIFO is refused (opening it for writing would block) and stays a FIFO
    unlink(D "/fifo");
    if (mkfifo(D "/fifo", 0644) == 0)
        CHECK(nn_write_file(D "/fifo", "x", 1, 0) < 0 && strstr(nn_err(), "a FIFO") && kind(D "/fifo") == S_IFIFO,
              "FIFO refused: %s", nn_err());
    // a character device is written in place: /dev/null takes it, /dev/full fails, both stay devices
    CHECK(nn_write_file("/dev/null", "x", 1, 1) == 0 && kind("/dev/null") == S_IFCHR, "/dev/null: %s", nn_err());
    if (kind("/dev/full") == S_IFCHR)
        CHECK(nn_write_file("/dev/full", "x", 1, 0) < 0 && strstr(nn_err(), "/dev/full") && kind("/dev/full") == S_IFCHR,
              "/dev/full: an error, still a device: %s", nn_err());
    // a symbolic link: the target is replaced, the link stays a link
    nn_write_file(D "/target.txt", "old\n", 4, 0);
    unlink(D "/link.txt");
    CHECK(symlink("target.txt", D "/link.txt") == 0, "symlink");
    CHECK(nn_write_file(D "/link.txt", "new\n", 4, 0) == 0 && kind(D "/link.txt") == S_IFLNK &&
              !strcmp(slurp(D "/target.txt"), "new\n"),
          "through a symlink: %s", nn_err());
    unlink(D "/dangling");
    CHECK(symlink("no/such/file", D "/dangling") == 0, "symlink");
    CHECK(nn_write_file(D "/dangling", "x", 1, 0) < 0 && strstr(nn_err(), "dangling") && kind(D "/dangling") == S_IFLNK,
          "dangling symlink refused: %s", nn_err());
    // a missing folder names the path
    CHECK(nn_write_file(D "/no/such/dir/x.json", "x", 1, 0) < 0 && strstr(nn_err(), "no/such/dir/x.json"),
          "missing folder: %s", nn_err());
    // "-" is standard output
    fflush(stdout);
    int saved = dup(1), fd = open(D "/stdout.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    int rc = nn_write_file("-", "to stdout\n", 10, 1);
    fflush(stdout);
    dup2(saved, 1);
    close(fd), close(saved);
    CHECK(rc == 0 && !strcmp(slurp(D "/stdout.txt"), "to stdout\n") && kind("-") == -1, "- is stdout: %s", nn_err());
    CHECK(leftovers() == 0, "no temporary file left");
}

// `petl table --out` on each target: -, a directory, /dev/full.
static void test_cli(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --out - > %s/t1.md 2> %s/err.txt", petl_bin(), D, D);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0 && strstr(slurp(D "/t1.md"), "# petl results") && kind("-") == -1,
          "petl table --out - prints the table: rc %d", rc);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --out %s/dir 2> %s/err.txt", petl_bin(), D, D);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && strstr(slurp(D "/err.txt"), "not a regular file") &&
              kind(D "/dir") == S_IFDIR,
          "petl table --out DIR: exit 1, a message: rc %d, %s", rc, slurp(D "/err.txt"));
    if (kind("/dev/full") == S_IFCHR) {
        snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --out /dev/full 2> %s/err.txt", petl_bin(), D);
        rc = system(cmd);
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && strstr(slurp(D "/err.txt"), "/dev/full") &&
                  kind("/dev/full") == S_IFCHR,
              "petl table --out /dev/full: exit 1, still a device: rc %d, %s", rc, slurp(D "/err.txt"));
    }
}

int main(void) {
    if (system("rm -rf " D " && mkdir -p " D) != 0) return 1;
    test_library();
    test_cli();
    TEST_END();
}
