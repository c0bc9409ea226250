/* CTC loss and gradient on the CPU: log space, vectorised over label states, threaded over the batch.
 *
 * Why log space: a trained CTC model is peaky, its log-probs spread over hundreds of nats, and a
 * state far behind the best one at frame t can be the only one left a few frames later. A
 * probability-space recursion with one scale per frame keeps only 87 nats (float32) below the
 * largest state, loses such states and gets the loss wrong; log space keeps every state.
 *
 * Why it is still fast:
 * - the states of a frame are split into blank states (s = 2k) and label states (s = 2k + 1), two
 *   contiguous arrays, so every update is a branch-free loop the compiler vectorises, run in whole
 *   vectors over padded rows (no scalar remainder loops);
 * - each state costs one log-sum-exp of two terms in the forward pass: a label state's three
 *   predecessors are its own, and the blank before it together with the label before that, whose
 *   sum x the blank state has just computed (when the labels differ);
 * - the backward pass is reverse-mode differentiation of the forward one rather than a second
 *   (beta) recursion: each log-sum-exp hands the posterior it received back to its two inputs in
 *   proportion to their shares, computed from the stored floats; a state costs one exp2 and a
 *   division, and the posteriors come out directly, as probabilities;
 * - logs are base 2, and exp2 and log2(1 + y) are short inline polynomials (minimax, within
 *   2e-7) instead of libm calls;
 * - each row is stored shifted by the previous row's largest entry, the shifts summed in double,
 *   so the floats stay near 0 and precise over thousands of frames; log2(1 + y) never forms
 *   1 + y, so tiny losses (a confident, right model) keep their relative precision;
 * - only states that can still lie on a complete path are visited (S - 2(T - t) <= s <= 2t + 1).
 *
 * Layout: log_probs (T, B, V) float32; targets (B, max_target) int64; grad (T, B, V) float32.
 * Extended target z = (blank, y0, blank, y1, ..., y_{L-1}, blank), S = 2L + 1 states; e_t(s) is
 * the log2-prob of z_s at frame t, lse(a, b) = log2(2^a + 2^b), skip_k = [y_k != y_{k-1}]:
 *   x_t(k)          = lse(alpha_{t-1}(2k), alpha_{t-1}(2k - 1))
 *   alpha_t(2k)     = e_t(blank) + x_t(k)
 *   alpha_t(2k + 1) = e_t(y_k) + lse(alpha_{t-1}(2k + 1), skip_k ? x_t(k) : alpha_{t-1}(2k))
 *   log2 P          = lse(alpha_{T-1}(2L), alpha_{T-1}(2L - 1))
 * The posterior of state s at frame t is gamma_t(s) = d log P / d alpha_t(s); the gradient row is
 *   grad[t, v] = exp(lp[t, v]) - sum over s with z_s = v of gamma_t(s),
 * torch's convention (the gradient as seen through log_softmax).
 *
 * NEG, a large finite negative, stands in for log(0): arithmetic on it never makes inf or NaN.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NEG -1.0e30f
#define LOG2E 1.44269504088896341f
#define LN2 0.69314718055994531

static inline float max_(float a, float b) { return a > b ? a : b; }
static inline float min_(float a, float b) { return a < b ? a : b; }

/* 2^x, within 2e-7 relative for -60 <= x <= 127; 0 below -60. Cutting at 2^-60 (1e-18, far
 * below float precision next to the 1 it is added to) keeps every intermediate, here and in
 * log2_1p, out of the denormal range, where x86 arithmetic is many times slower. Branch-free, so
 * loops calling it vectorise. */
static inline float exp2_(float x) {
    float c = x < -60.0f ? -60.0f : (x > 127.0f ? 127.0f : x);
    float n = floorf(c + 0.5f), r = c - n; /* r in [-0.5, 0.5], exact */
    float p = 1.3276471521e-3f;
    p = p * r + 9.6755413307e-3f;
    p = p * r + 5.5507132750e-2f;
    p = p * r + 2.4022119724e-1f;
    p = p * r + 6.9314696706e-1f;
    p = p * r + 1.0000000717e+0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return x < -60.0f ? 0.0f : p * scale.f;
}

