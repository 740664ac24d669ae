#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dist.h"
#include "core/flops.h"
#include "core/profile.h"
#include "core/rng.h"
#include "core/timer.h"
#include "core/xassert.h"
#include "model/encoder.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/schedule.h"
#include "train/state.h"

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

/* Whether to stop: a signal arrived here or, in a group of processes, at any of them (every rank
 * must take the same decision at the same point, or the collectives would hang). */
static const volatile sig_atomic_t *g_eval_stop; /* evaluate() stops when this becomes nonzero */

static int stop_now(void) {
    const int64_t here = g_eval_stop && *g_eval_stop ? 1 : 0;
    return dist_size() > 1 ? dist_max_i64(here) > 0 : here > 0;
}

/* Mean loss and accuracy over the first max_batches batches of split (0 = all of it), with the
 * parameters of training step `step` (which fixes the draw of redrawn random features). For a
 * sequence task (pooling none) both are per target position: the mean cross-entropy over the
 * positions with a target and the fraction of them predicted right; *exact (else NaN) is the
 * fraction of examples whose every target position is right. logits, when not NULL, receives
 * the head's rows of every evaluated example in order: (n, C), or (n, L, C) with pooling none
 * (one process only). A batch is the whole group's: e->NB examples per process; the evaluated
 * examples are cut into chunks of e->NB, chunk c evaluated by rank c mod size, and the sums are
 * reduced over the group, so the figures do not depend on the number of processes. Returns 1
 * (figures NaN) when a signal stopped it. */
static int evaluate_all(Encoder *e, const Split *sp, int max_batches, int *idx, uint64_t seed,
                        int64_t step, double *loss, double *acc, double *exact, float *logits);

/* evaluate_all with the profile paused: it times training steps. */
static int evaluate(Encoder *e, const Split *sp, int max_batches, int *idx, uint64_t seed,
                    int64_t step, double *loss, double *acc, double *exact, float *logits) {
    prof_enable(0);
    const int rc = evaluate_all(e, sp, max_batches, idx, seed, step, loss, acc, exact, logits);
    prof_enable(1);
    return rc;
}

static int evaluate_all(Encoder *e, const Split *sp, int max_batches, int *idx, uint64_t seed,
                        int64_t step, double *loss, double *acc, double *exact, float *logits) {
    const int B = e->NB, world = dist_size(), rank = dist_rank(); /* examples per process */
    const int64_t NB = (int64_t)B * world;
    int64_t n = sp->n;
    if (max_batches > 0 && (int64_t)max_batches * NB < n) n = (int64_t)max_batches * NB;
    const int64_t chunks = (n + B - 1) / B;
    XB_ASSERT(!logits || world == 1);
    double sums[5] = {0, 0, 0, 0, 0}; /* loss, correct, count, whole, examples */
    for (int64_t c0 = 0; c0 < chunks; c0 += world) {
        if (stop_now()) { /* a signal: no figure over part of the split */
            *loss = *acc = *exact = NAN;
            return 1;
        }
        const int64_t c = c0 + rank;
        if (c >= chunks) continue; /* this rank has no chunk in the last round */
        const int first = (int)(c * B), real = (int)XB_MIN((int64_t)B, n - first);
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
                    sums[1] += ok, right &= ok;
                    sums[0] += e->losses[r];
                    sums[2] += 1;
                }
                sums[3] += right;
                sums[4] += 1;
            }
            continue;
        }
        for (int b = 0; b < real; b++) {
            sums[1] += argmax_row(e, (size_t)b) == e->labels[b];
            sums[0] += e->losses[b];
            sums[2] += 1;
        }
    }
    dist_allreduce_f64(sums, 5);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *acc = sums[2] > 0 ? sums[1] / sums[2] : NAN;
    *exact = sums[4] > 0 ? sums[3] / sums[4] : NAN;
    return 0;
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

/* The best validation parameters to ckpt_path (rank 0), with the run's identity. */
static int save_best(const ExperimentConfig *cfg, const Encoder *enc, const float *params,
                     int64_t step, const char *ckpt_path, XbError *err) {
    if (dist_rank() != 0) return 0;
    char s_step[32], s_hash[17];
    snprintf(s_step, sizeof s_step, "%lld", (long long)step);
    snprintf(s_hash, sizeof s_hash, "%016llx", (unsigned long long)cfg_hash(cfg));
    const char *meta[] = {"run_id", cfg->run_id, "config_hash", s_hash,
                          "step",   s_step,      "format",      "pt"};
    return checkpoint_save(ckpt_path, &enc->pt, params, meta, 4, err);
}

