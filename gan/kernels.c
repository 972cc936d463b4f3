/* Training-mode BatchNorm fused with the (leaky) ReLU after it, for bf16 channels-last CPU
 * tensors: gan/fused.py compiles this file with the system's gcc and calls it through ctypes.
 *
 * A channels-last (B, C, H, W) tensor is a row-major (M, C) matrix, M = B*H*W: every loop runs
 * over rows and, within a row, over the C contiguous channels (the loop gcc vectorises). Each
 * pass reads the tensors once; OpenMP threads split the rows (the process's libgomp, torch's).
 * Sums are fp32 within blocks of ROWS rows, fp64 across blocks and threads, and threads' partial
 * sums are added in thread order.
 *
 * Forward:  z = x * scale + shift, scale = w * invstd, shift = b - mean * scale,
 *           y = z > 0 ? z : slope * z                       (slope 0: ReLU)
 * Backward: dz = z > 0 ? dy : slope * dy                     (z recomputed from x, same code)
 *           dx = scale * (dz - mean(dz) - (x - mean) * invstd^2 * mean(dz * (x - mean)))
 *           dw = invstd * sum(dz * (x - mean)), db = sum(dz)
 * Returns 0, or 1 when out of memory (nothing written then).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 64

static inline float bf16_to_float(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* round to nearest even; NaN stays NaN (as torch's conversion) */
static inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t rounded = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)0x7fc0 : rounded;
}

static inline float activate(float z, float slope) { return z > 0.0f ? z : slope * z; }

/* the gradient through the activation, from the pre-activation z */
static inline float activate_grad(float z, float dy, float slope) { return z > 0.0f ? dy : slope * dy; }

/* scale and shift of the affine map, from the saved fp32 mean and invstd: the forward and the
 * backward both call this, so they compute the same z */
static void affine(int64_t c, const float *w, const float *b, const float *mean,
                   const float *invstd, float *scale, float *shift) {
    for (int64_t j = 0; j < c; j++) {
        scale[j] = w[j] * invstd[j];
        shift[j] = b[j] - mean[j] * scale[j];
    }
}

/* Rows taken together as one line of the loops: short rows (few channels) make short inner loops
 * that gcc's vectors barely fill (16 channels: backward 8x slower than 64), so lines of at least
 * 256 values are used where the rows divide evenly; per-channel arrays are then repeated
 * (`widen`) and per-line sums folded back (`fold`). */
static int64_t rows_per_line(int64_t m, int64_t c) {
    int64_t r = 1;
    while (r * c < 256 && m % (2 * r) == 0) r *= 2;
    return r;
}

static void widen(int64_t c, int64_t r, const float *src, float *dst) {
    for (int64_t i = 0; i < r; i++) memcpy(dst + i * c, src, (size_t)c * sizeof(float));
}

static void fold(int64_t c, int64_t r, const double *wide, double *out) {
    for (int64_t j = 0; j < c; j++) {
        out[j] = 0.0;
        for (int64_t i = 0; i < r; i++) out[j] += wide[i * c + j];
    }
}

static inline void add_block(int64_t c, float *block1, float *block2, double *sum1, double *sum2) {
    for (int64_t j = 0; j < c; j++) {
        sum1[j] += block1[j];
        sum2[j] += block2[j];
        block1[j] = 0.0f;
        block2[j] = 0.0f;
    }
}

/* Two per-channel sums over all rows: of f1 and f2, where (f1, f2) are
 *   STATS:     (x - origin, (x - origin)^2)               origin = row 0 of x
 *   GRADIENT:  (dz, dz * (x - mean))
 * into sum1[C], sum2[C] (fp64). */
enum sums { STATS, GRADIENT };

static int channel_sums(enum sums kind, const uint16_t *x, const uint16_t *dy, int64_t m,
                        int64_t c, const float *origin, const float *scale, const float *shift,
                        float slope, int threads, double *sum1, double *sum2) {
    double *partial = calloc((size_t)(2 * threads * c), sizeof(double));
    if (partial == NULL) return 1;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t first = m * t / nt, last = m * (t + 1) / nt;
        double *s1 = partial + 2 * t * c, *s2 = s1 + c;
        float *block1 = calloc((size_t)(2 * c), sizeof(float));
        if (block1 == NULL) {
            failed = 1;
        } else {
            float *block2 = block1 + c;
            for (int64_t r = first; r < last; r++) {
                const uint16_t *in = x + r * c;
                if (kind == STATS) {
                    for (int64_t j = 0; j < c; j++) {
                        float v = bf16_to_float(in[j]) - origin[j];
                        block1[j] += v;
                        block2[j] += v * v;
                    }
                } else {
                    const uint16_t *g = dy + r * c;
                    for (int64_t j = 0; j < c; j++) {
                        float v = bf16_to_float(in[j]);
                        float d = activate_grad(v * scale[j] + shift[j], bf16_to_float(g[j]), slope);
                        block1[j] += d;
                        block2[j] += d * (v - origin[j]);
                    }
                }
                if ((r - first) % ROWS == ROWS - 1) add_block(c, block1, block2, s1, s2);
            }
            add_block(c, block1, block2, s1, s2);
            free(block1);
        }
    }
    for (int64_t j = 0; j < c; j++) {
        sum1[j] = 0.0;
        sum2[j] = 0.0;
        for (int t = 0; t < threads; t++) {
            sum1[j] += partial[2 * t * c + j];
            sum2[j] += partial[2 * t * c + c + j];
        }
    }
    free(partial);
    return failed;
}