/* log2(1 + y) for 0 <= y <= 1, within 1e-7 relative: y times a minimax polynomial; never forms
 * 1 + y, so it is as precise for y = 1e-9 as for y = 1. */
static inline float log2_1p(float y) {
    float p = 7.5541985467e-03f;
    p = p * y - 4.2588413082e-02f;
    p = p * y + 1.1289362057e-01f;
    p = p * y - 1.9715379097e-01f;
    p = p * y + 2.7565986855e-01f;
    p = p * y - 3.5841402390e-01f;
    p = p * y + 4.8069384323e-01f;
    p = p * y - 7.2134027152e-01f;
    p = p * y + 1.4426949988e+00f;
    return p * y;
}

/* log2(2^a + 2^b). */
static inline float lse(float a, float b) {
    float m = max_(a, b);
    return m + log2_1p(exp2_(min_(a, b) - m));
}

typedef struct {
    int L, T, V, blank;
    const float *lp; /* frame 0 of this utterance; frame t at lp + t * stride */
    int64_t stride;
    const int32_t *label; /* L labels, then the blank as padding (W entries) */
    const float *skip;    /* 1 where label k may directly follow label k - 1, else 0 (W entries) */
    int W;                /* row width of the state arrays: L + PADDING */
} Utterance;

/* The states a complete path can occupy at frame t are lo..hi; as blank and label indices:
 * blanks k = b0..b1 (s = 2k), labels k = l0..l1 (s = 2k + 1). Empty ranges have first > last. */
typedef struct {
    int lo, hi, b0, b1, l0, l1;
} Band;

static Band band(const Utterance *u, int t) {
    int S = 2 * u->L + 1, lo = S - 2 * (u->T - t), hi = 2 * t + 1;
    lo = lo > 0 ? lo : 0;
    hi = hi < S - 1 ? hi : S - 1;
    return (Band){lo, hi, (lo + 1) / 2, hi / 2, lo / 2, (hi - 1) >> 1};
}

/* A row of states is two arrays, blanks[k] (state 2k) and labels[k] (state 2k + 1), k from 0 (and
 * labels from -1, a guard) to L and a padding: the state loops run in whole vectors of LANES
 * states (AVX2 floats), so the compiler needs no scalar remainder loop; their extra iterations
 * read NEG (or posteriors of 0) and write into the padding. */
#define LANES 8
#define PADDING (2 * LANES + 8) /* row width is L + PADDING */

static inline int whole_vectors(int first, int last) {
    return last < first ? 0 : (last - first + LANES) & ~(LANES - 1);
}

/* Make the states just above the band NEG, as many as the loops of the frames around read. */
static void clear_above(float *blanks, float *labels, Band r) {
    for (int i = 1; i <= LANES + 3; i++) blanks[r.b1 + i] = labels[r.l1 + i] = NEG;
}

/* log2-prob of a token, floored at NEG. */
static inline float emission(const float *lp, int token) { return max_(lp[token] * LOG2E, NEG); }

/* Forward pass. Row t is stored shifted by offset_t, the sum (double) of the largest stored
 * entries of rows 0..t-1, so values stay near 0: labels hold alpha_t(2k + 1) - offset_t; blanks
 * hold x_t(k), and alpha_t(2k) - offset_t = x_t(k) + shift_t, where shift_t = e_t(blank) minus
 * the largest entry of row t - 1 (kept per frame). Keeping x lets the backward pass retrace every
 * sum exactly. Rows go to xs/labels (T rows of W floats if shifts is not NULL, which then
 * receives shift_t; else two rows reused). Sets *log2_p and returns FEASIBLE, or returns
 * INFEASIBLE if no path reaches the end, or NOT_A_NUMBER if a log-prob it used is NaN. */
enum { INFEASIBLE, FEASIBLE, NOT_A_NUMBER };

