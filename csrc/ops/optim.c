/* optim.c: fused optimiser updates with PyTorch semantics. */
#include "ops.h"
#include "../core/cpu.h"
#include <math.h>

/* AdamW (torch.optim.AdamW): p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps) */
OE_SIMD_CLONES
void oe_adamw_step(float *p, const float *g, float *m, float *v, int64_t n, double lr_d, double beta1_d, double beta2_d,
                   double eps_d, double wd_d, int64_t step) {
  /* scalars in double as PyTorch computes them in Python, then rounded once */
  double bc1 = 1.0 - pow(beta1_d, (double)step), bc2 = 1.0 - pow(beta2_d, (double)step);
  float eps = (float)eps_d;
  float beta1 = (float)beta1_d, beta2 = (float)beta2_d;
  float one_m_b1 = (float)(1.0 - beta1_d), one_m_b2 = (float)(1.0 - beta2_d);
  float step_size = (float)(lr_d / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  float decay = (float)(1.0 - lr_d * wd_d);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    p[i] *= decay;
    m[i] = beta1 * m[i] + one_m_b1 * gi;
    v[i] = beta2 * v[i] + one_m_b2 * gi * gi;
    float denom = sqrtf(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * m[i] / denom;
  }
}

/* SGD (torch.optim.SGD): d = g + wd p; buf = momentum buf + (1 - dampening) d (buf = d at first);
 * d = nesterov ? d + momentum buf : buf; p -= lr d */
OE_SIMD_CLONES
void oe_sgd_step(float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float dampening,
                 float wd, int nesterov, int first) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    if (momentum != 0.0f) {
      buf[i] = first ? d : momentum * buf[i] + (1.0f - dampening) * d;
      d = nesterov ? d + momentum * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  }
}
