/* Portable INT8 kernels (see kernels.h). Only target.h differs between host and GAP9. */
#include "kernels.h"

#include "target.h"

static inline int64_t rshr(int64_t v, int s) { return (v + ((int64_t)1 << (s - 1))) >> s; }
static inline int8_t sat8(int64_t v) { return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v); }
static inline int16_t sat16(int64_t v) {
  return (int16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
}
static inline int min_i(int a, int b) { return a < b ? a : b; }

/* Floor square root of a 64-bit value (bit-by-bit, no floating point). */
static uint64_t isqrt64(uint64_t v) {
  uint64_t r = 0, bit = (uint64_t)1 << 62;
  while (bit > v) bit >>= 2;
  while (bit) {
    if (v >= r + bit) { v -= r + bit; r = (r >> 1) + bit; } else { r >>= 1; }
    bit >>= 2;
  }
  return r;
}

/* ------------------------------------------------------------------ linear */

typedef struct {
  const int8_t *x; const int8_t *w; const int32_t *b; const int32_t *m; const int8_t *sh;
  void *y; int rows, k, cols, out_bytes;
} linear_tile_t;

static void linear_tile(void *arg) {
  const linear_tile_t *a = (const linear_tile_t *)arg;
  for (int r = tgt_core_id(); r < a->rows; r += tgt_num_cores()) {
    const int8_t *x = a->x + r * a->k;
    for (int j = 0; j < a->cols; j++) {
      const int8_t *w = a->w + j * a->k;
      int32_t acc = 0;
      for (int i = 0; i < a->k; i++) acc += (int32_t)x[i] * (int32_t)w[i];
      int64_t v = rshr(((int64_t)acc + a->b[j]) * a->m[j], a->sh[j]);
      if (a->out_bytes == 2) ((int16_t *)a->y)[r * a->cols + j] = sat16(v);
      else ((int8_t *)a->y)[r * a->cols + j] = sat8(v);
    }
  }
}

void k_linear(const int8_t *in, void *out, int n, int k, int m, int out_bytes,
              const linear_params_t *p, int tn, int tm, int8_t *l1) {
  /* L1 layout: weights [TM][K] | bias, m [TM] int32 | sh [TM] | 2 x in [TN][K] | out [TN][TM] */
  int8_t *lw = l1;
  int32_t *lb = (int32_t *)(lw + ((tm * k + 3) & ~3));
  int32_t *lm = lb + tm;
  int8_t *lsh = (int8_t *)(lm + tm);
  int8_t *lx[2];
  lx[0] = lsh + ((tm + 3) & ~3);
  lx[1] = lx[0] + tn * k;
  int8_t *ly = lx[1] + tn * k;
  for (int c0 = 0; c0 < m; c0 += tm) {
    int cols = min_i(tm, m - c0);
    tgt_dma_t h;
    tgt_dma_start(lw, (void *)(p->w + c0 * k), cols * k, 1, &h); tgt_dma_wait(&h);
    tgt_dma_start(lb, (void *)(p->b + c0), cols * 4, 1, &h); tgt_dma_wait(&h);
    tgt_dma_start(lm, (void *)(p->m + c0), cols * 4, 1, &h); tgt_dma_wait(&h);
    tgt_dma_start(lsh, (void *)(p->sh + c0), cols, 1, &h); tgt_dma_wait(&h);
    tgt_dma_t hx[2];
    int rows0 = min_i(tn, n);
    tgt_dma_start(lx[0], (void *)in, rows0 * k, 1, &hx[0]);
    for (int r0 = 0, t = 0; r0 < n; r0 += tn, t ^= 1) {
      int rows = min_i(tn, n - r0);
      tgt_dma_wait(&hx[t]);
      if (r0 + tn < n)  /* double buffering: fetch the next input tile during this one */
        tgt_dma_start(lx[t ^ 1], (void *)(in + (r0 + tn) * k), min_i(tn, n - r0 - tn) * k, 1,
                      &hx[t ^ 1]);
      linear_tile_t a = {lx[t], lw, lb, lm, lsh, ly, rows, k, cols, out_bytes};
      tgt_parallel(linear_tile, &a);
      tgt_dma_2d(ly, (int8_t *)out + ((int64_t)r0 * m + c0) * out_bytes, rows,
                 cols * out_bytes, m * out_bytes, 0);
    }
  }
}

/* --------------------------------------------------------------- layernorm */

typedef struct { const int8_t *x; int8_t *y; int rows, d; const ln_params_t *p; } ln_tile_t;

static void ln_tile(void *arg) {
  const ln_tile_t *a = (const ln_tile_t *)arg;
  const int d = a->d;
  for (int r = tgt_core_id(); r < a->rows; r += tgt_num_cores()) {
    const int8_t *x = a->x + r * d;
    int32_t sum = 0;
    for (int i = 0; i < d; i++) sum += x[i];
    int64_t ss = 0;
    for (int i = 0; i < d; i++) { int64_t xc = (int64_t)d * x[i] - sum; ss += xc * xc; }
    int64_t var = ss / d + a->p->eps;
    int64_t std = (int64_t)isqrt64((uint64_t)var << 16);
    if (std < 1) std = 1;
    int64_t inv = ((int64_t)1 << 47) / std;
    for (int i = 0; i < d; i++) {
      int64_t xc = (int64_t)d * x[i] - sum;
      int64_t nrm = rshr(xc * 256 * inv, 31);
      a->y[r * d + i] = sat8(rshr(nrm * a->p->g[i] + (int64_t)a->p->b[i] * 65536, 32));
    }
  }
}

void k_layernorm(const int8_t *in, int8_t *out, int n, int d, const ln_params_t *p, int tn,
                 int8_t *l1) {
  int8_t *lx = l1, *ly = l1 + tn * d;
  for (int r0 = 0; r0 < n; r0 += tn) {
    int rows = min_i(tn, n - r0);
    tgt_dma_t h;
    tgt_dma_start(lx, (void *)(in + r0 * d), rows * d, 1, &h); tgt_dma_wait(&h);
    ln_tile_t a = {lx, ly, rows, d, p};
    tgt_parallel(ln_tile, &a);
    tgt_dma_start(ly, out + r0 * d, rows * d, 0, &h); tgt_dma_wait(&h);
  }
}

/* -------------------------------------------------------------------- rope */

void k_rope(int8_t *qkv, int n, int d, int heads, int s, const int16_t *cos_tab,
            const int16_t *sin_tab) {
  const int dh = d / heads, half = dh / 2;
  for (int t = 0; t < n; t++) {
    const int16_t *c = cos_tab + (t % s) * half, *sn = sin_tab + (t % s) * half;
    for (int part = 0; part < 2; part++) {  /* q, then k */
      int8_t *v = qkv + t * 3 * d + part * d;
      for (int h = 0; h < heads; h++)
        for (int j = 0; j < half; j++) {
          int64_t e = v[h * dh + 2 * j], o = v[h * dh + 2 * j + 1];
          v[h * dh + 2 * j] = sat8(rshr(e * c[j] - o * sn[j], 14));
          v[h * dh + 2 * j + 1] = sat8(rshr(o * c[j] + e * sn[j], 14));
        }
    }
  }
}

/* --------------------------------------------------------------- attention */

typedef struct {
  const int8_t *q, *k, *v; int32_t *e; int8_t *y; int rows, n, dh;
  const attn_params_t *p;
} attn_tile_t;

static void attn_tile(void *arg) {
  const attn_tile_t *a = (const attn_tile_t *)arg;
  const attn_params_t *p = a->p;
  for (int r = tgt_core_id(); r < a->rows; r += tgt_num_cores()) {
    const int8_t *q = a->q + r * a->dh;
    int32_t *e = a->e + r * a->n;   /* scores, then exp values (Q24), then uint8 probs */
    int32_t mx = INT32_MIN;
    for (int j = 0; j < a->n; j++) {
      const int8_t *k = a->k + j * a->dh;
      int32_t acc = 0;
      for (int i = 0; i < a->dh; i++) acc += (int32_t)q[i] * (int32_t)k[i];
      e[j] = acc;
      if (acc > mx) mx = acc;
    }
    int64_t sum = 0;
    for (int j = 0; j < a->n; j++) {
      int64_t z = rshr((int64_t)(mx - e[j]) * p->sm_m, p->sm_sh);
      int64_t hi = z >> 12, val = 0;
      if (hi <= 20) {
        val = rshr((int64_t)p->exp_hi[hi] * p->exp_mid[(z >> 6) & 63], 15);
        val = rshr(val * p->exp_lo[z & 63], 15);
      }
      e[j] = (int32_t)val;
      sum += val;
    }
    int64_t inv = ((int64_t)1 << 56) / sum;
    uint8_t *pr = (uint8_t *)e;  /* probabilities overwrite the exp values in place */
    for (int j = 0; j < a->n; j++) pr[j] = (uint8_t)rshr(rshr((int64_t)e[j] * inv, 24) * 255, 32);
    for (int i = 0; i < a->dh; i++) {
      int32_t acc = 0;
      for (int j = 0; j < a->n; j++) acc += (int32_t)pr[j] * (int32_t)a->v[j * a->dh + i];
      a->y[r * a->dh + i] = sat8(rshr((int64_t)acc * p->pv_m, p->pv_sh));
    }
  }
}

void k_attention(const int8_t *qkv, int8_t *out, int n, int d, int heads,
                 const attn_params_t *p, int tq, int8_t *l1) {
  const int dh = d / heads;
  /* L1 layout: K [N][Dh] | V [N][Dh] | Q tile [TQ][Dh] | out tile [TQ][Dh] | e [TQ][N] int32 */
  int8_t *lk = l1, *lv = lk + n * dh, *lq = lv + n * dh, *ly = lq + tq * dh;
  int32_t *le = (int32_t *)(ly + ((tq * dh + 3) & ~3));
  for (int h = 0; h < heads; h++) {
    tgt_dma_2d(lk, (void *)(qkv + d + h * dh), n, dh, 3 * d, 1);
    tgt_dma_2d(lv, (void *)(qkv + 2 * d + h * dh), n, dh, 3 * d, 1);
    for (int r0 = 0; r0 < n; r0 += tq) {
      int rows = min_i(tq, n - r0);
      tgt_dma_2d(lq, (void *)(qkv + r0 * 3 * d + h * dh), rows, dh, 3 * d, 1);
      attn_tile_t a = {lq, lk, lv, le, ly, rows, n, dh, p};
      tgt_parallel(attn_tile, &a);
      tgt_dma_2d(ly, out + r0 * d + h * dh, rows, dh, d, 0);
    }
  }
}

/* ------------------------------------------------------------ elementwise */

void k_add(const int8_t *a, const int8_t *b, int8_t *out, int len, int64_t ma, int64_t mb,
           int sh, int te, int8_t *l1) {
  int8_t *la = l1, *lb = l1 + te;
  for (int i0 = 0; i0 < len; i0 += te) {
    int cnt = min_i(te, len - i0);
    tgt_dma_t h;
    tgt_dma_start(la, (void *)(a + i0), cnt, 1, &h); tgt_dma_wait(&h);
    tgt_dma_start(lb, (void *)(b + i0), cnt, 1, &h); tgt_dma_wait(&h);
    for (int i = 0; i < cnt; i++) la[i] = sat8(rshr(la[i] * ma + lb[i] * mb, sh));
    tgt_dma_start(la, out + i0, cnt, 0, &h); tgt_dma_wait(&h);
  }
}

void k_lut(int8_t *x, int len, const int8_t *lut, int te, int8_t *l1) {
  for (int i0 = 0; i0 < len; i0 += te) {
    int cnt = min_i(te, len - i0);
    tgt_dma_t h;
    tgt_dma_start(l1, x + i0, cnt, 1, &h); tgt_dma_wait(&h);
    for (int i = 0; i < cnt; i++) l1[i] = lut[l1[i] + 128];
    tgt_dma_start(l1, x + i0, cnt, 0, &h); tgt_dma_wait(&h);
  }
}

void k_pool(const int8_t *in, int8_t *out, int groups, int per_group, int d, int32_t m, int sh,
            int tn, int8_t *l1) {
  int32_t *acc = (int32_t *)l1;
  int8_t *lx = l1 + 4 * d;
  for (int g = 0; g < groups; g++) {
    for (int i = 0; i < d; i++) acc[i] = 0;
    for (int r0 = 0; r0 < per_group; r0 += tn) {
      int rows = min_i(tn, per_group - r0);
      tgt_dma_t h;
      tgt_dma_start(lx, (void *)(in + ((int64_t)g * per_group + r0) * d), rows * d, 1, &h);
      tgt_dma_wait(&h);
      for (int r = 0; r < rows; r++)
        for (int i = 0; i < d; i++) acc[i] += lx[r * d + i];
    }
    for (int i = 0; i < d; i++) out[g * d + i] = sat8(rshr((int64_t)acc[i] * m, sh));
  }
}