/* y = act(x * scale + shift), or dx = a * act'(dy) + k * (x - mean) + b */
static void apply(const uint16_t *x, const uint16_t *dy, uint16_t *out, int64_t m, int64_t c,
                  const float *scale, const float *shift, float slope, const float *mean,
                  const float *a, const float *k, const float *b, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < m; r++) {
        const uint16_t *in = x + r * c;
        uint16_t *o = out + r * c;
        if (dy == NULL) {
            for (int64_t j = 0; j < c; j++)
                o[j] = float_to_bf16(activate(bf16_to_float(in[j]) * scale[j] + shift[j], slope));
        } else {
            const uint16_t *g = dy + r * c;
            for (int64_t j = 0; j < c; j++) {
                float v = bf16_to_float(in[j]);
                float d = activate_grad(v * scale[j] + shift[j], bf16_to_float(g[j]), slope);
                o[j] = float_to_bf16(a[j] * d + k[j] * (v - mean[j]) + b[j]);
            }
        }
    }
}

/* y = act(batch_norm(x)) with the batch's statistics. Writes y (M, C), the batch mean and
 * invstd (fp32, for the backward) and, when running_mean is not NULL, updates the running
 * statistics: r = (1 - factor) * r + factor * batch value, the variance unbiased. */
int bn_act_forward(const uint16_t *x, uint16_t *y, int64_t m, int64_t c, const float *w,
                   const float *b, float slope, double eps, float *running_mean,
                   float *running_var, double factor, float *mean, float *invstd, int threads) {
    int64_t r = rows_per_line(m, c), wide = r * c, lines = m / r;
    double *sums = malloc((size_t)(4 * wide) * sizeof(double));
    float *buf = malloc((size_t)(6 * wide) * sizeof(float));
    if (sums == NULL || buf == NULL) {
        free(sums);
        free(buf);
        return 1;
    }
    float *origin = buf, *scale = buf + c, *shift = buf + 2 * c;
    float *origin_w = buf + 3 * wide, *scale_w = buf + 4 * wide, *shift_w = buf + 5 * wide;
    for (int64_t j = 0; j < c; j++) origin[j] = bf16_to_float(x[j]);
    widen(c, r, origin, origin_w);
    int failed = channel_sums(STATS, x, NULL, lines, wide, origin_w, NULL, NULL, 0.0f, threads,
                              sums + 2 * wide, sums + 3 * wide);
    if (!failed) {
        fold(c, r, sums + 2 * wide, sums);
        fold(c, r, sums + 3 * wide, sums + c);
        for (int64_t j = 0; j < c; j++) {
            double offset = sums[j] / (double)m; /* mean - origin */
            double var = fmax(sums[c + j] / (double)m - offset * offset, 0.0);
            mean[j] = (float)(origin[j] + offset);
            invstd[j] = (float)(1.0 / sqrt(var + eps));
            if (running_mean != NULL) {
                double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
                running_mean[j] = (float)((1.0 - factor) * running_mean[j] + factor * mean[j]);
                running_var[j] = (float)((1.0 - factor) * running_var[j] + factor * unbiased);
            }
        }
        affine(c, w, b, mean, invstd, scale, shift);
        widen(c, r, scale, scale_w);
        widen(c, r, shift, shift_w);
        apply(x, NULL, y, lines, wide, scale_w, shift_w, slope, NULL, NULL, NULL, NULL, threads);
    }
    free(sums);
    free(buf);
    return failed;
}

/* The gradients of bn_act_forward's y: dx (M, C) when dx is not NULL, dw and db when they are
 * not NULL. */
