/* One streaming 1 ms step of the stacked-GRU surrogate (architectures/gru.py) for n cells, fused.
 *
 * Same arithmetic as GRUSurrogate.step in eval mode (PyTorch gate order r, z, n):
 *   u = W_in x;  s_k' = a_k s_k + u (k < K);  z0 = ReLU(u + b_in + sum_k m_k s_k')   (traces: K >= 0)
 *   r = s(W_ir z + b_ir + W_hr h + b_hr),  u = s(W_iz z + b_iz + W_hz h + b_hz)
 *   m = tanh(W_in' z + b_in' + r * (W_hn h + b_hn)),   h' = (1 - u) m + u h      (per layer)
 *   y = W_out h'_L + b_out
 * Why a kernel: at tens of cells per process the ~30 PyTorch operations of a step cost more than
 * their arithmetic. Here the input projection skips zero inputs (synaptic input is sparse: a few
 * events per cell and ms among 2 x 200 channels) and cells are processed in blocks of CB so that
 * each weight row, once loaded, serves CB cells.
 *
 * Layouts (float32, C order): x (n, n_in); win_t (n_in, H); wih_t, whh_t (L, H, 3H) = the
 * transposed torch weights; bih, bhh (L, 3H); wout (n_out, H); a, m (K, H); h_in, h_out (L, n, H);
 * s_in, s_out (K, n, H) (unused when K = 0); y (n, n_out).
 * H up to MAXH and a multiple of 16 (3H a multiple of JB).
 * Returns 0, or -1 if H > MAXH or 3H is not a multiple of JB (the caller checks H beforehand).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#define MAXH 256
/* Cells per block (each weight row, once loaded, serves CB cells) and gate outputs per register
 * tile (JB = 3 AVX-512 vectors; 3H must be a multiple): CB x JB / 16 = 18 of the 32 vector registers
 * accumulate. Measured on this CPU (AMD EPYC, AVX-512; 2 x 64 GRU, 25/50/500 cells): CB 6, JB 48
 * 0.97/0.91/0.92 us per cell-step; CB 4: 1.46/1.38/-; CB 8, JB 32: 1.05/0.93/0.88; JB 16: 1.4-2.2.
 * On an Intel Xeon (AVX-512, 2.6 GHz; 250/2,500 cells, 1 thread) the tiles need -mprefer-vector-width=512
 * (fast.compile_flags): CB 6, JB 48 1.5-1.7/1.4 us; CB 8 1.5/1.4; CB 4 1.7/1.5; JB 96 1.8-2.1/1.6-2.0;
 * 256-bit vectors (GCC's default tuning there) 2.1-2.3/2.1. */
#ifndef CB
#define CB 6
#endif
#ifndef JB
#define JB 48
#endif

/* Arguments are clamped: beyond +-40 (sigmoid) and +-20 (tanh) float32 results no longer change, and
 * under -ffast-math the vectorised 1 / (1 + exp(-a)) of a saturated gate is a reciprocal estimate
 * refined by a Newton step, which turns exp's inf into NaN (test_fused_step_saturates_like_pytorch). */
static inline float clampf(float a, float lim) { return a > lim ? lim : (a < -lim ? -lim : a); }
static inline float sigm(float a) { return 1.0f / (1.0f + expf(-clampf(a, 40.0f))); }
static inline float tanh_c(float a) { return tanhf(clampf(a, 20.0f)); }

/* acc[b][:] = bias + sum_i a[b][i] * W[i][j0:j0+JB] for the first nb (<= CB) cells of a block, for the tile
 * j0. Inlined, so a call with nb = CB (whole blocks) is unrolled over the cells, and the last, partial block
 * of n cells computes only its nb cells (25 cells in blocks of 6 would otherwise compute 30). */
static inline void tile(int nb, int K, int G, int j0, const float *W, const float *bias, const float (*a)[MAXH],
                        float (*acc)[3 * MAXH])
{
    float t[CB][JB];
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < JB; j++) t[b][j] = bias[j0 + j];
    for (int i = 0; i < K; i++) {
        const float *w = W + (size_t)i * G + j0;
        for (int b = 0; b < nb; b++) {
            const float ai = a[b][i];
            for (int j = 0; j < JB; j++) t[b][j] += ai * w[j];
        }
    }
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < JB; j++) acc[b][j0 + j] = t[b][j];
}

/* The model: sizes and weight pointers, set once by the caller (the weights stay owned by it). */
struct ns_gru {
    int n_in, H, L, n_out, K;
    const float *win_t, *b_in, *wih_t, *whh_t, *bih, *bhh, *wout, *b_out, *a, *m;
};

