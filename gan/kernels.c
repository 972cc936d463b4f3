/* pumpgan's CPU kernels for bf16 channels-last training: gan/kernels.py compiles this file with
 * the system's gcc and calls it through ctypes. In order: training-mode BatchNorm fused with the
 * (leaky) ReLU after it (bn_act_forward, bn_act_backward); G's last layer's phase sums
 * (to_rgb_phases); the windows of G's GEMM weight gradient (up_windows); the real batch's
 * conversion, augmentation warp and layout in one pass (warp_u8).
 *
 * BatchNorm + activation. A channels-last (B, C, H, W) tensor is a row-major (M, C) matrix, M = B*H*W: every loop runs
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
 * bn_act_* return 0, or 1 when out of memory (nothing written then).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h> /* the gathers of to_rgb_phases and warp_u8 */
#endif

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
 * 256 values are used where the rows divide evenly; per-channel arrays are then repeated to a
 * line's length (`repeat`) and per-line sums folded back (in `channel_sums`). */
static int64_t rows_per_line(int64_t m, int64_t c) {
    int64_t r = 1;
    while (r * c < 256 && m % (2 * r) == 0) r *= 2;
    return r;
}

/* v[0:c] copied into the r - 1 blocks of c after it */
static void repeat(int64_t c, int64_t r, float *v) {
    for (int64_t i = 1; i < r; i++) memcpy(v + i * c, v, (size_t)c * sizeof(float));
}

static inline void add_block(int64_t c, float *block1, float *block2, double *sum1, double *sum2) {
    for (int64_t j = 0; j < c; j++) {
        sum1[j] += block1[j];
        sum2[j] += block2[j];
        block1[j] = 0.0f;
        block2[j] = 0.0f;
    }
}

/* Two per-channel sums over all M rows, of f1 and f2, where (f1, f2) are
 *   STATS:     (x - origin, (x - origin)^2)               origin = row 0 of x
 *   GRADIENT:  (dz, dz * (x - mean))                      (`origin` holds the mean)
 * taken in lines of r rows (the per-channel arrays repeated r times), into sum1[C], sum2[C]
 * (fp64). */
enum sums { STATS, GRADIENT };

static int channel_sums(enum sums kind, const uint16_t *x, const uint16_t *dy, int64_t m,
                        int64_t c, int64_t r, const float *origin, const float *scale,
                        const float *shift, float slope, int threads, double *sum1,
                        double *sum2) {
    const int64_t wide = r * c, lines = m / r;
    /* per thread: two fp64 running sums and two fp32 block sums, each a line long; the block
     * sums, written every line, a cache line (16 floats) apart from the next thread's */
    double *partial = calloc((size_t)(2 * threads * wide), sizeof(double));
    float *blocks = calloc((size_t)(threads * (2 * wide + 16)), sizeof(float));
    if (partial == NULL || blocks == NULL) {
        free(partial);
        free(blocks);
        return 1;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t first = lines * t / nt, last = lines * (t + 1) / nt;
        double *s1 = partial + 2 * t * wide, *s2 = s1 + wide;
        float *block1 = blocks + t * (2 * wide + 16), *block2 = block1 + wide;
        for (int64_t l = first; l < last; l++) {
            const uint16_t *in = x + l * wide;
            if (kind == STATS) {
                for (int64_t j = 0; j < wide; j++) {
                    float v = bf16_to_float(in[j]) - origin[j];
                    block1[j] += v;
                    block2[j] += v * v;
                }
            } else {
                const uint16_t *g = dy + l * wide;
                for (int64_t j = 0; j < wide; j++) {
                    float v = bf16_to_float(in[j]);
                    float d = activate_grad(v * scale[j] + shift[j], bf16_to_float(g[j]), slope);
                    block1[j] += d;
                    block2[j] += d * (v - origin[j]);
                }
            }
            if ((l - first) % ROWS == ROWS - 1) add_block(wide, block1, block2, s1, s2);
        }
        add_block(wide, block1, block2, s1, s2);
    }
    for (int64_t j = 0; j < c; j++) { /* over threads, then over a line's rows */
        sum1[j] = 0.0;
        sum2[j] = 0.0;
        for (int64_t i = 0; i < r; i++) {
            double a = 0.0, b = 0.0;
            for (int t = 0; t < threads; t++) {
                a += partial[2 * t * wide + i * c + j];
                b += partial[2 * t * wide + wide + i * c + j];
            }
            sum1[j] += a;
            sum2[j] += b;
        }
    }
    free(partial);
    free(blocks);
    return 0;
}

