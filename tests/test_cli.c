// The petl command on bad input: a truncated safetensors file, a header whose offsets point past
// the end, a wrong tensor shape, a file that is not an image, an unknown option or method, a
// method aimed at a site the backbone lacks. Each must exit non-zero with a message that names
// the file (or option) and what was wrong, and never crash (exit by signal).
#include <cjson/cJSON.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/safetensors.h"
#include "test.h"


static void expect_error(const char *what, const char *cmd, const char *needle1, const char *needle2) {
    char out[8192];
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc != 0 && rc < 128, "%s: exit %d (want a clean non-zero exit)\n%s", what, rc, out);
    CHECK(strstr(out, needle1) != NULL, "%s: message lacks '%s': %s", what, needle1, out);
    if (needle2) CHECK(strstr(out, needle2) != NULL, "%s: message lacks '%s': %s", what, needle2, out);
}

static long fsize(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void copy_prefix(const char *src, const char *dst, long n) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    char *buf = malloc(n);
    size_t got = fread(buf, 1, n, a);
    fwrite(buf, 1, got, b);
    free(buf);
    fclose(a);
    fclose(b);
}

int main(void) {
    if (system("mkdir -p " TEST_TMP) != 0) return 1;
    char cmd[1024];
    const char *good = "tests/ref/vit_tiny.safetensors";
    long n = fsize(good);

    // truncated checkpoint: at several cut points
    long cuts[] = {4, 100, n / 2, n - 1};
    for (int i = 0; i < 4; i++) {
        copy_prefix(good, TEST_TMP "/trunc.safetensors", cuts[i]);
        snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s/trunc.safetensors tests/ref/img0.png", petl_bin(), TEST_TMP);
        expect_error("truncated checkpoint", cmd, "trunc.safetensors", NULL);
    }
    // offsets past the end: a hand-made header
    {
        const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,4000]}}";
        FILE *f = fopen(TEST_TMP "/offsets.safetensors", "wb");
        unsigned long long L = strlen(hdr);
        fwrite(&L, 8, 1, f);
        fwrite(hdr, 1, L, f);
        float z[4] = {0};
        fwrite(z, sizeof z, 1, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s/offsets.safetensors tests/ref/img0.png", petl_bin(), TEST_TMP);
        expect_error("offsets past the end", cmd, "offsets.safetensors", NULL);
    }
    // a wrong shape: qkv of block 1 with one row too few
    {
        StFile f;
        CHECK(st_open(&f, good) == 0, "%s", nn_err());
        StWriter *w = st_writer_new();
        for (int i = 0; i < f.n; i++) {
            const StEntry *e = &f.e[i];
            float *d = malloc(sizeof(float) * e->numel);
            st_read_f32(&f, e, d);
            int shape[8];
            for (int k = 0; k < e->ndim; k++) shape[k] = (int)e->shape[k];
            if (!strcmp(e->name, "blocks.1.attn.qkv.weight")) shape[0] -= 1;
            st_writer_add(w, e->name, e->ndim, shape, d);
            free(d);
        }
        for (int i = 0; i < f.nmeta; i++) st_writer_meta(w, f.meta_keys[i], f.meta_vals[i]);
        CHECK(st_writer_save(w, TEST_TMP "/shape.safetensors") == 0, "%s", nn_err());
        st_writer_free(w);
        st_close(&f);
        snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s/shape.safetensors tests/ref/img0.png", petl_bin(), TEST_TMP);
        expect_error("wrong shape", cmd, "blocks.1.attn.qkv.weight", "expected");
    }
    // not an image
    {
        FILE *f = fopen(TEST_TMP "/fake.png", "wb");
        fputs("this is not a png at all", f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s %s/fake.png", petl_bin(), good, TEST_TMP);
        expect_error("not an image", cmd, "fake.png", NULL);
    }
    // missing checkpoint
    snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s/none.safetensors tests/ref/img0.png", petl_bin(), TEST_TMP);
    expect_error("missing checkpoint", cmd, "none.safetensors", NULL);
    // options and methods
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b16 --bogus 3", petl_bin());
    expect_error("unknown option", cmd, "--bogus", NULL);
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b99", petl_bin());
    expect_error("unknown preset", cmd, "vit-b99", NULL);
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b16 --method lora --method-args targets=q+attn", petl_bin());
    expect_error("site the backbone lacks", cmd, "attn", NULL);
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b16 --method lora --method-args rank=4", petl_bin());
    expect_error("unknown method argument", cmd, "rank", NULL);
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b16 --method nosuch", petl_bin());
    expect_error("unknown method", cmd, "nosuch", NULL);
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b16 --image-size 100", petl_bin());
    expect_error("image size not a multiple of the patch", cmd, "100", NULL);
    snprintf(cmd, sizeof cmd, "%s nosuchcommand", petl_bin());
    expect_error("unknown command", cmd, "nosuchcommand", NULL);

    // good paths print what they should (methods --json is over 8 KB: a short read would close
    // the pipe early and kill petl with SIGPIPE)
    static char out[1 << 16];
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-b16 --json", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, "\"backbone\":\t85798656"), "info --json: %s", out);
    snprintf(cmd, sizeof cmd, "%s methods --json", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, "\"lora\""), "methods --json");
    {   // every entry lists the backbones it serves (issue 12): lst serves both, vpt_deep the ViT only
        cJSON *ms = cJSON_Parse(out);
        int entries = 0, listed = 0, lst_both = 0, vpt_vit = 0;
        for (cJSON *e = ms ? ms->child : NULL; e; e = e->next, entries++) {
            cJSON *b = cJSON_GetObjectItem(e, "backbones");
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
            listed += cJSON_IsArray(b) && cJSON_GetArraySize(b) > 0;
            int n = cJSON_GetArraySize(b);
            const char *b0 = n > 0 ? cJSON_GetStringValue(cJSON_GetArrayItem(b, 0)) : "";
            const char *b1 = n > 1 ? cJSON_GetStringValue(cJSON_GetArrayItem(b, 1)) : "";
            if (nm && !strcmp(nm, "lst")) lst_both = n == 2 && !strcmp(b0, "vit") && !strcmp(b1, "vl");
            if (nm && !strcmp(nm, "vpt_deep")) vpt_vit = n == 1 && !strcmp(b0, "vit");
        }
        CHECK(entries >= 20 && listed == entries && lst_both && vpt_vit,
              "methods --json: %d entries, %d with backbones, lst [vit, vl] %d, vpt_deep [vit] %d", entries, listed,
              lst_both, vpt_vit);
        cJSON_Delete(ms);
    }
    // a VL backbone: the text model's parameters (closed form, counted by hand for vl-tiny with
    // a 2000-token vocabulary) and the cost of one example
    {
        // embed 2000*128, positions (64 + 32)*128, visual proj 128*128+128, box 4*128+128, LN 256;
        // encoder layer: LN 256 + 4 linears (128*128+128) + LN 256 + fc1 128*512+512 + fc2 512*128+128;
        // decoder layer: the same + cross-attention LN 256 + 4 linears; final LNs 2*256
        long emb = 2000L * 128 + 96L * 128, vis = 128L * 128 + 128 + 4 * 128 + 128 + 256;
        long lin = 128L * 128 + 128, ffn = 128L * 512 + 512 + 512L * 128 + 128;
        long enc = 256 + 4 * lin + 256 + ffn, dec = enc + 256 + 4 * lin;
        long want = emb + vis + 3 * enc + 3 * dec + 2 * 256;
        char w[64];
        snprintf(w, sizeof w, "\"parameters\":\t%ld", want);
        snprintf(cmd, sizeof cmd, "%s info --backbone vl-tiny --json", petl_bin());
        CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, w) && strstr(out, "\"image_encoder_flops\""),
              "info vl-tiny: want %s in %s", w, out);
        snprintf(cmd, sizeof cmd, "%s info --backbone vl-huge", petl_bin());
        expect_error("unknown VL preset", cmd, "vl-huge", NULL);
        snprintf(cmd, sizeof cmd, "%s info --backbone vl-tiny --enc-len 999", petl_bin());
        expect_error("VL example too long", cmd, "--enc-len", NULL);
    }
    TEST_END();
}