static int forward(const Utterance *u, float *xs, float *labels, float *shifts, double *log2_p) {
    const int W = u->W, L = u->L;
    int nan = 0;
    const float *restrict skip = u->skip;
    const int32_t *restrict label = u->label;
    double offset = 0.0;
    float peak = 0.0f, shift = 0.0f; /* the previous row's largest entry; the previous shift */
    float *x = NULL, *l = NULL;
    for (int t = 0; t < u->T; t++) {
        const size_t row = (size_t)(shifts ? t : t % 2) * W;
        const float *restrict px = x, *restrict pl = l;
        const float previous_shift = shift;
        x = xs + row;
        l = labels + row + 1;
        l[-1] = NEG;
        Band r = band(u, t);
        if (r.lo > r.hi) return INFEASIBLE;
        const float *restrict lp = u->lp + t * u->stride;
        nan |= isnan(lp[u->blank]);
        if (u->V > 64 && t + 1 < u->T) /* a large vocabulary: fetch the next frame's labels early */
            for (int k = r.l0; k <= r.l1 + 1 && k < L; k++) __builtin_prefetch(lp + u->stride + label[k]);
        offset += peak;
        shift = emission(lp, u->blank) - peak;
        float top = NEG;
        if (t == 0) {
            x[0] = r.b0 == 0 ? 0.0f : NEG;
            l[0] = L > 0 && r.l1 >= 0 ? emission(lp, label[0]) : NEG; /* an empty target too: top reads it */
            nan |= L > 0 && isnan(lp[label[0]]);
            top = max_(x[0] + shift, l[0]);
        } else {
            const int blank_count = whole_vectors(r.l0, r.b1), label_count = whole_vectors(r.l0, r.l1);
            float *restrict nx = x, *restrict nl = l;
#pragma omp simd reduction(max : top)
            for (int i = 0; i < blank_count; i++) {
                const int k = r.l0 + i;
                nx[k] = max_(lse(px[k] + previous_shift, pl[k - 1]), NEG);
                top = max_(top, nx[k] + shift);
            }
#pragma omp simd reduction(max : top) reduction(| : nan)
            for (int i = 0; i < label_count; i++) {
                const int k = r.l0 + i;
                const float e = lp[label[k]];
                float in = lse(pl[k], skip[k] > 0.0f ? nx[k] : px[k] + previous_shift);
                top = max_(top, nl[k] = max_(in + e * LOG2E - peak, NEG));
                nan |= e != e;
            }
        }
        if (shifts) shifts[t] = shift;
        clear_above(x, l, r);
        if (nan) return NOT_A_NUMBER;
        if (top <= 0.5f * NEG) return INFEASIBLE;
        peak = top;
    }
    float end = lse(x[L] + shift, l[L - 1]); /* states S - 1 and S - 2 (the guard when L = 0) */
    if (end <= 0.5f * NEG) return INFEASIBLE;
    *log2_p = offset + end;
    return FEASIBLE;
}

/* Posteriors below 1e-15 are 0: they change no gradient entry by more than that, and the
 * products of smaller ones would fall into the denormal range, where arithmetic is many times
 * slower (soft 400-frame inputs took twice as long before). */
static inline float flush(float posterior) { return posterior < 1e-15f ? 0.0f : posterior; }

/* The shares of 2^a and 2^b in 2^a + 2^b, where d = a - b. */
static inline void split(float d, float *share_a, float *share_b) {
    float y = exp2_(d < 0.0f ? d : -d), r = 1.0f / (1.0f + y); /* 2^-|d| */
    *share_a = d >= 0.0f ? r : y * r;
    *share_b = d >= 0.0f ? y * r : r;
}

/* Backward pass: the posteriors, by reverse-mode differentiation of the forward recursion
 * (gamma_t(s) = d log P / d log alpha_t(s), the posterior of state s at frame t). Each log-sum-exp
 * of the forward pass hands its posterior back to its two inputs in proportion to their shares,
 * 2^input / 2^sum, computed from the stored rows with the forward's own floats; so a state costs
 * one exp2 and a division instead of a second log-sum-exp. Posteriors are probabilities (linear,
 * no offsets). Writes this utterance's gradient rows (frame t at grad + t * grad_stride).
 * rows: six scratch rows of W floats (two gamma rows, two flow rows; labels from index -1). */
