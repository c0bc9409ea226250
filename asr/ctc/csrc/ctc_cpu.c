/* CTC loss and gradient on the CPU, vectorised over label states, threaded over the batch.
 *
 * The recursions run in probability space with one scale per frame (Rabiner scaling) rather than
 * in log space: a state update is then three multiply-adds, which the compiler vectorises across
 * states, instead of three exp and one log. Each frame's state emissions exp(lp_t(z_s) - m_t),
 * m_t the largest, are computed once (from V exps and a gather when V < S) and kept for the
 * backward pass, so the hot loops read contiguous rows. A frame whose states would all underflow
 * (a confident wrong prediction) is recomputed in log space; that path is rare and scalar.
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
 *
 * Compiled with -ffast-math: no value may be inf or NaN, so -1e30 stands in for log(0) and
 * feasibility is reported by return values, never by a NaN.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UNDERFLOW 1e-30f
#define FLOOR -1e30f

typedef struct {
    int S, T, V;
    const float *lp; /* frame 0 of this utterance; frame t at lp + t * frame_stride */
    int64_t frame_stride;
    const int32_t *z;  /* extended target, S entries */
    const float *skip; /* 1 where s-2 -> s is allowed, else 0; S + 2 entries, the last two 0 */
    /* Emissions exp(lp_t - m_t), m_t the frame's largest: T rows of row_len floats. With fewer
     * tokens than states a row holds every token (row_len = V, idx = z); with more, it holds
     * every state (row_len = S, idx = 0, 1, ...). State s at frame t emits table[t][idx[s]]. */
    float *table;
    int row_len;
    const int32_t *idx;
} Utterance;

static inline int lowest_state(const Utterance *u, int t) {
    int lo = u->S - 2 * (u->T - t);
    return lo > 0 ? lo : 0;
}

static inline int highest_state(const Utterance *u, int t) {
    int hi = 2 * t + 1;
    return hi < u->S - 1 ? hi : u->S - 1;
}

/* Fill frame t's row of the emission table; returns m_t. */
static float emissions(const Utterance *u, int t, int lo, int hi) {
    const float *lp = u->lp + t * u->frame_stride;
    float *row = u->table + (size_t)t * u->row_len, m = FLOOR;
    if (u->idx == u->z) { /* a row per token */
        for (int v = 0; v < u->V; v++) m = fmaxf(m, lp[v]);
        for (int v = 0; v < u->V; v++) row[v] = expf(fmaxf(lp[v] - m, -87.0f));
    } else {
        for (int s = lo; s <= hi; s++) m = fmaxf(m, lp[u->z[s]]);
        for (int s = lo; s <= hi; s++) row[s] = expf(fmaxf(lp[u->z[s]] - m, -87.0f));
    }
    return m;
}

/* Multiply row[lo..hi] by 1 / sum; returns 0 if the sum is not positive. */
static int rescale(float *row, int lo, int hi, float sum) {
    if (!(sum > 0.0f)) return 0;
    float inv = 1.0f / sum;
    for (int s = lo; s <= hi; s++) row[s] *= inv;
    return 1;
}

/* Incoming mass of state s at frame t (t > 0) from the previous row. */
static inline float incoming(const Utterance *u, const float *prev, int s) {
    if (s >= 2) return prev[s] + prev[s - 1] + u->skip[s] * prev[s - 2];
    return prev[s] + (s ? prev[s - 1] : 0.0f);
}

/* Frame t of alpha in log space, for when probability space underflows: row[s] = incoming(s) *
 * exp(lp_t(z_s)), normalised; *scale = log of the factor taken out. Returns 0 if no state has mass. */
static int log_space_frame(const Utterance *u, int t, int lo, int hi, const float *prev, float *row,
                           double *scale) {
    const float *lp = u->lp + t * u->frame_stride;
    float m = FLOOR;
    for (int s = lo; s <= hi; s++) {
        float in = t ? incoming(u, prev, s) : 1.0f;
        float x = in > 0.0f ? logf(in) + fmaxf(lp[u->z[s]], FLOOR) : FLOOR;
        row[s] = x;
        m = fmaxf(m, x);
    }
    if (!(m > 0.5f * FLOOR)) return 0;
    float sum = 0.0f;
    for (int s = lo; s <= hi; s++) {
        row[s] = expf(fmaxf(row[s] - m, -87.0f));
        sum += row[s];
    }
    *scale = m + log((double)sum);
    return rescale(row, lo, hi, sum);
}