/* One step; row c of the input is x + c * ldx, of the output y + c * ldy. */
static int step_strided(const struct ns_gru *M, int n, const float *x, size_t ldx, const float *h_in, float *h_out,
                        const float *s_in, float *s_out, float *y, size_t ldy)
{
    const int n_in = M->n_in, H = M->H, L = M->L, n_out = M->n_out, K = M->K;
    const float *win_t = M->win_t, *b_in = M->b_in, *wih_t = M->wih_t, *whh_t = M->whh_t, *bih = M->bih,
                *bhh = M->bhh, *wout = M->wout, *b_out = M->b_out;
    if (H > MAXH || H < 1 || (3 * H) % JB) return -1;
    const int G = 3 * H;
    float z[CB][MAXH], hp[CB][MAXH], gi[CB][3 * MAXH], gh[CB][3 * MAXH];
    for (int c0 = 0; c0 < n; c0 += CB) {
        const int nb = n - c0 < CB ? n - c0 : CB; /* a last, partial block holds nb < CB cells */
        /* input projection: only the non-zero inputs contribute */
        for (int b = 0; b < nb; b++) {
            float *zb = z[b];
            float u[MAXH];
            for (int j = 0; j < H; j++) u[j] = 0.0f;
            const float *xc = x + (size_t)(c0 + b) * ldx;
            for (int i = 0; i < n_in; i++) {
                const float v = xc[i];
                if (v != 0.0f) {
                    const float *w = win_t + (size_t)i * H;
                    for (int j = 0; j < H; j++) u[j] += v * w[j];
                }
            }
            for (int j = 0; j < H; j++) zb[j] = u[j] + b_in[j];
            for (int k = 0; k < K; k++) {
                const size_t o = ((size_t)k * n + c0 + b) * H;
                const float *ak = M->a + (size_t)k * H, *mk = M->m + (size_t)k * H;
                for (int j = 0; j < H; j++) {
                    const float sk = ak[j] * s_in[o + j] + u[j];
                    s_out[o + j] = sk;
                    zb[j] += mk[j] * sk;
                }
            }
            for (int j = 0; j < H; j++) zb[j] = zb[j] > 0.0f ? zb[j] : 0.0f;
        }
        for (int l = 0; l < L; l++) {
            for (int b = 0; b < nb; b++) memcpy(hp[b], h_in + ((size_t)l * n + c0 + b) * H, (size_t)H * sizeof(float));
            const float *Wi = wih_t + (size_t)l * H * G, *Wh = whh_t + (size_t)l * H * G;
            for (int j0 = 0; j0 < G; j0 += JB) {
                if (nb == CB) {
                    tile(CB, H, G, j0, Wi, bih + (size_t)l * G, (const float (*)[MAXH])z, gi);
                    tile(CB, H, G, j0, Wh, bhh + (size_t)l * G, (const float (*)[MAXH])hp, gh);
                } else {
                    tile(nb, H, G, j0, Wi, bih + (size_t)l * G, (const float (*)[MAXH])z, gi);
                    tile(nb, H, G, j0, Wh, bhh + (size_t)l * G, (const float (*)[MAXH])hp, gh);
                }
            }
            for (int b = 0; b < nb; b++) {
                const float *gib = gi[b], *ghb = gh[b];
                for (int j = 0; j < H; j++) {
                    const float r = sigm(gib[j] + ghb[j]);
                    const float u = sigm(gib[H + j] + ghb[H + j]);
                    const float m = tanh_c(gib[2 * H + j] + r * ghb[2 * H + j]);
                    z[b][j] = m + u * (hp[b][j] - m);
                }
                memcpy(h_out + ((size_t)l * n + c0 + b) * H, z[b], (size_t)H * sizeof(float));
            }
        }
        for (int b = 0; b < nb; b++) {
            float *yc = y + (size_t)(c0 + b) * ldy;
            for (int o = 0; o < n_out; o++) {
                const float *w = wout + (size_t)o * H;
                float acc = b_out[o];
                for (int j = 0; j < H; j++) acc += w[j] * z[b][j];
                yc[o] = acc;
            }
        }
    }
    return 0;
}

int ns_gru_step(const struct ns_gru *M, int n, const float *x, const float *h_in, float *h_out,
                const float *s_in, float *s_out, float *y)
{
    return step_strided(M, n, x, (size_t)M->n_in, h_in, h_out, s_in, s_out, y, (size_t)M->n_out);
}

/* T steps of n cells: x (n, T, n_in), y (n, T, n_out). The state (h (L, n, H), s (K, n, H)) is read
 * and replaced by the state after the last step; h_tmp, s_tmp are scratch of the same sizes. */
int ns_gru_sequence(const struct ns_gru *M, int n, int T, const float *x, float *h, float *s, float *y,
                    float *h_tmp, float *s_tmp)
{
    float *hc = h, *hn = h_tmp, *sc = s, *sn = s_tmp;
    for (int t = 0; t < T; t++) {
        int rc = step_strided(M, n, x + (size_t)t * M->n_in, (size_t)T * M->n_in, hc, hn, sc, sn,
                              y + (size_t)t * M->n_out, (size_t)T * M->n_out);
        if (rc) return rc;
        float *tmp = hc; hc = hn; hn = tmp;
        tmp = sc; sc = sn; sn = tmp;
    }
    if (hc != h) { /* odd T: the final state is in the scratch buffers */
        memcpy(h, hc, (size_t)M->L * n * M->H * sizeof(float));
        if (M->K) memcpy(s, sc, (size_t)M->K * n * M->H * sizeof(float));
    }
    return 0;
}
