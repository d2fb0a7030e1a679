// The figure columns of `petl table`: to add one, add its entry here (and, for a new quantity,
// its field in ResRec and ResCost and the line of results.c that reads it from a record).
#include "bench/columns.h"

#define C(f) offsetof(ResCost, f)
#define R(f) offsetof(ResRec, f)

// Order: the columns' order in every format. Entries with no header, CSV name or JSON key are
// figures aggregated for petl plot only.
const ResCol res_cols[] = {
    // ---- cost, over a row's ok records
    {.name = "params_min", .sec = COL_COST, .md_img = "trainable params", .md_vl = "trainable params", .csv = "params_min",
     .json = "params_min", .fmt = COL_FMT_RANGE, .agg = COL_AGG_MIN, .off = C(params_min), .off2 = C(params_max),
     .rec_off = R(params)},
    {.name = "params_max", .sec = COL_COST, .csv = "params_max", .json = "params_max", .agg = COL_AGG_MAX,
     .off = C(params_max), .rec_off = R(params)},
    {.name = "params_mean", .sec = COL_COST, .agg = COL_AGG_MEAN, .off = C(params_mean), .rec_off = R(params)},
    {.name = "params_pct", .sec = COL_COST, .md_img = "% of backbone", .md_vl = "% of backbone",
     .csv = "params_percent_of_backbone", .json = "params_percent_of_backbone", .fmt = COL_FMT_G4, .agg = COL_AGG_MEAN,
     .off = C(pct_mean), .rec_off = R(params_pct)},
    {.name = "params_head", .sec = COL_COST, .agg = COL_AGG_MEAN, .off = C(head_mean), .rec_off = R(params_head)},
    {.name = "delta", .sec = COL_COST, .md_img = "delta (KiB)", .csv = "delta_bytes", .json = "delta_bytes",
     .fmt = COL_FMT_KIB, .agg = COL_AGG_MEAN, .off = C(delta_mean), .rec_off = R(delta_bytes)},
    {.name = "backbone_params", .sec = COL_COST, .agg = COL_AGG_MEAN, .off = C(backbone_params), .rec_off = R(backbone_params)},
    {.name = "memory", .sec = COL_COST, .md_img = "peak train memory (MiB)", .md_vl = "peak train memory (MiB)",
     .csv = "peak_memory_bytes", .json = "peak_memory_bytes", .fmt = COL_FMT_MIB, .agg = COL_AGG_MAX, .off = C(mem_max),
     .rec_off = R(mem_peak)},
    {.name = "rss", .sec = COL_COST, .md_img = "peak RSS (MiB)", .csv = "peak_rss_bytes", .json = "peak_rss_bytes",
     .fmt = COL_FMT_MIB, .agg = COL_AGG_MAX, .off = C(rss_max), .rec_off = R(rss_peak)},
    {.name = "train_flops", .sec = COL_COST, .md_img = "train FLOPs / cell", .md_vl = "train FLOPs", .csv = "train_flops",
     .json = "train_flops", .fmt = COL_FMT_SI, .agg = COL_AGG_MEAN, .off = C(train_flops_mean), .rec_off = R(train_flops)},
    {.name = "infer_flops", .sec = COL_COST, .md_img = "inference FLOPs / image", .csv = "inference_flops_per_@",
     .json = "inference_flops_per_@", .fmt = COL_FMT_SI, .agg = COL_AGG_MEAN, .off = C(infer_flops_mean),
     .rec_off = R(infer_flops)},
    {.name = "train_ips", .sec = COL_COST, .md_img = "train img/s", .csv = "train_@s_per_s", .json = "train_@s_per_s",
     .fmt = COL_FMT_RATE, .agg = COL_AGG_MEAN, .off = C(train_ips_mean), .rec_off = R(train_ips)},
    {.name = "infer_ips", .sec = COL_COST, .md_img = "inference img/s", .csv = "inference_@s_per_s",
     .json = "inference_@s_per_s", .fmt = COL_FMT_RATE, .agg = COL_AGG_MEAN, .off = C(infer_ips_mean),
     .rec_off = R(infer_ips)},
    {.name = "wall", .sec = COL_COST, .agg = COL_AGG_MEAN, .off = C(wall_mean), .rec_off = R(wall_s)},
    // ---- final model, over the ok records with rec.final
    {.name = "final_records", .sec = COL_FINAL, .json = "records", .is_int = 1, .off = C(nfinal)},
    {.name = "final_sparsity", .sec = COL_FINAL, .md_img = "final sparsity (%)", .csv = "final_sparsity",
     .json = "sparsity", .fmt = COL_FMT_PERCENT, .agg = COL_AGG_MEAN, .off = C(final_sparsity),
     .rec_off = R(final_sparsity)},
    {.name = "final_nonzero", .sec = COL_FINAL, .md_img = "nonzero params", .csv = "final_params_nonzero",
     .json = "params_nonzero", .fmt = COL_FMT_COUNT, .agg = COL_AGG_MEAN, .off = C(final_nonzero),
     .rec_off = R(final_nonzero)},
    {.name = "final_dense_bytes", .sec = COL_FINAL, .md_img = "stored dense (KiB)", .csv = "final_stored_dense_bytes",
     .json = "stored_dense_bytes", .fmt = COL_FMT_KIB, .agg = COL_AGG_MEAN, .off = C(final_dense_bytes),
     .rec_off = R(final_dense_bytes)},
    {.name = "final_sparse_bytes", .sec = COL_FINAL, .md_img = "stored CSR (KiB)", .csv = "final_stored_sparse_bytes",
     .json = "stored_sparse_bytes", .fmt = COL_FMT_KIB, .agg = COL_AGG_MEAN, .off = C(final_sparse_bytes),
     .rec_off = R(final_sparse_bytes)},
    {.name = "final_int8_bytes", .sec = COL_FINAL, .md_img = "stored int8 (KiB)", .csv = "final_stored_int8_bytes",
     .json = "stored_int8_bytes", .fmt = COL_FMT_KIB, .agg = COL_AGG_MEAN, .off = C(final_int8_bytes),
     .rec_off = R(final_int8_bytes)},
    {.name = "final_smallest_bytes", .sec = COL_FINAL, .csv = "final_stored_smallest_bytes", .json = "stored_smallest_bytes",
     .agg = COL_AGG_MEAN, .off = C(final_smallest_bytes), .rec_off = R(final_smallest_bytes)},
    {.name = "final_flops", .sec = COL_FINAL, .md_img = "inference FLOPs / image, zeros skipped",
     .csv = "final_inference_flops_per_@", .json = "inference_flops_per_@", .fmt = COL_FMT_SI, .agg = COL_AGG_MEAN,
     .off = C(final_flops), .rec_off = R(final_flops)},
    {.name = "final_kernel", .sec = COL_FINAL, .md_img = "kernel", .fmt = COL_FMT_KERNEL},
    {.name = "final_ips", .sec = COL_FINAL, .md_img = "img/s", .csv = "final_inference_@s_per_s",
     .json = "inference_@s_per_s", .fmt = COL_FMT_RATE, .agg = COL_AGG_MEAN, .off = C(final_ips), .rec_off = R(final_ips)},
    {.name = "final_dense_ips", .sec = COL_FINAL, .md_img = "dense img/s", .csv = "final_dense_inference_@s_per_s",
     .json = "dense_inference_@s_per_s", .fmt = COL_FMT_RATE, .agg = COL_AGG_MEAN, .off = C(final_dense_ips),
     .rec_off = R(final_dense_ips)},
    {.name = "final_csr_records", .sec = COL_FINAL, .json = "csr_records", .is_int = 1, .off = C(final_ncsr)},
};
const int res_ncols = sizeof res_cols / sizeof res_cols[0];

double res_col_value(const ResCol *c, const ResCost *k) {
    const char *p = (const char *)k + c->off;
    return c->is_int ? *(const int *)p : *(const double *)p;
}
