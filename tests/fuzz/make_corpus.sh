#!/bin/sh
# Writes the seed corpora of tests/fuzz/corpus/ (committed; this script says where each seed
# came from). Seeds are small valid inputs, plus a few with typical mistakes. Inputs kept as
# regressions (regress-*) are not touched. Needs python3, cc and libstb-dev.
set -e
cd "$(dirname "$0")/../.."
C=tests/fuzz/corpus
R=tests/ref
for t in safetensors npz img list matrix tokenizer vl; do
  mkdir -p $C/$t
  find $C/$t -type f ! -name 'regress-*' -delete
done

# ---------------------------------------------------------------- safetensors and npz
python3 - "$C" <<'EOF'
import io, json, struct, sys, zipfile
C = sys.argv[1]
def st(path, tensors, meta=None):
    hdr, blob = {}, b""
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if meta: hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + blob)
f32 = lambda *v: struct.pack("<%df" % len(v), *v)
st(C + "/safetensors/f32_meta.safetensors", [("w", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)), ("b", "F32", [3], f32(0, -1, 2.5))],
   {"format": "pt", "petl.config": "{\"dim\": 3}"})
st(C + "/safetensors/dtypes.safetensors", [
    ("h", "F16", [2], struct.pack("<2e", 1.5, -2)), ("bf", "BF16", [2], b"\x80\x3f\x00\xc0"),
    ("d", "F64", [1, 2], struct.pack("<2d", 3.25, 1e-300)), ("i", "I64", [2], struct.pack("<2q", 7, -1)),
    ("i32", "I32", [1], struct.pack("<i", 9)), ("u", "U8", [3], b"\x01\x02\xff"), ("i8", "I8", [1], b"\x80"),
    ("m", "BOOL", [2], b"\x00\x01")])
st(C + "/safetensors/scalar_empty.safetensors", [("s", "F32", [], f32(42)), ("z", "F32", [0, 4], b"")])
st(C + "/safetensors/nested.safetensors", [("blocks.0.attn.qkv.weight", "F32", [1, 1, 1, 1], f32(1))])

def npy(dtype, shape, raw, fortran=False):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (dtype, fortran, tuple(shape))
    h = d.encode()
    h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + raw
arrays = {"w.npy": npy("<f4", [2, 2], f32(1, 2, 3, 4)), "d.npy": npy("<f8", [3], struct.pack("<3d", 1, 2, 3)),
          "h.npy": npy("<f2", [1], struct.pack("<e", 0.5)), "i.npy": npy("<i8", [], struct.pack("<q", 5)),
          "f.npy": npy("<f4", [2, 1], f32(1, 2), True), "Transformer/encoder_norm/scale.npy": npy("<f4", [2], f32(1, 1))}
for name, comp in (("stored.npz", zipfile.ZIP_STORED), ("deflated.npz", zipfile.ZIP_DEFLATED)):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", comp) as z:
        for k, v in arrays.items(): z.writestr(k, v)
    open(C + "/npz/" + name, "wb").write(b.getvalue())
EOF
cp $R/small.npz $R/small_compressed.npz $C/npz/

# ---------------------------------------------------------------- images
cp $R/img0.png $C/img/rgb.png
# JPEG, TGA, BMP and HDR through stb_image_write (libstb-dev); PNG variants, PNM and GIF by hand
gen=$(mktemp -d)
cat >$gen/w.c <<'EOF'
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
int main(int argc, char **argv) {
    unsigned char px[5 * 4 * 4];
    float hf[5 * 4 * 3];
    for (int i = 0; i < 5 * 4 * 4; i++) px[i] = (unsigned char)(i * 37 + 11);
    for (int i = 0; i < 5 * 4 * 3; i++) hf[i] = i / 7.0f;
    char p[512];
#define P(n) (snprintf(p, sizeof p, "%s/%s", argv[1], n), p)
    stbi_write_jpg(P("rgb.jpg"), 5, 4, 3, px, 90);
    stbi_write_jpg(P("gray.jpg"), 5, 4, 1, px, 50);
    stbi_write_tga_with_rle = 0;
    stbi_write_tga(P("rgba.tga"), 5, 4, 4, px);
    stbi_write_tga_with_rle = 1;
    stbi_write_tga(P("rle.tga"), 5, 4, 3, px);
    stbi_write_bmp(P("rgb.bmp"), 5, 4, 3, px);
    stbi_write_hdr(P("rgb.hdr"), 5, 4, 3, hf);
    return argc < 2;
}
EOF
cc -O1 -I/usr/include/stb -o $gen/w $gen/w.c -lm
$gen/w $C/img
rm -rf $gen
python3 - "$C/img" <<'EOF'
import struct, sys, zlib
D = sys.argv[1]
W, H = 5, 4
px = lambda c: bytes((i * 37 + 11) & 255 for i in range(W * H * c))
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
def png(name, ct, depth, rows, extra=b""):
    ihdr = struct.pack(">IIBBBBB", W, H, depth, ct, 0, 0, 0)
    raw = b"".join(b"\0" + r for r in rows)
    open(D + "/" + name, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
                                     chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def rows(bpr): p = px(bpr); return [p[i * bpr:(i + 1) * bpr] for i in range(H)]
png("gray.png", 0, 8, rows(W))
png("gray_alpha.png", 4, 8, rows(2 * W))
png("rgba.png", 6, 8, rows(4 * W))
png("rgb16.png", 2, 16, rows(6 * W))
png("gray1.png", 0, 1, rows(1))
png("palette_trns.png", 3, 8, [bytes(i % 3 for i in range(W))] * H,
    chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])) + chunk(b"tRNS", bytes([0, 128])))