static void backward(const Utterance *u, const float *xs, const float *labels, const float *shifts, float *rows,
                     float *grad, int64_t grad_stride) {
    const int W = u->W, L = u->L, T = u->T;
    const float *restrict skip = u->skip;
    const int32_t *restrict label = u->label;
    memset(rows, 0, sizeof(float) * 6 * W);
    float *gamma_blanks = rows, *gamma_labels = rows + W + 1, *earlier_blanks = rows + 2 * W,
          *earlier_labels = rows + 3 * W + 1, *restrict own = rows + 4 * W + 1, *restrict down = rows + 5 * W;
    /* Frame T - 1: the end is lse(alpha(S - 1), alpha(S - 2)). */
    const float *last_x = xs + (size_t)(T - 1) * W, *last_l = labels + (size_t)(T - 1) * W + 1;
    if (L == 0) {
        gamma_blanks[0] = 1.0f;
    } else {
        split(last_x[L] + shifts[T - 1] - last_l[L - 1], &gamma_blanks[L], &gamma_labels[L - 1]);
    }
    float total = 1.0f;
    for (int t = T - 1; t >= 0; t--) {
        Band r = band(u, t);
        float *restrict gb = gamma_blanks, *restrict gl = gamma_labels;
        float *restrict g = grad + t * grad_stride;
        const float *restrict frame = u->lp + t * u->stride;
        float blanks = 0.0f;
#pragma omp simd reduction(+ : blanks)
        for (int k = r.b0; k <= r.b1; k++) blanks += gb[k];
#pragma omp simd
        for (int v = 0; v < u->V; v++) g[v] = exp2_(frame[v] * LOG2E);
        if (total > 0.0f) {
            const float inv = 1.0f / total;
            g[u->blank] -= blanks * inv;
            for (int k = r.l0; k <= r.l1; k++) g[label[k]] -= gl[k] * inv;
        }
        if (t == 0) break;

        /* gamma_{t-1} from gamma_t, through frame t's sums (in row t - 1's frame of reference). */
        const float *restrict px = xs + (size_t)(t - 1) * W, *restrict pl = labels + (size_t)(t - 1) * W + 1;
        const float *restrict cx = xs + (size_t)t * W;
        const float previous_shift = shifts[t - 1];
        float *restrict eb = earlier_blanks, *restrict el = earlier_labels;
        const int count = whole_vectors(r.l0, r.b1 + 1); /* the labels below read one blank more */
        float blank_total = 0.0f, label_total = 0.0f;
#pragma omp simd reduction(+ : blank_total)
        for (int i = 0; i < count; i++) {
            const int k = r.l0 + i;
            const float before = px[k] + previous_shift; /* alpha_{t-1}(2k) */
            const int jumps = skip[k] > 0.0f;
            /* label k: lse(alpha_{t-1}(2k + 1), x_t(k) if it may jump, else alpha_{t-1}(2k)) */
            float keep, pass;
            split(pl[k] - (jumps ? cx[k] : before), &keep, &pass);
            own[k] = flush(gl[k] * keep);
            const float passed = gl[k] * pass;
            /* x_t(k) = lse(alpha_{t-1}(2k), alpha_{t-1}(2k - 1)) collects the blank's posterior */
            const float into_x = gb[k] + (jumps ? passed : 0.0f);
            float to_blank, to_label;
            split(before - pl[k - 1], &to_blank, &to_label);
            eb[k] = flush(into_x * to_blank + (jumps ? 0.0f : passed));
            down[k] = flush(into_x * to_label);
            blank_total += eb[k];
        }
#pragma omp simd reduction(+ : label_total)
        for (int i = 0; i < count; i++) {
            const int k = r.l0 - 1 + i;
            el[k] = own[k] + down[k + 1];
            label_total += el[k];
        }
        total = blank_total + label_total;
        /* gamma_t's row is reused for gamma_{t-2}: leave it all zeros again (it is 0 off the band). */
        if (r.b1 >= r.b0) memset(gb + r.b0, 0, sizeof(float) * (r.b1 - r.b0 + 1));
        if (r.l1 >= r.l0) memset(gl + r.l0, 0, sizeof(float) * (r.l1 - r.l0 + 1));
        gamma_blanks = eb;
        gamma_labels = el;
        earlier_blanks = gb;
        earlier_labels = gl;
    }
}