/* y = act(x * scale + shift), or dx = scale * act'(dy) + k * (x - mean) + b, line by line */
static void apply(const uint16_t *x, const uint16_t *dy, uint16_t *out, int64_t lines,
                  int64_t wide, const float *scale, const float *shift, float slope,
                  const float *mean, const float *k, const float *b, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t l = 0; l < lines; l++) {
        const uint16_t *in = x + l * wide;
        uint16_t *o = out + l * wide;
        if (dy == NULL) {
            for (int64_t j = 0; j < wide; j++)
                o[j] = float_to_bf16(activate(bf16_to_float(in[j]) * scale[j] + shift[j], slope));
        } else {
            const uint16_t *g = dy + l * wide;
            for (int64_t j = 0; j < wide; j++) {
                float v = bf16_to_float(in[j]);
                float d = activate_grad(v * scale[j] + shift[j], bf16_to_float(g[j]), slope);
                o[j] = float_to_bf16(scale[j] * d + k[j] * (v - mean[j]) + b[j]);
            }
        }
    }
}

/* One allocation for a function's work space: 2C fp64 sums, then n per-channel float arrays a
 * line long (wide) each, returned through *arrays, starting on a 64-byte boundary (the vector
 * loads of the loops; unaligned, the fused BatchNorm was up to 10% slower); NULL when out of
 * memory. */
static double *work_space(int64_t c, int64_t wide, int n, float **arrays) {
    size_t head = ((size_t)(2 * c) * sizeof(double) + 63) / 64 * 64;
    size_t size = (head + (size_t)(n * wide) * sizeof(float) + 63) / 64 * 64;
    double *sums = aligned_alloc(64, size);
    if (sums != NULL) *arrays = (float *)((char *)sums + head);
    return sums;
}

/* y = act(batch_norm(x)) with the batch's statistics. Writes y (M, C), the batch mean and
 * invstd (fp32, for the backward) and, when running_mean is not NULL, updates the running
 * statistics: r = (1 - factor) * r + factor * batch value, the variance unbiased. */
int bn_act_forward(const uint16_t *x, uint16_t *y, int64_t m, int64_t c, const float *w,
                   const float *b, float slope, double eps, float *running_mean,
                   float *running_var, double factor, float *mean, float *invstd, int threads) {
    int64_t r = rows_per_line(m, c), wide = r * c;
    float *origin;
    double *sums = work_space(c, wide, 3, &origin);
    if (sums == NULL) return 1;
    float *scale = origin + wide, *shift = scale + wide;
    for (int64_t j = 0; j < c; j++) origin[j] = bf16_to_float(x[j]);
    repeat(c, r, origin);
    int failed = channel_sums(STATS, x, NULL, m, c, r, origin, NULL, NULL, 0.0f, threads, sums,
                              sums + c);
    if (!failed) {
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
        repeat(c, r, scale);
        repeat(c, r, shift);
        apply(x, NULL, y, m / r, wide, scale, shift, slope, NULL, NULL, NULL, threads);
    }
    free(sums);
    return failed;
}

/* The gradients of bn_act_forward's y: dx (M, C) when dx is not NULL, dw and db when they are
 * not NULL. */
