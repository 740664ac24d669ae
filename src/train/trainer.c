#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/timer.h"
#include "core/xassert.h"
#include "model/encoder.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/schedule.h"

/* Training order: a fresh permutation of the training split every epoch, from its own stream. */
typedef struct Sampler {
    Rng rng;
    int *perm, n, pos;
} Sampler;

static void sampler_next(Sampler *s, int *idx, int B) {
    for (int b = 0; b < B; b++) {
        if (s->pos == s->n) {
            rng_shuffle(&s->rng, s->perm, s->n);
            s->pos = 0;
        }
        idx[b] = s->perm[s->pos++];
    }
}

/* The most probable class of row r of the head. */
static int argmax_row(const Encoder *e, size_t r) {
    const float *pr = e->probs + r * e->C;
    int arg = 0;
    for (int c = 1; c < e->C; c++)
        if (pr[c] > pr[arg]) arg = c;
    return arg;
}

/* Mean loss and accuracy over the first max_batches batches of split (0 = all of it), with the
 * parameters of training step `step` (which fixes the draw of redrawn random features). For a
 * sequence task (pooling none) both are per target position: the mean cross-entropy over the
 * positions with a target and the fraction of them predicted right; *exact (else NaN) is the
 * fraction of examples whose every target position is right. logits, when not NULL, receives
 * the head's rows of every evaluated example in order: (n, C), or (n, L, C) with pooling none. */
static const volatile sig_atomic_t *g_eval_stop; /* evaluate() stops when this becomes nonzero */

