// libFuzzer target: the benchmark matrix reader (matrix_parse: strict JSON validation, grid
// expansion into cells, cell ids and command lines), as `petl bench` reads bench/matrices/*.json.
#include "bench/matrix.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 16)) return 0;   // the cross product of grids grows fast; real matrices are < 10 KB
    char *text = fz_text(data, size);
    Matrix m;
    if (matrix_parse(text, "fuzz.json", &m) == 0) {
        for (int i = 0; i < m.ncells; i++) {
            const MxCell *c = &m.cells[i];
            if (!c->variant || !c->backbone || !c->task || c->argc <= 0 || c->argc > MX_MAXARGV) abort();
            for (int a = 0; a < c->argc; a++)
                if (!c->argv[a]) abort();
            matrix_cell_is_vl(&m, c);
        }
        if (m.ncells > 0 && matrix_find_cell(&m, m.cells[0].id) != &m.cells[0]) abort();
        matrix_free(&m);
    }
    free(text);
    return 0;
}