int bn_act_backward(const uint16_t *dy, const uint16_t *x, uint16_t *dx, int64_t m, int64_t c,
                    const float *w, const float *b, float slope, const float *mean,
                    const float *invstd, float *dw, float *db, int threads) {
    int64_t r = rows_per_line(m, c), wide = r * c;
    float *scale;
    double *sums = work_space(c, wide, 5, &scale);
    if (sums == NULL) return 1;
    float *shift = scale + wide, *mean_w = shift + wide, *k = mean_w + wide, *b0 = k + wide;
    affine(c, w, b, mean, invstd, scale, shift);
    memcpy(mean_w, mean, (size_t)c * sizeof(float));
    repeat(c, r, scale);
    repeat(c, r, shift);
    repeat(c, r, mean_w);
    int failed = channel_sums(GRADIENT, x, dy, m, c, r, mean_w, scale, shift, slope, threads,
                              sums, sums + c);
    if (!failed) {
        for (int64_t j = 0; j < c; j++) {
            double sum_dz = sums[j], sum_dz_xmu = sums[c + j], istd = invstd[j];
            if (dw != NULL) dw[j] = (float)(sum_dz_xmu * istd);
            if (db != NULL) db[j] = (float)sum_dz;
            k[j] = (float)(-(double)scale[j] * istd * istd * sum_dz_xmu / (double)m);
            b0[j] = (float)(-(double)scale[j] * sum_dz / (double)m);
        }
        repeat(c, r, k);
        repeat(c, r, b0);
        if (dx != NULL) apply(x, dy, dx, m / r, wide, scale, shift, slope, mean_w, k, b0, threads);
    }
    free(sums);
    return failed;
}

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

#ifdef __AVX512F__

/* 16 taps (bf16) at element offsets idx from base, as fp32: 32-bit gathers at 2-byte scale,
 * the low half of each is the tap (little-endian); the high half, the tap after it, is read but
 * always inside the row (callers' offsets stay below the pixel's last tap) */
static inline __m512 gather_bf16(const uint16_t *base, __m512i idx) {
    __m512i words = _mm512_i32gather_epi32(idx, (const void *)base, 2);
    return _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
}

/* float_to_bf16 of 16 values: round to nearest even, NaN to 0x7fc0 */
static inline __m256i to_bf16_16(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7fc0));
    return _mm512_cvtepi32_epi16(r);
}

typedef int32_t rgb_offsets[2][4][48];

/* for output rows of phase a, the offsets of the 4 taps each of 48 outputs (8 input pixels)
 * sums, from the first pixel's taps: t00, t10 (row `there`), t01, t11 (row `there`) */
static void rgb_offsets_of(rgb_offsets t) {
    for (int a = 0; a < 2; a++)
        for (int q = 0; q < 48; q++) {
            int jj = q / 6, k = q % 6, p = k / 3, ch = k % 3;
            t[a][0][q] = jj * 48 + (near_tap[a] * 4 + near_tap[p]) * 3 + ch;
            t[a][1][q] = jj * 48 + (far_tap[a] * 4 + near_tap[p]) * 3 + ch;
            t[a][2][q] = (jj + step[p]) * 48 + (near_tap[a] * 4 + far_tap[p]) * 3 + ch;
            t[a][3][q] = (jj + step[p]) * 48 + (far_tap[a] * 4 + far_tap[p]) * 3 + ch;
        }
}

/* to_rgb_phases for 3 channels on one output row of phase a, input pixels j from `first` to
 * before `last` in groups of 8 (48 outputs, 3 vectors) whose column neighbours all exist, by
 * gathers at the offsets t = offsets[a]; returns the first pixel j not done. The same fp32 sums,
 * in the same order, as rgb_pixel: bit for bit its output. */
