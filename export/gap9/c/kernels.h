/* Portable INT8 kernels of the TinyMyo classifier; bit-exact with export/gap9/int_reference.py.
 *
 * Every layer function takes its operands in L2, streams tiles through the L1 scratch `l1`
 * (at most `l1_bytes`) with the target layer's DMA, and forks the compute over the cluster.
 * Rounding: rshr(v, s) = (v + 2^(s-1)) >> s (half up); saturation to the output type.
 */
#ifndef TINYMYO_KERNELS_H
#define TINYMYO_KERNELS_H

#include <stdint.h>

typedef struct {
  const int8_t *w;   /* [M][K], row j = output column j */
  const int32_t *b;  /* [M] */
  const int32_t *m;  /* [M] requant multipliers */
  const int8_t *sh;  /* [M] requant shifts */
} linear_params_t;

typedef struct {
  const int32_t *g;  /* [D] gamma / s_out, Q16 */
  const int32_t *b;  /* [D] beta / s_out, Q16 */
  int64_t eps;       /* round(D^2 eps / s_in^2) */
} ln_params_t;

typedef struct {
  const int32_t *exp_hi;  /* [21] Q24 */
  const int32_t *exp_mid; /* [64] Q15 */
  const int32_t *exp_lo;  /* [64] Q15 */
  int32_t sm_m; int32_t sm_sh;  /* scores -> 2^-12 nat units */
  int32_t pv_m; int32_t pv_sh;  /* P.V accumulator -> int8 */
} attn_params_t;

/* Linear: in [N][K] int8 -> out [N][M] (int8, or int16 when out_bytes == 2); tile TN x TM. */
void k_linear(const int8_t *in, void *out, int n, int k, int m, int out_bytes,
              const linear_params_t *p, int tn, int tm, int8_t *l1);
/* LayerNorm over D of each of N rows, int8 -> int8; TN rows per tile. */
void k_layernorm(const int8_t *in, int8_t *out, int n, int d, const ln_params_t *p, int tn,
                 int8_t *l1);
/* Integer RoPE in place on the q and k parts of qkv [N][3D] (time index t = n mod S). */
void k_rope(int8_t *qkv, int n, int d, int heads, int s, const int16_t *cos_tab,
            const int16_t *sin_tab);
/* Multi-head attention on qkv [N][3D] -> out [N][D]; per head K and V sit in L1, TQ query rows
 * per tile. */
void k_attention(const int8_t *qkv, int8_t *out, int n, int d, int heads,
                 const attn_params_t *p, int tq, int8_t *l1);
/* out = sat8(rshr(a*ma + b*mb, sh)) elementwise; TE elements per tile. */
void k_add(const int8_t *a, const int8_t *b, int8_t *out, int len, int64_t ma, int64_t mb,
           int sh, int te, int8_t *l1);
/* In-place 256-entry lookup table (GELU) over len int8 values; TE elements per tile. */
void k_lut(int8_t *x, int len, const int8_t *lut, int te, int8_t *l1);
/* Mean pooling: concat (groups = C: sum over the S tokens of each channel, output [C*D]) or
 * mean (groups = 1: sum over all tokens, output [D]); requant to int8. */
void k_pool(const int8_t *in, int8_t *out, int groups, int per_group, int d, int32_t m, int sh,
            int tn, int8_t *l1);

#endif
