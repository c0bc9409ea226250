/* CTC loss and gradient on the CPU, vectorised over label states, threaded over the batch.
 *
 * The recursions run in probability space with one scale per frame (Rabiner scaling) rather than
 * in log space: a state update is then three multiply-adds, which the compiler vectorises across
 * states, instead of three exp and one log. Emissions are exp(lp - m_t), m_t the frame's largest
 * target log-prob, so they lie in (0, 1]. A frame whose states would all underflow (a confident
 * wrong prediction) is recomputed in log space; that path is rare and scalar.
 *
 * Layout: log_probs (T, B, V) float32; targets (B, max_target) int64; grad (T, B, V) float32.
 * For utterance b with extended target z (blanks between labels, S = 2L + 1 states):
 *   alpha_t(s) = e_t(z_s) * (alpha_{t-1}(s) + alpha_{t-1}(s-1) + skip_s alpha_{t-1}(s-2))
 *   beta_t(s)  = sum over s' in {s, s+1, s+2 if skip_{s+2}} of e_{t+1}(z_s') beta_{t+1}(s')
 * (alpha includes frame t's emission, beta does not). The posterior of state s at frame t is
 * alpha_t(s) beta_t(s) normalised over s, so the per-frame scales cancel in the gradient
 *   grad[t, v] = exp(lp[t, v]) - sum over s with z_s = v of posterior_t(s),
 * torch's convention (the gradient as seen through log_softmax). Only alpha is stored; beta is one
 * column. States that cannot be reached by frame t, or cannot reach the end from it, are skipped.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UNDERFLOW 1e-30f
#define FLOOR -1e30f  /* stands in for -inf: the kernel is compiled with finite math, */
                      /* so no value may be inf or NaN, and no NaN or inf serves as a flag either */

typedef struct {
    int S, T;
    const float *lp;  /* frame 0 of this utterance; frame t at lp + t * frame_stride */
    int64_t frame_stride;
    const int32_t *z; /* extended target, S entries */
    const float *skip; /* 1 where s-2 -> s is allowed, else 0; S + 2 entries, the last two 0 */
} Utterance;

static inline int lowest_state(const Utterance *u, int t) {
    int lo = u->S - 2 * (u->T - t);
    return lo > 0 ? lo : 0;
}

static inline int highest_state(const Utterance *u, int t) {
    int hi = 2 * t + 1;
    return hi < u->S - 1 ? hi : u->S - 1;
}

/* e[s] = exp(lp_t(z_s) - m) for s in [lo, hi]; returns m, the largest lp_t(z_s) there. */
static float emissions(const Utterance *u, int t, int lo, int hi, float *e) {
    const float *lp = u->lp + t * u->frame_stride;
    float m = FLOOR;
    for (int s = lo; s <= hi; s++) m = fmaxf(m, fmaxf(lp[u->z[s]], FLOOR));
    for (int s = lo; s <= hi; s++) e[s] = expf(fmaxf(fmaxf(lp[u->z[s]], FLOOR) - m, -87.0f));
    return m;
}

/* Normalise row[lo..hi] to sum 1; *scale = log of the factor taken out. Returns 0 if the row is empty. */
static int normalise(float *row, int lo, int hi, double *scale) {
    float sum = 0.0f;
    for (int s = lo; s <= hi; s++) sum += row[s];
    if (!(sum > 0.0f)) return 0;
    float inv = 1.0f / sum;
    for (int s = lo; s <= hi; s++) row[s] *= inv;
    *scale = log((double)sum);
    return 1;
}

/* row[s] <- incoming[s] * exp(lp_t(z_s)), done in log space; *scale as for normalise. */
static int log_space_frame(const Utterance *u, int t, int lo, int hi, float *row, double *scale) {
    const float *lp = u->lp + t * u->frame_stride;
    float m = FLOOR;
    for (int s = lo; s <= hi; s++) {
        float x = row[s] > 0.0f ? logf(row[s]) + fmaxf(lp[u->z[s]], FLOOR) : FLOOR;
        row[s] = x;
        m = fmaxf(m, x);
    }
    if (!(m > 0.5f * FLOOR)) return 0;
    for (int s = lo; s <= hi; s++) row[s] = expf(fmaxf(row[s] - m, -87.0f));
    if (!normalise(row, lo, hi, scale)) return 0;
    *scale += m;
    return 1;
}

/* Forward pass. alpha holds T rows of S floats if store, else 2 rows reused. Sets *log_p and
 * returns 1, or returns 0 if no path reaches the end (too few frames for the target). */
static int forward(const Utterance *u, float *alpha, int store, float *e, double *log_p) {
    const int S = u->S;
    *log_p = 0.0;
    float *prev = NULL;
    for (int t = 0; t < u->T; t++) {
        float *row = alpha + (size_t)(store ? t : t % 2) * S;
        int lo = lowest_state(u, t), hi = highest_state(u, t);
        memset(row, 0, sizeof(float) * S);
        if (lo > hi) return 0;
        if (t == 0) {
            for (int s = lo; s <= hi; s++) row[s] = 1.0f;
        } else {
            int s = lo;
            for (; s <= hi && s < 2; s++) row[s] = prev[s] + (s ? prev[s - 1] : 0.0f);
            for (; s <= hi; s++) row[s] = prev[s] + prev[s - 1] + u->skip[s] * prev[s - 2];
        }
        float m = emissions(u, t, lo, hi, e);
        float sum = 0.0f;
        for (int s = lo; s <= hi; s++) sum += row[s] * e[s];
        double scale;
        if (sum > UNDERFLOW) {
            for (int s = lo; s <= hi; s++) row[s] *= e[s];
            if (!normalise(row, lo, hi, &scale)) return 0;
            scale += m;
        } else if (!log_space_frame(u, t, lo, hi, row, &scale)) {
            return 0;
        }
        *log_p += scale;
        prev = row;
    }
    float end = prev[S - 1] + (S > 1 ? prev[S - 2] : 0.0f);
    if (!(end > 0.0f)) return 0;
    *log_p += log((double)end);
    return 1;
}