static void evaluate(Encoder *e, const Split *sp, int max_batches, int *idx, uint64_t seed,
                     int64_t step, double *loss, double *acc, double *exact, float *logits) {
    const int B = e->NB; /* examples (a pair fills two rows) */
    int nb = (sp->n + B - 1) / B;
    if (max_batches > 0 && max_batches < nb) nb = max_batches;
    double lsum = 0.0;
    long correct = 0, count = 0, whole = 0, examples = 0;
    for (int bi = 0; bi < nb; bi++) {
        if (g_eval_stop && *g_eval_stop) { /* a signal: no figure over part of the split */
            *loss = *acc = *exact = NAN;
            return;
        }
        const int first = bi * B, real = XB_MIN(B, sp->n - first);
        for (int b = 0; b < B; b++) idx[b] = b < real ? first + b : first; /* pad the last batch */
        dataset_batch(sp, idx, B, e->L, e->cls_id, e->tokens, e->mask, e->labels);
        encoder_forward(e, 0, seed, step);
        if (logits) { /* head rows per example: 1, or L with pooling none */
            const size_t per = e->pooling == POOL_NONE ? (size_t)e->L * e->C : (size_t)e->C;
            memcpy(logits + (size_t)first * per, e->logits, (size_t)real * per * sizeof(float));
        }
        if (e->pooling == POOL_NONE) {
            for (int b = 0; b < real; b++) {
                int right = 1;
                for (size_t r = (size_t)b * e->L; r < (size_t)(b + 1) * e->L; r++) {
                    if (e->labels[r] < 0) continue;
                    const int ok = argmax_row(e, r) == e->labels[r];
                    correct += ok, right &= ok;
                    lsum += e->losses[r];
                    count++;
                }
                whole += right;
                examples++;
            }
            continue;
        }
        for (int b = 0; b < real; b++) {
            correct += argmax_row(e, (size_t)b) == e->labels[b];
            lsum += e->losses[b];
            count++;
        }
    }
    *loss = count ? lsum / (double)count : NAN;
    *acc = count ? (double)correct / (double)count : NAN;
    *exact = examples ? (double)whole / (double)examples : NAN;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of t[0..n) (sorts t). */
static double median(double *t, int n) {
    if (n == 0) return NAN;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

int train_check(const ExperimentConfig *cfg, const Dataset *ds, XbError *err) {
    XB_ASSERT(!ds->sequence == (cfg->pooling != POOL_NONE)); /* the config matched them */
    const Split *all[3] = {&ds->train, &ds->val, &ds->test};
    int64_t longest = 0;
    for (int k = 0; k < 3 && ds->sequence; k++)
        longest = XB_MAX(longest, dataset_max_length(all[k]));
    if (longest > cfg->max_len)
        return xb_error_set(err, cfg->source, 0, 0, "model.max_len",
                            "%d is shorter than the task's longest example, %lld tokens: the "
                            "positions past it would lose their targets (valid: %lld or more)",
                            cfg->max_len, (long long)longest, (long long)longest);
    return 0;
}

void train_result_free(TrainResult *r) {
    free(r->evals);
    r->evals = NULL;
    r->n_evals = 0;
}

int train_run(const ExperimentConfig *cfg, const Dataset *ds, const char *ckpt_path,
              const TrainHooks *hooks, TrainResult *r, XbError *err) {
    memset(r, 0, sizeof *r);
    r->status = "ok";
    r->best_val_acc = r->test_acc = r->test_loss = r->test_exact = NAN;
    r->best_step = -1;
    r->step_s_median = NAN;
    const int no_eval = hooks && hooks->no_eval;
    int64_t warm = hooks ? hooks->time_warmup : 0;
    if (warm < 1 && cfg->steps > 1) warm = 1; /* the first step pays for page faults */
    if (warm >= cfg->steps) warm = cfg->steps - 1;

    if (train_check(cfg, ds, err)) return -1;
    g_eval_stop = hooks ? hooks->stop : NULL;
    Encoder enc;
    if (encoder_create_pairs(&enc, cfg, ds->vocab_size, ds->n_classes, ds->pairs, err)) return -1;
    AdamW opt;
    float *best = malloc(enc.pt.total * sizeof(float));
    Sampler smp = {.n = ds->train.n, .pos = ds->train.n};
    smp.perm = malloc((size_t)smp.n * sizeof(int));
    int *idx = malloc((size_t)enc.NB * sizeof(int));
    double *times = malloc(TRAIN_TIMED_STEPS * sizeof *times); /* a ring of step times */
    int n_times = 0;
    const int64_t max_evals = cfg->steps / cfg->eval_every + 2;
    r->evals = calloc((size_t)max_evals, sizeof *r->evals);
    if (adamw_init(&opt, enc.pt.total, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay) ||
        !best || !smp.perm || !idx || !r->evals || !times) {
        free(best), free(smp.perm), free(idx), free(times), adamw_free(&opt), encoder_destroy(&enc);
        train_result_free(r);
        return xb_error_set(err, cfg->source, 0, 0, "model", "out of memory for %zu parameters",
                            params_count(&enc.pt));
    }
    for (int i = 0; i < smp.n; i++) smp.perm[i] = i;
    rng_seed(&smp.rng, cfg->seed, RNG_STREAM_SHUFFLE);
    encoder_init_params(&enc, cfg->seed);
    memcpy(best, enc.params, enc.pt.total * sizeof(float));

    r->n_params = params_count(&enc.pt);
    r->flops_fwd = encoder_flops(&enc, 0);
    r->flops_bwd = encoder_flops(&enc, 1);
    r->mem.parameters = r->mem.gradients = encoder_param_bytes(&enc);
    r->mem.optimizer = 2 * encoder_param_bytes(&enc);
    r->mem.activations = enc.acts.peak;
    r->mem.scratch_peak = enc.scratch.cap;

    flops_reset();
    double loss_sum = 0.0, last_val = NAN;
    int64_t loss_n = 0;
    const double t_start = timer_now();
    double t_eval = 0.0;
    int64_t step = 0;
    for (step = 1; step <= cfg->steps; step++) {
        if (hooks && hooks->stop && *hooks->stop) {
            r->status = "interrupted";
            snprintf(r->status_message, sizeof r->status_message,
                     "interrupted by a signal after %lld of %lld steps", (long long)(step - 1),
                     (long long)cfg->steps);
            break;
        }
        const double t_step = timer_now();
        sampler_next(&smp, idx, enc.NB);
        dataset_batch(&ds->train, idx, enc.NB, enc.L, enc.cls_id, enc.tokens, enc.mask, enc.labels);
        const double loss = encoder_forward(&enc, 1, cfg->seed, step);
        memset(enc.grads, 0, enc.pt.total * sizeof(float));
        encoder_backward(&enc, cfg->seed, step);
        const double gnorm = grad_clip(enc.grads, enc.pt.total, cfg->clip_norm);
        if (step == 1) r->flops_step_counted = flops_counted();
        if (!isfinite(loss) || !isfinite(gnorm)) {
            r->status = "diverged";
            snprintf(r->status_message, sizeof r->status_message,
                     "training diverged at step %lld: the %s is %s (try a lower train.lr or "
                     "train.clip_norm)",
                     (long long)step, isfinite(loss) ? "gradient norm" : "loss",
                     isnan(isfinite(loss) ? gnorm : loss) ? "NaN" : "infinite");
            break;
        }
        const double lr = schedule_lr(cfg->schedule, cfg->lr, cfg->warmup, cfg->steps, step);
        adamw_step(&opt, &enc.pt, enc.params, enc.grads, lr);
        loss_sum += loss - enc.aux_loss; /* the task's cross-entropy; auxiliary losses apart */
        loss_n++;
        r->steps_done = step;
        if (step > warm) times[n_times++ % TRAIN_TIMED_STEPS] = timer_now() - t_step;

        const int do_eval = !no_eval && (step % cfg->eval_every == 0 || step == cfg->steps);
        if (do_eval) {
            const double t0 = timer_now();
            EvalRecord *ev = &r->evals[r->n_evals++];
            ev->step = step;
            ev->lr = lr;
            ev->train_loss = loss_n ? loss_sum / (double)loss_n : NAN;
            double exact;
            evaluate(&enc, &ds->val, cfg->eval_batches, idx, cfg->seed, step, &ev->val_loss,
                     &ev->val_acc, &exact, NULL);
            if (g_eval_stop && *g_eval_stop) { /* a signal during the evaluation */
                r->n_evals--;
                r->status = "interrupted";
                snprintf(r->status_message, sizeof r->status_message,
                         "interrupted by a signal after %lld of %lld steps", (long long)step,
                         (long long)cfg->steps);
                break;
            }
            if (!(ev->val_acc <= r->best_val_acc)) { /* first evaluation, or strictly better */
                r->best_val_acc = ev->val_acc;
                r->best_step = step;
                memcpy(best, enc.params, enc.pt.total * sizeof(float));
                if (cfg->checkpoint && ckpt_path) {
                    char s_step[32];
                    snprintf(s_step, sizeof s_step, "%lld", (long long)step);
                    char s_hash[17];
                    snprintf(s_hash, sizeof s_hash, "%016llx", (unsigned long long)cfg_hash(cfg));
                    const char *meta[] = {"run_id", cfg->run_id, "config_hash", s_hash,
                                          "step",   s_step,      "format",      "pt"};
                    if (checkpoint_save(ckpt_path, &enc.pt, enc.params, meta, 4, err)) {
                        r->status = "failed";
                        snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
                        break;
                    }
                }
            }
            last_val = ev->val_acc;
            t_eval += timer_now() - t0;
            ev->elapsed_s = timer_now() - t_start;
            loss_sum = 0.0;
            loss_n = 0;
        }
        if (hooks && hooks->progress && (do_eval || step % cfg->log_every == 0)) {
            const double train_s = timer_now() - t_start - t_eval;
            TrainProgress p = {.step = step,
                               .steps = cfg->steps,
                               .lr = lr,
                               .val_acc = last_val,
                               .is_eval = do_eval};
            p.loss = do_eval ? r->evals[r->n_evals - 1].train_loss : loss - enc.aux_loss;
            p.steps_per_s = train_s > 0 ? (double)step / train_s : 0.0;
            p.eta_s = p.steps_per_s > 0 ? (double)(cfg->steps - step) / p.steps_per_s : 0.0;
            hooks->progress(hooks->ctx, &p);
        }
    }
    r->train_s = timer_now() - t_start - t_eval;
    r->eval_s = t_eval;

    /* Test the best validation checkpoint, read back from its file when one was written; not
     * after a signal, which asks for the report now (a test figure would take a whole pass). */
    if (r->best_step >= 0 && strcmp(r->status, "failed") != 0 &&
        strcmp(r->status, "interrupted") != 0) {
        const double t0 = timer_now();
        int loaded = 0;
        if (cfg->checkpoint && ckpt_path) {
            if (checkpoint_load(ckpt_path, &enc.pt, enc.params, err) == 0)
                loaded = 1;
            else {
                r->status = "failed";
                snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
            }
        } else {
            memcpy(enc.params, best, enc.pt.total * sizeof(float));
            loaded = 1;
        }
        if (loaded)
            evaluate(&enc, &ds->test, 0, idx, cfg->seed, r->best_step, &r->test_loss, &r->test_acc,
                     &r->test_exact, NULL);
        if (g_eval_stop && *g_eval_stop) {
            r->status = "interrupted";
            snprintf(r->status_message, sizeof r->status_message,
                     "interrupted by a signal while testing, after %lld of %lld steps",
                     (long long)r->steps_done, (long long)cfg->steps);
        }
        r->eval_s += timer_now() - t0;
    }
    r->flops_total = flops_counted();
    r->steps_per_s = r->train_s > 0 ? (double)r->steps_done / r->train_s : 0.0;
    r->tokens_per_s = r->steps_per_s * (double)enc.B * (double)enc.L;
    r->mem.scratch_peak = enc.scratch.peak;
    r->step_s_median = median(times, XB_MIN(n_times, TRAIN_TIMED_STEPS));

    free(best), free(smp.perm), free(idx), free(times);
    adamw_free(&opt);
    encoder_destroy(&enc);
    g_eval_stop = NULL;
    return 0;
}

int train_eval_checkpoint(const ExperimentConfig *cfg, const Dataset *ds, const Split *sp,
                          const char *ckpt_path, int64_t step, int max_batches, TrainEval *out,
                          float **logits, XbError *err) {
    memset(out, 0, sizeof *out);
    if (logits) *logits = NULL;
    if (train_check(cfg, ds, err)) return -1;
    Encoder enc;
    if (encoder_create_pairs(&enc, cfg, ds->vocab_size, ds->n_classes, ds->pairs, err)) return -1;
    if (checkpoint_load(ckpt_path, &enc.pt, enc.params, err)) {
        encoder_destroy(&enc);
        return -1;
    }
    const int B = enc.NB;
    int nb = (sp->n + B - 1) / B;
    if (max_batches > 0 && max_batches < nb) nb = max_batches;
    out->n = XB_MIN(sp->n, nb * B);
    out->classes = enc.C;
    out->positions = enc.pooling == POOL_NONE ? enc.L : 0;
    int *idx = malloc((size_t)B * sizeof *idx);
    float *lg = NULL;
    if (logits)
        lg = malloc(((size_t)out->n * (out->positions ? (size_t)out->positions : 1) * enc.C + 1) *
                    sizeof *lg);
    if (!idx || (logits && !lg)) {
        free(idx), free(lg), encoder_destroy(&enc);
        return xb_error_set(err, cfg->source, 0, 0, "model",
                            "out of memory for the logits of %d "
                            "examples",
                            out->n);
    }
    evaluate(&enc, sp, max_batches, idx, cfg->seed, step, &out->loss, &out->acc, &out->exact, lg);
    free(idx);
    encoder_destroy(&enc);
    if (logits) *logits = lg;
    return 0;
}