png("gray_trns.png", 0, 8, rows(W), chunk(b"tRNS", b"\x00\x0b"))
g = px(1)
open(D + "/gray.pgm", "wb").write(b"P5\n# a comment\n%d %d\n255\n" % (W, H) + g)
open(D + "/rgb.ppm", "wb").write(b"P6\n%d %d\n255\n" % (W, H) + px(3))
open(D + "/ascii.ppm", "wb").write(b"P3\n%d %d\n255\n" % (W, H) + b" ".join(b"%d" % v for v in px(3)) + b"\n")
open(D + "/mono.pbm", "wb").write(b"P1\n%d %d\n" % (W, H) + b"0 1 1 0 1\n" * H)
# GIF, 4 colours: LZW with a clear code every 2 pixels, so every code stays 3 bits wide
codes = []
for i in range(W * H):
    if i % 2 == 0: codes.append(4)
    codes.append(g[i] & 3)
codes.append(5)
bits = acc = 0
out = bytearray()
for c in codes:
    acc |= c << bits
    bits += 3
    while bits >= 8:
        out.append(acc & 255)
        acc >>= 8
        bits -= 8
if bits: out.append(acc & 255)
data = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255)) + b"\0"
pal = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
open(D + "/pal.gif", "wb").write(b"GIF89a" + struct.pack("<HHBBB", W, H, 0x81, 0, 0) + pal +
                                 b"\x21\xf9\x04\x01\x00\x00\x02\x00" + b"," + struct.pack("<HHHHB", 0, 0, W, H, 0) +
                                 b"\x02" + data + b";")
EOF

# ---------------------------------------------------------------- list files (fuzz_list.c: byte 0 = layout)
printf '\0000.jpg 0\n1.png 1\na b.jpg 2\nsub/2.jpg 1\n' >$C/list/vtab_train800
printf '\0040.jpg 3\n1.png 0\n' >$C/list/vtab_test
printf '\0020.jpg x\nmissing.jpg 0\n0.jpg 0\n0.jpg 1\n/abs.jpg 0\n\n   \n1.png -1\none_field\n1.png 99999999999999999999\n' \
  >$C/list/vtab_skip_bad
printf '\0100.jpg 0\n1.png 46\na b.jpg\t12\n' >$C/list/vtab_known_task
printf '\0000.jpg 0\n1.png 1\n\000cat\ndog\n\n' >$C/list/vtab_classes
printf '\0010.jpg 0\nsub/2.jpg 1\na b.jpg 0\n' >$C/list/fewshot_shot
printf '\005\357\273\2770.jpg 0\r\na b.jpg 1\r\n' >$C/list/fewshot_val_bom_crlf
printf '\0030.jpg 5\n1.png 0\n\000a\nb\n' >$C/list/fewshot_classes_skip

# ---------------------------------------------------------------- matrices and tokenizers
for m in quick control structured-hard pilot-lr-vl; do cp bench/matrices/$m.json $C/matrix/; done
cp $R/tok/*.json $C/tokenizer/
cp models/vl-tiny.tokenizer.json $C/tokenizer/petl_bpe.json

# ---------------------------------------------------------------- VL files (fuzz_vl.c: byte 0 = reader)
V=$R/vl
vl() { { printf "$1"; shift; cat "$@"; } >"$OUT"; }
OUT=$C/vl/vqav2_questions vl '\000' $V/vqav2/v2_OpenEnded_mscoco_val2014_questions.json
OUT=$C/vl/vqav2_annotations vl '\021' $V/vqav2/v2_OpenEnded_mscoco_val2014_questions.json
printf '\000' >>$C/vl/vqav2_annotations
cat $V/vqav2/v2_mscoco_val2014_annotations.json >>$C/vl/vqav2_annotations
OUT=$C/vl/vqav2_bad_conf vl '\011' $V/vqav2/v2_OpenEnded_mscoco_val2014_questions.json
printf '\000' >>$C/vl/vqav2_bad_conf
cat $V/bad/vqa_bad_conf.json >>$C/vl/vqav2_bad_conf
OUT=$C/vl/gqa vl '\002' $V/gqa/val_balanced_questions.json
OUT=$C/vl/gqa_wrong_type vl '\012' $V/bad/gqa_wrong_type.json
OUT=$C/vl/nlvr2 vl '\023' $V/nlvr2/dev.json
OUT=$C/vl/nlvr2_bad_line vl '\013' $V/bad/nlvr2_bad_line.json
OUT=$C/vl/coco_captions vl '\024' $V/coco/annotations/captions_val2014.json
OUT=$C/vl/coco_unknown_image vl '\014' $V/bad/cap_unknown_image.json
OUT=$C/vl/karpathy_all vl '\005' $V/coco/dataset_coco.json
OUT=$C/vl/karpathy_train_restval vl '\125' $V/coco/dataset_coco.json
OUT=$C/vl/karpathy_raw_number vl '\015' $V/bad/karpathy_raw_number.json
du -sh $C