/* Copies n bytes of rank 0's buffer to every rank, in pieces MPI counts can hold. */
static void bcast_big(void *buf, size_t n) {
    for (size_t off = 0; off < n; off += (size_t)1 << 30)
        dist_bcast((char *)buf + off, XB_MIN((size_t)1 << 30, n - off), 0);
}

/* The run's state after `step` steps into st (pointing at the live buffers). */
static void state_of(TrainState *st, const ExperimentConfig *cfg, const Dataset *ds,
                     const Encoder *enc, const AdamW *opt, const Sampler *smp, float *best,
                     const TrainResult *r, int64_t step, double loss_sum, int64_t loss_n,
                     uint64_t flops_total) {
    memset(st, 0, sizeof *st);
    st->config_hash = cfg_hash(cfg);
    st->data_checksum = strtoull(ds->checksum, NULL, 16); /* 16 hex digits */
    st->step = step;
    st->adam_t = opt->t;
    st->rng_state = smp->rng.state, st->rng_inc = smp->rng.inc;
    st->sampler_pos = smp->pos, st->sampler_n = smp->n;
    st->best_step = r->best_step, st->best_val_acc = r->best_val_acc;
    st->loss_sum = loss_sum, st->loss_n = loss_n;
    st->flops_total = flops_total, st->flops_step_counted = r->flops_step_counted;
    st->n_evals = r->n_evals, st->evals = r->evals;
    st->n_params = enc->pt.total;
    st->params = enc->params, st->m = opt->m, st->v = opt->v, st->best = best;
    st->perm = smp->perm;
}

/* Whether training step `step` is followed by an evaluation. */
static int eval_due(const ExperimentConfig *cfg, int64_t step) {
    return step % cfg->eval_every == 0 || step == cfg->steps;
}

/* The evaluation that follows training step `step`: its record (train loss over the steps since
 * the last one, validation figures), and the best parameters so far and their checkpoint. Returns
 * 1, with no record and the status "interrupted", when a signal stopped it: the state then says
 * `step` with the evaluation still due, and a resumed run does it first. */