static int64_t rgb_groups(const uint16_t *here, const uint16_t *there, int above, uint16_t *o,
                          int64_t first, int64_t last, const int32_t (*t)[48]) {
    const int32_t *t00 = t[0], *t10 = t[1], *t01 = t[2], *t11 = t[3];
    int64_t j = first;
    for (; j + 8 <= last; j += 8)
        for (int v = 0; v < 3; v++) {
            __m512i at = _mm512_set1_epi32((int)(j * 48));
#define OFFSETS(t) _mm512_add_epi32(at, _mm512_loadu_si512((const void *)((t) + 16 * v)))
            __m512 s = gather_bf16(here, OFFSETS(t00));
            if (above) s = _mm512_add_ps(s, gather_bf16(there, OFFSETS(t10)));
            s = _mm512_add_ps(s, gather_bf16(here, OFFSETS(t01)));
            if (above) s = _mm512_add_ps(s, gather_bf16(there, OFFSETS(t11)));
#undef OFFSETS
            _mm256_storeu_si256((__m256i *)(o + 6 * j + 16 * v), to_bf16_16(s));
        }
    return j;
}
#endif

/* G's last layer (a 4x4, stride-2, padding-1 transposed convolution to few channels) from the
 * products of every input pixel with every kernel tap: taps (B, H, W, 4, 4, C) bf16, out
 * (B, 2H, 2W, C) bf16 channels-last. Output pixel (2i + a, 2j + p) sums, in fp32, tap
 * (near[a], near[p]) of input pixel (i, j) and the taps `far` of its neighbours at row
 * i + step[a] and column j + step[p], where those exist. */
void to_rgb_phases(const uint16_t *taps, uint16_t *out, int64_t b, int64_t h, int64_t w,
                   int64_t c, int threads) {
    const int64_t row = w * 16 * c;
#ifdef __AVX512F__
    rgb_offsets offsets;
    rgb_offsets_of(offsets);
#endif
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t line = 0; line < b * 2 * h; line++) { /* output row oy of image n */
        int64_t n = line / (2 * h), oy = line % (2 * h), i = oy / 2;
        int a = (int)(oy % 2);
        int64_t i2 = i + step[a];
        int above = i2 >= 0 && i2 < h; /* the neighbour row exists */
        const uint16_t *here = taps + (n * h + i) * row;
        const uint16_t *there = taps + (n * h + (above ? i2 : i)) * row;
        uint16_t *o = out + line * 2 * w * c;
        if (c == 3) {
            int64_t j = 0;
#ifdef __AVX512F__
            /* pixels 1 .. w - 2 (both column neighbours exist) 8 at a time, the rest below */
            if (w > 2) {
                for (int p = 0; p < 2; p++) rgb_pixel(here, there, above, o + p * 3, 0, w, 3, a, p);
                j = rgb_groups(here, there, above, o, 1, w - 1, offsets[a]);
            }
#endif
            for (; j < w; j++)
                for (int p = 0; p < 2; p++)
                    rgb_pixel(here, there, above, o + (2 * j + p) * 3, j, w, 3, a, p);
        } else
            rgb_line(here, there, above, o, w, c, a);
    }
}

/* The windows of a 4x4, stride-2, padding-1 transposed convolution's output gradient that its
 * weight gradient multiplies with the input (models._weight_grad_by_gemm): dy (B, 2H, 2W, C)
 * bf16 channels-last, out (B, H, W, 4, 4, C): out[n, i, j, ky, kx] = dy[n, 2i + ky - 1,
 * 2j + kx - 1], zero outside dy. One pass, each window row a copy of C contiguous values (the
 * library's pad + unfold + copy makes three passes, the last a 6-dimensional gather). */
