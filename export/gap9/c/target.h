/* Target layer: the only place that knows whether we run on the host or on GAP9.
 *
 * Host build (default): one "core", plain memcpy for every DMA, L1/L2/L3 are ordinary arrays.
 * GAP9 build (-DTARGET_GAP9, GAP SDK / PMSIS): cluster fork over TGT_NUM_CORES compute cores,
 * cluster DMA for L2<->L1 and the RAM driver for L3->L2. The GAP9 branch follows the PMSIS API
 * but has not been run on hardware or GVSoC by this project (see README, "GAP SDK hand-off").
 */
#ifndef TINYMYO_TARGET_H
#define TINYMYO_TARGET_H

#include <stdint.h>
#include <string.h>

#ifdef TARGET_GAP9
#include "pmsis.h"
#define TGT_NUM_CORES 8
#define TGT_L1_ATTR PI_CL_L1
#define TGT_L2_ATTR PI_L2
static inline int tgt_core_id(void) { return pi_core_id(); }
static inline int tgt_num_cores(void) { return TGT_NUM_CORES; }
static inline void tgt_barrier(void) { pi_cl_team_barrier(); }
static inline void tgt_parallel(void (*fn)(void *), void *arg) {
  pi_cl_team_fork(TGT_NUM_CORES, fn, arg);
}
typedef pi_cl_dma_cmd_t tgt_dma_t;
/* L2 -> L1 (dir 1) or L1 -> L2 (dir 0), asynchronous; wait with tgt_dma_wait. */
static inline void tgt_dma_start(void *l1, void *l2, uint32_t bytes, int to_l1, tgt_dma_t *h) {
  pi_cl_dma_cmd((uint32_t)l2, (uint32_t)l1, bytes, to_l1 ? PI_CL_DMA_DIR_EXT2LOC
                                                         : PI_CL_DMA_DIR_LOC2EXT, h);
}
static inline void tgt_dma_wait(tgt_dma_t *h) { pi_cl_dma_cmd_wait(h); }
/* L3 (HyperRAM, address in the RAM device) -> L2, blocking. */
extern struct pi_device tgt_ram;
static inline void tgt_l3_read(void *l2, const void *l3, uint32_t bytes) {
  pi_cl_ram_req_t req;
  pi_cl_ram_read(&tgt_ram, (uint32_t)l3, l2, bytes, &req);
  pi_cl_ram_read_wait(&req);
}
#else
#define TGT_L1_ATTR
#define TGT_L2_ATTR
typedef int tgt_dma_t;
static inline int tgt_core_id(void) { return 0; }
static inline int tgt_num_cores(void) { return 1; }
static inline void tgt_barrier(void) {}
static inline void tgt_parallel(void (*fn)(void *), void *arg) { fn(arg); }
static inline void tgt_dma_start(void *l1, void *l2, uint32_t bytes, int to_l1, tgt_dma_t *h) {
  if (to_l1) memcpy(l1, l2, bytes); else memcpy(l2, l1, bytes);
  *h = 0;
}
static inline void tgt_dma_wait(tgt_dma_t *h) { (void)h; }
static inline void tgt_l3_read(void *l2, const void *l3, uint32_t bytes) { memcpy(l2, l3, bytes); }
#endif

/* 2-D copy of `rows` rows of `row_bytes` between strided L2 and dense L1 (blocking). */
static inline void tgt_dma_2d(void *l1, void *l2, uint32_t rows, uint32_t row_bytes,
                              uint32_t l2_stride, int to_l1) {
  tgt_dma_t h;
  for (uint32_t r = 0; r < rows; r++) {
    tgt_dma_start((int8_t *)l1 + r * row_bytes, (int8_t *)l2 + r * l2_stride, row_bytes, to_l1,
                  &h);
    tgt_dma_wait(&h);
  }
}

#endif