static int eval_after_step(const ExperimentConfig *cfg, const Dataset *ds, Encoder *enc, int *idx,
                           int64_t step, float *best, const char *ckpt_path, double *loss_sum,
                           int64_t *loss_n, TrainResult *r, XbError *err) {
    EvalRecord *ev = &r->evals[r->n_evals];
    memset(ev, 0, sizeof *ev);
    ev->step = step;
    ev->lr = schedule_lr(cfg->schedule, cfg->lr, cfg->warmup, cfg->steps, step);
    ev->train_loss = *loss_n ? *loss_sum / (double)*loss_n : NAN;
    double exact;
    const uint64_t flops0 = flops_counted();
    if (evaluate(enc, &ds->val, cfg->eval_batches, idx, cfg->seed, step, &ev->val_loss,
                 &ev->val_acc, &exact, NULL)) {
        flops_reset(); /* the part done is not counted: the resumed run does it all again */
        flops_add(flops0);
        r->status = "interrupted";
        snprintf(r->status_message, sizeof r->status_message,
                 "interrupted by a signal after %lld of %lld steps", (long long)step,
                 (long long)cfg->steps);
        return 1;
    }
    r->n_evals++;
    if (!(ev->val_acc <= r->best_val_acc)) { /* first evaluation, or strictly better */
        r->best_val_acc = ev->val_acc;
        r->best_step = step;
        memcpy(best, enc->params, enc->pt.total * sizeof(float));
        if (cfg->checkpoint && ckpt_path &&
            save_best(cfg, enc, enc->params, step, ckpt_path, err)) {
            r->status = "failed";
            snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
        }
    }
    *loss_sum = 0.0;
    *loss_n = 0;
    return 0;
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
    const char *state_path = hooks ? hooks->state_path : NULL;

    if (train_check(cfg, ds, err)) return -1;
    /* Data-parallel: each of the group's processes holds the model and a 1/world share of the
     * global batch (its rows [rank·NBl, (rank + 1)·NBl) of every step's batch) */
    const int world = dist_size(), rank = dist_rank();
    if (cfg->batch_size % world)
        return xb_error_set(err, cfg->source, 0, 0, "train.batch_size",
                            "%d is not divisible by the %d processes (valid: a multiple of %d)",
                            cfg->batch_size, world, world);
    ExperimentConfig local = *cfg;
    local.batch_size = cfg->batch_size / world;
    g_eval_stop = hooks ? hooks->stop : NULL;
    Encoder enc;
    if (encoder_create_pairs(&enc, &local, ds->vocab_size, ds->n_classes, ds->pairs, err))
        return -1;
    const int NB = cfg->batch_size, NBl = enc.NB, rows_per_example = enc.B / enc.NB;
    AdamW opt;
    float *best = malloc(enc.pt.total * sizeof(float));
    Sampler smp = {.n = ds->train.n, .pos = ds->train.n};
    smp.perm = malloc((size_t)smp.n * sizeof(int));
    int *idx = malloc((size_t)NB * sizeof(int));
    double *times = malloc(TRAIN_TIMED_STEPS * sizeof *times); /* a ring of step times */
    int n_times = 0;
    const int64_t max_evals = cfg->steps / cfg->eval_every + 2;
    r->evals = calloc((size_t)max_evals, sizeof *r->evals);
    if (adamw_init(&opt, enc.pt.total, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay) ||
        !best || !smp.perm || !idx || !r->evals || !times) {
        free(best), free(smp.perm), free(idx), free(times), adamw_free(&opt), encoder_destroy(&enc);
        train_result_free(r);
        return xb_error_set(err, cfg->source, cfg->model_line, cfg->model_col, "model",
                            "out of memory for %zu parameters", params_count(&enc.pt));
    }
    for (int i = 0; i < smp.n; i++) smp.perm[i] = i;
    rng_seed(&smp.rng, cfg->seed, RNG_STREAM_SHUFFLE);
    encoder_init_params(&enc, cfg->seed);
    memcpy(best, enc.params, enc.pt.total * sizeof(float));

    r->n_params = params_count(&enc.pt);
    /* a step's work is the whole group's: every process does its share */
    r->flops_fwd = encoder_flops(&enc, 0) * (uint64_t)world;
    r->flops_bwd = encoder_flops(&enc, 1) * (uint64_t)world;
    r->mem.parameters = r->mem.gradients = encoder_param_bytes(&enc);
    r->mem.optimizer = 2 * encoder_param_bytes(&enc);
    r->mem.activations = enc.acts.peak;
    r->mem.scratch_peak = enc.scratch.cap; /* the plan: a training step's peak, whether or not
                                              * this process (resumed at the end) ran one */

    double loss_sum = 0.0, last_val = NAN;
    int64_t loss_n = 0, start = 0;
    uint64_t flops_base = 0; /* counted FLOPs of the steps before a resume */
    /* Resume: rank 0 reads the state (or finds none) and hands it to the group. */
    if (state_path && hooks->resume) {
        int64_t have = 0;
        TrainState st;
        if (rank == 0 && access(state_path, F_OK) == 0) {
            state_of(&st, cfg, ds, &enc, &opt, &smp, best, r, 0, 0, 0, 0);
            have = state_load(state_path, &st, (int)max_evals, err) ? -1 : 1;
        }
        dist_bcast(&have, sizeof have, 0);
        if (have < 0) {
            free(best), free(smp.perm), free(idx), free(times), adamw_free(&opt);
            encoder_destroy(&enc);
            train_result_free(r);
            return -1; /* rank 0 has the message; the others stop with it */
        }
        if (have) {
            bcast_big(enc.params, enc.pt.total * sizeof(float));
            bcast_big(opt.m, enc.pt.total * sizeof(float));
            bcast_big(opt.v, enc.pt.total * sizeof(float));
            bcast_big(best, enc.pt.total * sizeof(float));
            bcast_big(smp.perm, (size_t)smp.n * sizeof(int));
            dist_bcast(&st, sizeof st, 0); /* its scalars; the pointers are rank 0's */
            dist_bcast(r->evals, (size_t)st.n_evals * sizeof *r->evals, 0);
            start = st.step;
            opt.t = st.adam_t;
            smp.rng.state = st.rng_state, smp.rng.inc = st.rng_inc, smp.pos = st.sampler_pos;
            r->best_step = st.best_step, r->best_val_acc = st.best_val_acc;
            r->n_evals = st.n_evals;
            loss_sum = st.loss_sum, loss_n = st.loss_n;
            flops_base = st.flops_total, r->flops_step_counted = st.flops_step_counted;
            r->steps_done = start;
            if (r->n_evals) last_val = r->evals[r->n_evals - 1].val_acc;
            /* the best checkpoint again, as the run that saved it wrote it */
            if (cfg->checkpoint && ckpt_path && r->best_step >= 1 &&
                save_best(cfg, &enc, best, r->best_step, ckpt_path, err)) {
                r->status = "failed";
                snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
            }
        }
    }

    flops_reset();
    dist_comm_reset();
    prof_reset();
    const double t_start = timer_now();
    double t_eval = 0.0;
    int64_t step = start, stopped = 0;
    /* Resumed from a state saved by a signal during the evaluation after step `start`: that
     * evaluation first, as the uninterrupted run did it. */
    if (start > 0 && !no_eval && eval_due(cfg, start) && !strcmp(r->status, "ok") &&
        (r->n_evals == 0 || r->evals[r->n_evals - 1].step != start)) {
        if (eval_after_step(cfg, ds, &enc, idx, start, best, ckpt_path, &loss_sum, &loss_n, r,
                            err))
            stopped = 1;
        else {
            last_val = r->evals[r->n_evals - 1].val_acc;
            t_eval += timer_now() - t_start;
            r->evals[r->n_evals - 1].elapsed_s = timer_now() - t_start;
        }
    }
    for (step = start + 1; step <= cfg->steps && !stopped && !strcmp(r->status, "ok"); step++) {
        if (stop_now()) {
            r->status = "interrupted";
            snprintf(r->status_message, sizeof r->status_message,
                     "interrupted by a signal after %lld of %lld steps", (long long)(step - 1),
                     (long long)cfg->steps);
            stopped = 1;
            break;
        }
        const double t_step = timer_now();
        prof_open(PROF_DATA, 0);
        sampler_next(&smp, idx, NB); /* the global batch; this process takes its rows */
        dataset_batch(&ds->train, idx + (size_t)rank * NBl, NBl, enc.L, enc.cls_id, enc.tokens,
                      enc.mask, enc.labels);
        prof_close();
        enc.row0 = (uint64_t)rank * NBl * rows_per_example;
        double loss = encoder_forward(&enc, 1, cfg->seed, step);
        double aux = enc.aux_loss;
        if (world > 1) { /* the loss of the whole batch, and each process's share of its norm */
            const int R = enc.pooling == POOL_NONE ? enc.B * enc.L : enc.NB;
            double red[3] = {0.0, (double)enc.n_targets, enc.aux_loss};
            for (int k = 0; k < R; k++) red[0] += enc.losses[k];
            dist_allreduce_f64(red, 3);
            enc.ce_norm = red[1] / world;
            aux = red[2] / world;
            loss = (red[1] > 0 ? red[0] / red[1] : 0.0) + aux;
        }
        memset(enc.grads, 0, enc.pt.total * sizeof(float));
        encoder_backward(&enc, cfg->seed, step);
        if (world > 1) { /* the mean of the processes' gradients: one contiguous all-reduce */
            dist_allreduce_f32(enc.grads, enc.pt.total);
            const float inv = 1.0f / (float)world;
#pragma omp parallel for schedule(static)
            for (size_t k = 0; k < enc.pt.total; k++) enc.grads[k] *= inv;
        }
        prof_open(PROF_OPTIMIZER, 1);
        const double gnorm = grad_clip(enc.grads, enc.pt.total, cfg->clip_norm);
        prof_close();
        if (step == 1) {
            int64_t c = (int64_t)flops_counted();
            dist_allreduce_i64(&c, 1);
            r->flops_step_counted = (uint64_t)c;
        }
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
        prof_open(PROF_OPTIMIZER, 1);
        adamw_step(&opt, &enc.pt, enc.params, enc.grads, lr);
        prof_close();
        loss_sum += loss - aux; /* the task's cross-entropy; auxiliary losses apart */
        loss_n++;
        r->steps_done = step;
        if (step > warm) times[n_times++ % TRAIN_TIMED_STEPS] = timer_now() - t_step;

        const int do_eval = !no_eval && eval_due(cfg, step);
        if (do_eval) {
            const double t0 = timer_now();
            if (eval_after_step(cfg, ds, &enc, idx, step, best, ckpt_path, &loss_sum, &loss_n, r,
                                err)) {
                stopped = 1;
                break;
            }
            last_val = r->evals[r->n_evals - 1].val_acc;
            t_eval += timer_now() - t0;
            r->evals[r->n_evals - 1].elapsed_s = timer_now() - t_start;
        }
        if (hooks && hooks->progress && rank == 0 && (do_eval || step % cfg->log_every == 0)) {
            const double train_s = timer_now() - t_start - t_eval;
            TrainProgress p = {.step = step,
                               .steps = cfg->steps,
                               .lr = lr,
                               .val_acc = last_val,
                               .is_eval = do_eval};
            p.loss = do_eval ? r->evals[r->n_evals - 1].train_loss : loss - aux;
            p.steps_per_s = train_s > 0 ? (double)(step - start) / train_s : 0.0;
            p.eta_s = p.steps_per_s > 0 ? (double)(cfg->steps - step) / p.steps_per_s : 0.0;
            hooks->progress(hooks->ctx, &p);
        }
        if (state_path && cfg->checkpoint_every > 0 && step % cfg->checkpoint_every == 0 &&
            step < cfg->steps) {
            int64_t c = (int64_t)flops_counted();
            dist_allreduce_i64(&c, 1);
            TrainState st;
            state_of(&st, cfg, ds, &enc, &opt, &smp, best, r, step, loss_sum, loss_n,
                     flops_base + (uint64_t)c);
            if (rank == 0 && state_save(state_path, &st, err)) {
                r->status = "failed";
                snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
            }
        }
    }
    r->train_s = timer_now() - t_start - t_eval;
    r->eval_s = t_eval;
    int64_t counted = (int64_t)flops_counted();
    dist_allreduce_i64(&counted, 1);
    /* Stopped by a signal (a scheduler's preemption): the state, so that run --resume goes on
     * from here. */
    if (stopped && state_path && r->steps_done > 0) {
        TrainState st;
        state_of(&st, cfg, ds, &enc, &opt, &smp, best, r, r->steps_done, loss_sum, loss_n,
                 flops_base + (uint64_t)counted);
        if (rank == 0 && state_save(state_path, &st, err)) {
            r->status = "failed";
            snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
        }
    }

    /* Test the best validation checkpoint, read back from its file when one was written; not
     * after a signal, which asks for the report now (a test figure would take a whole pass). */
    if (r->best_step >= 0 && (!strcmp(r->status, "ok") || !strcmp(r->status, "diverged"))) {
        const double t0 = timer_now();
        int64_t failed = 0;
        if (cfg->checkpoint && ckpt_path && rank == 0) {
            if (checkpoint_load(ckpt_path, &enc.pt, enc.params, err)) {
                r->status = "failed";
                snprintf(r->status_message, sizeof r->status_message, "%s", err->msg);
                failed = 1;
            }
        } else { /* the other ranks hold the same parameters: every rank made the same updates */
            memcpy(enc.params, best, enc.pt.total * sizeof(float));
        }
        if (dist_max_i64(failed) == 0 &&
            evaluate(&enc, &ds->test, 0, idx, cfg->seed, r->best_step, &r->test_loss, &r->test_acc,
                     &r->test_exact, NULL)) {
            r->status = "interrupted";
            snprintf(r->status_message, sizeof r->status_message,
                     "interrupted by a signal while testing, after %lld of %lld steps",
                     (long long)r->steps_done, (long long)cfg->steps);
        }
        r->eval_s += timer_now() - t0;
    }
    int64_t counted_all = (int64_t)flops_counted();
    dist_allreduce_i64(&counted_all, 1);
    r->flops_total = flops_base + (uint64_t)counted_all;
    (void)counted;
    const double steps_run = (double)(r->steps_done - start);
    r->steps_per_s = r->train_s > 0 ? steps_run / r->train_s : 0.0;
    r->tokens_per_s = r->steps_per_s * (double)enc.B * world * (double)enc.L;
    r->step_s_median = median(times, XB_MIN(n_times, TRAIN_TIMED_STEPS));
    r->comm_s = dist_comm_seconds();
    for (int k = 0; k < PROF_N; k++)
        for (int d = 0; d < 2; d++) r->profile[k][d] = prof_seconds((ProfKind)k, d);
    r->profile_regions = prof_regions();
    /* A run that ended (not one stopped by a signal) needs its state no more. */
    if (state_path && rank == 0 && !stopped) unlink(state_path);

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