void up_windows(const uint16_t *dy, uint16_t *out, int64_t b, int64_t h, int64_t w, int64_t c,
                int threads) {
    const size_t bytes = (size_t)c * sizeof(uint16_t);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t line = 0; line < b * h; line++) { /* input row i of image n */
        int64_t n = line / h, i = line % h;
        uint16_t *o = out + line * w * 16 * c;
        for (int64_t j = 0; j < w; j++)
            for (int ky = 0; ky < 4; ky++) {
                int64_t y = 2 * i + ky - 1;
                for (int kx = 0; kx < 4; kx++, o += c) {
                    int64_t x = 2 * j + kx - 1;
                    if (y < 0 || y >= 2 * h || x < 0 || x >= 2 * w)
                        memset(o, 0, bytes);
                    else
                        memcpy(o, dy + ((n * 2 * h + y) * 2 * w + x) * c, bytes);
                }
            }
    }
}

#ifdef __AVX512F__

/* warp_u8's inner loop for output pixels x .. x + 15 of a row, with AVX-512 gathers (gcc does
 * not vectorise the scalar loop's loads itself) */
static inline void warp_16(const float *pad, int64_t pplane, int stride, float *row, int64_t w,
                           int64_t h, int64_t x, float v, float t0, float t1, float t2, float t3,
                           float t4, float t5) {
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    const __m512 lo = _mm512_set1_ps(-2.0f), wf = _mm512_set1_ps((float)w), hf = _mm512_set1_ps((float)h);
    __m512 xs = _mm512_add_ps(_mm512_set1_ps((float)x),
                              _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __m512 u = _mm512_sub_ps(_mm512_div_ps(_mm512_fmadd_ps(xs, _mm512_set1_ps(2.0f), one), wf), one);
    __m512 gx = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(t0), u, _mm512_set1_ps(t1 * v)), _mm512_set1_ps(t2));
    __m512 gy = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(t3), u, _mm512_set1_ps(t4 * v)), _mm512_set1_ps(t5));
    __m512 ix = _mm512_mul_ps(_mm512_fmsub_ps(_mm512_add_ps(gx, one), wf, one), half);
    __m512 iy = _mm512_mul_ps(_mm512_fmsub_ps(_mm512_add_ps(gy, one), hf, one), half);
    /* max(NaN, lo) is lo: the second operand */
    ix = _mm512_min_ps(_mm512_max_ps(ix, lo), _mm512_add_ps(wf, half));
    iy = _mm512_min_ps(_mm512_max_ps(iy, lo), _mm512_add_ps(hf, half));
    __m512 fx = _mm512_roundscale_ps(ix, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 fy = _mm512_roundscale_ps(iy, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 ax = _mm512_sub_ps(ix, fx), ay = _mm512_sub_ps(iy, fy);
    __m512 bx = _mm512_sub_ps(one, ax), by = _mm512_sub_ps(one, ay);
    __m512i two = _mm512_set1_epi32(2), st = _mm512_set1_epi32(stride);
    __m512i i = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fy), two), st),
        _mm512_add_epi32(_mm512_cvttps_epi32(fx), two));
    __m512i i1 = _mm512_add_epi32(i, _mm512_set1_epi32(1));
    __m512i i2 = _mm512_add_epi32(i, st), i3 = _mm512_add_epi32(i2, _mm512_set1_epi32(1));
    for (int c = 0; c < 3; c++) {
        const float *p = pad + c * pplane;
        __m512 top = _mm512_fmadd_ps(ax, _mm512_i32gather_ps(i1, p, 4),
                                     _mm512_mul_ps(bx, _mm512_i32gather_ps(i, p, 4)));
        __m512 bottom = _mm512_fmadd_ps(ax, _mm512_i32gather_ps(i3, p, 4),
                                        _mm512_mul_ps(bx, _mm512_i32gather_ps(i2, p, 4)));
        _mm512_storeu_ps(row + c * w, _mm512_fmadd_ps(ay, bottom, _mm512_mul_ps(by, top)));
    }
}
#endif