int bn_act_backward(const uint16_t *dy, const uint16_t *x, uint16_t *dx, int64_t m, int64_t c,
                    const float *w, const float *b, float slope, const float *mean,
                    const float *invstd, float *dw, float *db, int threads) {
    int64_t r = rows_per_line(m, c), wide = r * c, lines = m / r;
    double *sums = malloc((size_t)(4 * wide) * sizeof(double));
    float *buf = malloc((size_t)(12 * wide) * sizeof(float));
    if (sums == NULL || buf == NULL) {
        free(sums);
        free(buf);
        return 1;
    }
    float *scale = buf, *shift = buf + c, *a = buf + 2 * c, *k = buf + 3 * c, *b0 = buf + 4 * c;
    float *wide_params = buf + 6 * wide; /* scale, shift, mean, a, k, b0, each `wide` long */
    float *scale_w = wide_params, *shift_w = scale_w + wide, *mean_w = shift_w + wide;
    float *a_w = mean_w + wide, *k_w = a_w + wide, *b0_w = k_w + wide;
    affine(c, w, b, mean, invstd, scale, shift);
    widen(c, r, scale, scale_w);
    widen(c, r, shift, shift_w);
    widen(c, r, mean, mean_w);
    int failed = channel_sums(GRADIENT, x, dy, lines, wide, mean_w, scale_w, shift_w, slope,
                              threads, sums + 2 * wide, sums + 3 * wide);
    if (!failed) {
        fold(c, r, sums + 2 * wide, sums);
        fold(c, r, sums + 3 * wide, sums + c);
        for (int64_t j = 0; j < c; j++) {
            double sum_dz = sums[j], sum_dz_xmu = sums[c + j], istd = invstd[j];
            if (dw != NULL) dw[j] = (float)(sum_dz_xmu * istd);
            if (db != NULL) db[j] = (float)sum_dz;
            a[j] = scale[j];
            k[j] = (float)(-(double)scale[j] * istd * istd * sum_dz_xmu / (double)m);
            b0[j] = (float)(-(double)scale[j] * sum_dz / (double)m);
        }
        widen(c, r, a, a_w);
        widen(c, r, k, k_w);
        widen(c, r, b0, b0_w);
        if (dx != NULL)
            apply(x, dy, dx, lines, wide, scale_w, shift_w, slope, mean_w, a_w, k_w, b0_w, threads);
    }
    free(sums);
    free(buf);
    return failed;
}

/* G's last layer (a 4x4, stride-2, padding-1 transposed convolution to few channels) from the
 * products of every input pixel with every kernel tap: taps (B, H, W, 4, 4, C) bf16, out
 * (B, 2H, 2W, C) bf16 channels-last. Output pixel (2i + a, 2j + p) sums, in fp32, tap
 * (near[a], near[p]) of input pixel (i, j) and the taps `far` of its neighbours at row
 * i + step[a] and column j + step[p], where those exist. */
static const int near_tap[2] = {1, 2}, far_tap[2] = {3, 0}, step[2] = {-1, 1};

/* output pixel (2i + a, 2j + p) of one output row, from input rows `here` (i) and `there`
 * (i + step[a], when `above`); inlined with c = 3 as a constant (gcc then unrolls it) */
static inline __attribute__((always_inline)) void rgb_pixel(
    const uint16_t *here, const uint16_t *there, int above, uint16_t *o, int64_t j, int64_t w,
    int64_t c, int a, int p) {
    const int64_t pixel = 16 * c;
    int64_t j2 = j + step[p];
    int side = j2 >= 0 && j2 < w; /* the neighbour column exists */
    j2 = side ? j2 : j;
    const uint16_t *t00 = here + j * pixel + (near_tap[a] * 4 + near_tap[p]) * c;
    const uint16_t *t01 = here + j2 * pixel + (near_tap[a] * 4 + far_tap[p]) * c;
    const uint16_t *t10 = there + j * pixel + (far_tap[a] * 4 + near_tap[p]) * c;
    const uint16_t *t11 = there + j2 * pixel + (far_tap[a] * 4 + far_tap[p]) * c;
    for (int64_t k = 0; k < c; k++) { /* the torch version's order: t00, t10, t01, t11 */
        float s = bf16_to_float(t00[k]);
        if (above) s += bf16_to_float(t10[k]);
        if (side) s += bf16_to_float(t01[k]);
        if (above && side) s += bf16_to_float(t11[k]);
        o[k] = float_to_bf16(s);
    }
}

static inline __attribute__((always_inline)) void rgb_line(
    const uint16_t *here, const uint16_t *there, int above, uint16_t *o, int64_t w, int64_t c,
    int a) {
    for (int64_t j = 0; j < w; j++)
        for (int p = 0; p < 2; p++) rgb_pixel(here, there, above, o + (2 * j + p) * c, j, w, c, a, p);
}

/* G's last layer (a 4x4, stride-2, padding-1 transposed convolution to few channels) from the
 * products of every input pixel with every kernel tap: taps (B, H, W, 4, 4, C) bf16, out
 * (B, 2H, 2W, C) bf16 channels-last. Output pixel (2i + a, 2j + p) sums, in fp32, tap
 * (near[a], near[p]) of input pixel (i, j) and the taps `far` of its neighbours at row
 * i + step[a] and column j + step[p], where those exist. */
void to_rgb_phases(const uint16_t *taps, uint16_t *out, int64_t b, int64_t h, int64_t w,
                   int64_t c, int threads) {
    const int64_t row = w * 16 * c;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t line = 0; line < b * 2 * h; line++) { /* output row oy of image n */
        int64_t n = line / (2 * h), oy = line % (2 * h), i = oy / 2;
        int a = (int)(oy % 2);
        int64_t i2 = i + step[a];
        int above = i2 >= 0 && i2 < h; /* the neighbour row exists */
        const uint16_t *here = taps + (n * h + i) * row;
        const uint16_t *there = taps + (n * h + (above ? i2 : i)) * row;
        uint16_t *o = out + line * 2 * w * c;
        if (c == 3)
            rgb_line(here, there, above, o, w, 3, a);
        else
            rgb_line(here, there, above, o, w, c, a);
    }
}