/* Forward pass: alpha holds T rows of S floats if store, else 2 rows reused. Sets *log_p and
 * returns 1, or returns 0 if no path reaches the end (too few frames for the target). */
static int forward(Utterance *u, float *alpha, int store, double *log_p) {
    const int S = u->S;
    *log_p = 0.0;
    float *prev = NULL;
    for (int t = 0; t < u->T; t++) {
        float *row = alpha + (size_t)(store ? t : t % 2) * S;
        int lo = lowest_state(u, t), hi = highest_state(u, t);
        if (lo > hi) return 0;
        const float m = emissions(u, t, lo, hi);
        const float *E = u->table + (size_t)t * u->row_len;
        const int32_t *idx = u->idx;
        /* The next frame reads up to two states past hi: they must be zero, not stale. */
        for (int s = hi + 1; s <= hi + 2 && s < S; s++) row[s] = 0.0f;
        float sum = 0.0f;
        if (t == 0) {
            for (int s = lo; s <= hi; s++) sum += row[s] = E[idx[s]];
        } else {
            int s = lo;
            for (; s <= hi && s < 2; s++) sum += row[s] = incoming(u, prev, s) * E[idx[s]];
            for (; s <= hi; s++) sum += row[s] = (prev[s] + prev[s - 1] + u->skip[s] * prev[s - 2]) * E[idx[s]];
        }
        double scale;
        if (sum > UNDERFLOW) {
            rescale(row, lo, hi, sum);
            scale = m + log((double)sum);
        } else if (!log_space_frame(u, t, lo, hi, prev, row, &scale)) {
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

/* beta_t from beta_{t+1} (next) into beta; w is scratch of S + 2 floats whose last two are 0. */
static void beta_step(const Utterance *u, int t, const float *next, float *beta, float *w) {
    int lo = lowest_state(u, t), hi = highest_state(u, t);
    int nlo = lowest_state(u, t + 1), nhi = highest_state(u, t + 1);
    const float *E = u->table + (size_t)(t + 1) * u->row_len;
    w[lo] = w[lo + 1] = 0.0f; /* read below nlo (= lo + 2 unless lo is 0); w[S], w[S + 1] stay 0 */
    float sum = 0.0f;
    for (int s = nlo; s <= nhi; s++) {
        w[s] = E[u->idx[s]] * next[s];
        sum += w[s];
    }
    if (!(sum > UNDERFLOW)) {
        /* Log-space fallback: w = exp(lp_{t+1}(z_s) + log beta_{t+1}(s) - max). */
        const float *lp = u->lp + (t + 1) * u->frame_stride;
        float m = FLOOR;
        for (int s = nlo; s <= nhi; s++) {
            w[s] = next[s] > 0.0f ? logf(next[s]) + fmaxf(lp[u->z[s]], FLOOR) : FLOOR;
            m = fmaxf(m, w[s]);
        }
        for (int s = nlo; s <= nhi; s++) w[s] = expf(fmaxf(w[s] - m, -87.0f));
    }
    sum = 0.0f;
    for (int s = lo; s <= hi; s++) {
        beta[s] = w[s] + w[s + 1] + u->skip[s + 2] * w[s + 2];
        sum += beta[s];
    }
    rescale(beta, lo, hi, sum);
}

/* Backward pass with one beta column, writing the gradient rows of this utterance. */
static void backward(const Utterance *u, const float *alpha, float *beta, float *next, float *w, float *grad,
                     int64_t grad_stride, int blank) {
    const int S = u->S, V = u->V;
    memset(beta, 0, sizeof(float) * S);
    beta[S - 1] = 1.0f;
    if (S > 1) beta[S - 2] = 1.0f;
    for (int t = u->T - 1; t >= 0; t--) {
        if (t < u->T - 1) {
            float *swap = next;
            next = beta;
            beta = swap;
            beta_step(u, t, next, beta, w);
        }
        int lo = lowest_state(u, t), hi = highest_state(u, t);
        const float *a = alpha + (size_t)t * S;
        float total = 0.0f, blanks = 0.0f;
        for (int s = lo; s <= hi; s++) {
            w[s] = a[s] * beta[s];
            total += w[s];
        }
        for (int s = lo + (lo & 1); s <= hi; s += 2) blanks += w[s];
        /* exp(lp), then minus the posterior of each token. */
        float *g = grad + t * grad_stride;
        const float *lp = u->lp + t * u->frame_stride;
        for (int v = 0; v < V; v++) g[v] = expf(fmaxf(lp[v], -87.0f));
        if (total > 0.0f) {
            const float inv = 1.0f / total;
            g[blank] -= blanks * inv;
            for (int s = lo | 1; s <= hi; s += 2) g[u->z[s]] -= w[s] * inv;
        }
    }
}

/* Loss (negative log-likelihood, +inf if infeasible) of each utterance and, if grad is not NULL,
 * the gradient (T, B, V) with rows past an utterance's length, and infeasible utterances, zero.
 * Inputs are validated by the caller. Returns 0, or -1 if memory ran out. */
int ctc_loss_cpu(const float *log_probs, const int64_t *targets, const int64_t *input_lengths,
                 const int64_t *target_lengths, int T, int B, int V, int max_target, int blank, int num_threads,
                 float *losses, float *grad) {
    int failed = 0;
    const int64_t frame_stride = (int64_t)B * V;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads) reduction(| : failed)
    for (int b = 0; b < B; b++) {
        const int L = (int)target_lengths[b], S = 2 * L + 1, Tb = (int)input_lengths[b];
        const size_t frames = Tb > 0 ? (size_t)Tb : 1;
        float *alpha = malloc(sizeof(float) * (grad ? frames : 2) * S);
        const int per_state = V > S, row_len = per_state ? S : V;
        float *table = malloc(sizeof(float) * frames * row_len);
        int32_t *identity = per_state ? malloc(sizeof(int32_t) * S) : NULL;
        float *work = malloc(sizeof(float) * (4 * (size_t)S + 4)); /* skip and w carry 2 extra zeros */
        int32_t *z = malloc(sizeof(int32_t) * S);
        if (!alpha || !table || !work || !z || (per_state && !identity)) {
            failed = 1;
        } else {
            float *skip = work, *beta = work + S + 2, *next = work + 2 * S + 2, *w = work + 3 * S + 2;
            skip[S] = skip[S + 1] = w[S] = w[S + 1] = 0.0f;
            for (int s = 0; s < S; s++) {
                z[s] = s % 2 ? (int32_t)targets[(int64_t)b * max_target + s / 2] : blank;
                skip[s] = (s % 2 && s >= 3 && z[s] != z[s - 2]) ? 1.0f : 0.0f;
            }
            if (identity)
                for (int s = 0; s < S; s++) identity[s] = s;
            Utterance u = {S, Tb, V, log_probs + (int64_t)b * V, frame_stride, z, skip, table, row_len,
                           identity ? identity : z};
            double log_p = 0.0;
            int feasible = Tb > 0 && forward(&u, alpha, grad != NULL, &log_p);
            losses[b] = feasible ? (float)-log_p : INFINITY;
            if (grad) {
                /* backward writes rows 0..Tb-1 of a feasible utterance; the rest of its column is 0 */
                for (int t = feasible ? Tb : 0; t < T; t++) memset(grad + t * frame_stride + (int64_t)b * V, 0, sizeof(float) * V);
                if (feasible) backward(&u, alpha, beta, next, w, grad + (int64_t)b * V, frame_stride, blank);
            }
        }
        free(alpha);
        free(table);
        free(identity);
        free(work);
        free(z);
    }
    return failed ? -1 : 0;
}