/* The batch D sees, from uint8 images (B, 3, H, W) (NCHW): each image warped by its own affine
 * map theta (B, 2, 3), as grid_sample(x + 1, affine_grid(theta), bilinear, zeros) - 1 does with
 * align_corners=False, x = image / 127.5 - 1 (models' [-1, 1]; black outside), written as
 * fp32 channels-last (B, H, W, 3). Output pixel (y, x) samples the image at theta . (u, v, 1),
 * (u, v) the pixel's centre in [-1, 1] units; an identity theta copies the image exactly.
 * Each thread copies an image into fp32 planes with a border of 2 black pixels, so that every
 * sample, clamped into that border, reads 4 corners without bounds checks (the x loop is then
 * gcc's vector gathers). Returns 0, or 1 when out of memory (nothing written then). */
int warp_u8(const uint8_t *img, const float *theta, float *out, int64_t b, int64_t h, int64_t w,
            int threads) {
    const int64_t pw = w + 4, pplane = (h + 4) * pw;
    const int stride = (int)pw;
    float **planes = calloc((size_t)threads, sizeof(float *));
    int failed = planes == NULL;
    for (int t = 0; t < threads && !failed; t++) {
        planes[t] = malloc(sizeof(float) * (size_t)(3 * pplane + 3 * w));
        failed = planes[t] == NULL;
    }
    if (!failed) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t n = 0; n < b; n++) {
            float *restrict pad = planes[omp_get_thread_num()], *restrict row = pad + 3 * pplane;
            const uint8_t *src = img + n * 3 * h * w;
            const float t0 = theta[n * 6], t1 = theta[n * 6 + 1], t2 = theta[n * 6 + 2];
            const float t3 = theta[n * 6 + 3], t4 = theta[n * 6 + 4], t5 = theta[n * 6 + 5];
            memset(pad, 0, sizeof(float) * (size_t)(3 * pplane));
            for (int c = 0; c < 3; c++)
                for (int64_t y = 0; y < h; y++)
                    for (int64_t x = 0; x < w; x++)
                        pad[c * pplane + (y + 2) * pw + x + 2] = (float)src[(c * h + y) * w + x];
            for (int64_t y = 0; y < h; y++) {
                float v = (2.0f * (float)y + 1.0f) / (float)h - 1.0f;
                int64_t x = 0;
#ifdef __AVX512F__
                for (; x + 16 <= w; x += 16) /* 16 pixels: the same arithmetic as below */
                    warp_16(pad, pplane, stride, row + x, w, h, x, v, t0, t1, t2, t3, t4, t5);
#endif
                for (; x < w; x++) {
                    float u = (2.0f * (float)x + 1.0f) / (float)w - 1.0f;
                    float ix = ((t0 * u + t1 * v + t2 + 1.0f) * (float)w - 1.0f) * 0.5f;
                    float iy = ((t3 * u + t4 * v + t5 + 1.0f) * (float)h - 1.0f) * 0.5f;
                    /* outside the image and its border: all 4 corners in the border (NaN too) */
                    ix = ix > -2.0f ? ix : -2.0f;
                    ix = ix < (float)w + 0.5f ? ix : (float)w + 0.5f;
                    iy = iy > -2.0f ? iy : -2.0f;
                    iy = iy < (float)h + 0.5f ? iy : (float)h + 0.5f;
                    float fx = floorf(ix), fy = floorf(iy), ax = ix - fx, ay = iy - fy;
                    int i = ((int)fy + 2) * stride + (int)fx + 2;
                    for (int c = 0; c < 3; c++) {
                        const float *p = pad + c * pplane;
                        float top = (1.0f - ax) * p[i] + ax * p[i + 1];
                        float bottom = (1.0f - ax) * p[i + stride] + ax * p[i + stride + 1];
                        row[c * w + x] = (1.0f - ay) * top + ay * bottom;
                    }
                }
                float *o = out + (n * h + y) * w * 3;
                for (int64_t x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++) o[x * 3 + c] = row[c * w + x] / 127.5f - 1.0f;
            }
        }
    }
    for (int t = 0; planes != NULL && t < threads; t++) free(planes[t]);
    free(planes);
    return failed;
}