/* Backward pass with one beta column, writing the gradient rows of this utterance. */
static void backward(const Utterance *u, const float *alpha, float *beta, float *next, float *w, float *e,
                     float *grad, int64_t grad_stride, int V) {
    const int S = u->S;
    memset(beta, 0, sizeof(float) * S);
    beta[S - 1] = 1.0f;
    if (S > 1) beta[S - 2] = 1.0f;
    for (int t = u->T - 1; t >= 0; t--) {
        int lo = lowest_state(u, t), hi = highest_state(u, t);
        if (t < u->T - 1) {
            /* beta_t from beta_{t+1} (in next): w = e_{t+1} * beta_{t+1}. */
            int nlo = lowest_state(u, t + 1), nhi = highest_state(u, t + 1);
            emissions(u, t + 1, nlo, nhi, e);
            memset(w, 0, sizeof(float) * (S + 2));
            float sum = 0.0f;
            for (int s = nlo; s <= nhi; s++) {
                w[s] = e[s] * next[s];
                sum += w[s];
            }
            memset(beta, 0, sizeof(float) * S);
            if (sum > UNDERFLOW) {
                for (int s = lo; s <= hi; s++) beta[s] = w[s] + w[s + 1] + u->skip[s + 2] * w[s + 2];
            } else {
                /* Log-space fallback: beta_t(s) = logsumexp over successors of lp + log beta_{t+1}. */
                const float *lp = u->lp + (t + 1) * u->frame_stride;
                float m = FLOOR;
                for (int s = nlo; s <= nhi; s++) {
                    w[s] = next[s] > 0.0f ? logf(next[s]) + fmaxf(lp[u->z[s]], FLOOR) : FLOOR;
                    m = fmaxf(m, w[s]);
                }
                for (int s = nlo; s <= nhi; s++) w[s] = expf(fmaxf(w[s] - m, -87.0f));
                for (int s = lo; s <= hi; s++) beta[s] = w[s] + w[s + 1] + u->skip[s + 2] * w[s + 2];
            }
            double unused;
            normalise(beta, lo, hi, &unused);
        }
        /* Posterior of each state, then the gradient row. */
        const float *a = alpha + (size_t)t * S;
        double total = 0.0;
        for (int s = lo; s <= hi; s++) total += (double)a[s] * beta[s];
        float *g = grad + t * grad_stride;
        const float *lp = u->lp + t * u->frame_stride;
        for (int v = 0; v < V; v++) g[v] = expf(fmaxf(lp[v], -87.0f));
        if (total > 0.0) {
            double inv = 1.0 / total;
            for (int s = lo; s <= hi; s++) g[u->z[s]] -= (float)((double)a[s] * beta[s] * inv);
        }
        memcpy(next, beta, sizeof(float) * S);
    }
}

/* Loss (negative log-likelihood, +inf if infeasible) of each utterance and, if grad is not NULL,
 * the gradient (T, B, V) with rows past an utterance's length, and infeasible utterances, zero.
 * Inputs are validated by the caller. Returns 0, or -1 if memory ran out. */
int ctc_loss_cpu(const float *log_probs, const int64_t *targets, const int64_t *input_lengths,
                 const int64_t *target_lengths, int T, int B, int V, int max_target, int blank,
                 int num_threads, float *losses, float *grad) {
    int failed = 0;
    const int64_t frame_stride = (int64_t)B * V;
    if (grad) memset(grad, 0, sizeof(float) * (size_t)T * B * V);
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads) reduction(| : failed)
    for (int b = 0; b < B; b++) {
        const int L = (int)target_lengths[b], S = 2 * L + 1, Tb = (int)input_lengths[b];
        size_t alpha_rows = grad ? (size_t)(Tb > 0 ? Tb : 1) : 2;
        float *alpha = malloc(sizeof(float) * alpha_rows * S);
        float *work = malloc(sizeof(float) * (5 * (size_t)S + 4));  /* skip and w carry 2 extra zeros */
        int32_t *z = malloc(sizeof(int32_t) * S);
        if (!alpha || !work || !z) {
            failed = 1;
        } else {
            float *skip = work, *e = work + S + 2, *beta = work + 2 * S + 2, *next = work + 3 * S + 2;
            float *w = work + 4 * S + 2;
            skip[S] = skip[S + 1] = 0.0f;
            for (int s = 0; s < S; s++) {
                z[s] = s % 2 ? (int32_t)targets[(int64_t)b * max_target + s / 2] : blank;
                skip[s] = (s % 2 && s >= 3 && z[s] != z[s - 2]) ? 1.0f : 0.0f;
            }
            Utterance u = {S, Tb, log_probs + (int64_t)b * V, frame_stride, z, skip};
            double log_p = 0.0;
            int feasible = Tb > 0 && forward(&u, alpha, grad != NULL, e, &log_p);
            losses[b] = feasible ? (float)-log_p : INFINITY;
            if (grad && feasible) backward(&u, alpha, beta, next, w, e, grad + (int64_t)b * V, frame_stride, V);
        }
        free(alpha);
        free(work);
        free(z);
    }
    return failed ? -1 : 0;
}