/* Loss (negative log-likelihood; +inf if infeasible, NaN if a log-prob it depends on is NaN) of
 * each utterance and, if grad is not NULL, the gradient (T, B, V), whose rows past an utterance's
 * length, and all rows of an infeasible one, are zero (NaN for a NaN one).
 * Inputs are validated by the caller. Returns 0, or -1 if memory ran out. */
int ctc_loss_cpu(const float *log_probs, const int64_t *targets, const int64_t *input_lengths,
                 const int64_t *target_lengths, int T, int B, int V, int max_target, int blank, int num_threads,
                 float *losses, float *grad) {
    int failed = 0;
    const int64_t frame_stride = (int64_t)B * V;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads) reduction(| : failed)
    for (int b = 0; b < B; b++) {
        const int L = (int)target_lengths[b], Tb = (int)input_lengths[b], W = L + PADDING;
        const size_t rows = grad && Tb > 2 ? (size_t)Tb : 2;
        float *alpha = malloc(sizeof(float) * (2 * rows * W + rows)); /* x rows, label rows, shifts */
        float *work = malloc(sizeof(float) * 7 * (size_t)W); /* skip, six backward rows */
        int32_t *label = malloc(sizeof(int32_t) * W);
#ifdef SCRATCH_FILL /* tests build with it (1e30f, NAN): a read of scratch memory before its write shows */
        for (size_t i = 0; alpha && i < 2 * rows * W + rows; i++) alpha[i] = SCRATCH_FILL;
        for (size_t i = 0; work && i < 7 * (size_t)W; i++) work[i] = SCRATCH_FILL;
#endif
        if (!alpha || !work || !label) {
            failed = 1;
        } else {
            float *skip = work;
            for (int k = 0; k < L; k++) {
                label[k] = (int32_t)targets[(int64_t)b * max_target + k];
                skip[k] = k > 0 && label[k] != label[k - 1] ? 1.0f : 0.0f;
            }
            for (int k = L; k < W; k++) { /* padding: the blank, never skipped to */
                skip[k] = 0.0f;
                label[k] = blank;
            }
            Utterance u = {L, Tb, V, blank, log_probs + (int64_t)b * V, frame_stride, label, skip, W};
            float *xs = alpha, *labels = alpha + rows * W, *shifts = grad ? alpha + 2 * rows * W : NULL;
            double log2_p = 0.0;
            int status = Tb > 0 ? forward(&u, xs, labels, shifts, &log2_p)
                                : (L == 0 ? FEASIBLE : INFEASIBLE); /* no frames: only the empty target */
            losses[b] = status == FEASIBLE ? (float)(-log2_p * LN2) : status == INFEASIBLE ? INFINITY : NAN;
            if (grad) {
                /* rows past the utterance are 0; an infeasible one's are 0 too, a NaN one's NaN */
                for (int t = 0; t < T; t++) {
                    float *row = grad + t * frame_stride + (int64_t)b * V;
                    if (t >= Tb || status == INFEASIBLE) memset(row, 0, sizeof(float) * V);
                    else if (status == NOT_A_NUMBER)
                        for (int v = 0; v < V; v++) row[v] = NAN;
                }
                if (status == FEASIBLE && Tb > 0)
                    backward(&u, xs, labels, shifts, work + W, grad + (int64_t)b * V, frame_stride);
            }
        }
        free(alpha);
        free(work);
        free(label);
    }
    return failed ? -1 : 0;
}
