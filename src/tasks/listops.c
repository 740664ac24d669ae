#include "tasks/listops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/rng.h"
#include "core/xassert.h"

static const char *const SOURCES[] = {"generate", "files", NULL};

static const OptSpec listops_opts[] = {
    {.name = "source",
     .type = OPT_ENUM,
     .def = 0,
     .choices = SOURCES,
     .help = "generate from the seed, or read LRA's TSV files"},
    {.name = "data_dir",
     .type = OPT_STRING,
     .def_str = "",
     .help = "directory with LRA's basic_train.tsv, basic_val.tsv, basic_test.tsv (source: files)"},
    {.name = "num_train",
     .type = OPT_INT,
     .def = 96000,
     .min = 1,
     .max = 10000000,
     .help = "training examples (generated)"},
    {.name = "num_val",
     .type = OPT_INT,
     .def = 2000,
     .min = 1,
     .max = 10000000,
     .help = "validation examples (generated)"},
    {.name = "num_test",
     .type = OPT_INT,
     .def = 2000,
     .min = 1,
     .max = 10000000,
     .help = "test examples (generated)"},
    {.name = "min_length",
     .type = OPT_INT,
     .def = 500,
     .min = 0,
     .max = 1000000,
     .help = "trees are longer than this (tokens without parentheses)"},
    {.name = "max_length",
     .type = OPT_INT,
     .def = 2000,
     .min = 2,
     .max = 1000000,
     .help = "trees are shorter than this (tokens without parentheses)"},
    {.name = "max_depth",
     .type = OPT_INT,
     .def = 10,
     .min = 1,
     .max = 100,
     .help = "deepest nesting of operators"},
    {.name = "max_args",
     .type = OPT_INT,
     .def = 10,
     .min = 2,
     .max = 100,
     .help = "most arguments of one operator"},
    {.name = "parens",
     .type = OPT_BOOL,
     .def = 0,
     .help = "keep the parentheses of LRA's text as tokens (LRA's tokenizer drops them)"},
};
#define NOPTS ((int)XB_ARRAY_LEN(listops_opts))

static const char *const OP_TEXT[4] = {"[MIN", "[MAX", "[MED", "[SM"};

/* Deepest nesting accepted from files or callers (generated trees are at most 100 deep); keeps the
 * recursive parsers well inside the stack. */
#define LISTOPS_MAX_NEST 10000
/* Rows accepted from one file (LRA's training file has 96000; counts are ints). */
#define LISTOPS_MAX_ROWS 100000000

/* ---- growable token buffer ---- */

typedef struct Buf {
    int32_t *t;
    size_t n, cap;
} Buf;

static void buf_push(Buf *b, int32_t v) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4096;
        b->t = realloc(b->t, b->cap * sizeof *b->t);
        XB_ASSERT(b->t);
    }
    b->t[b->n++] = v;
}

/* ---- evaluation ---- */

static int is_op(int32_t t) { return t >= LISTOPS_MIN && t <= LISTOPS_SM; }
static int is_digit(int32_t t) { return t >= LISTOPS_DIGIT0 && t < LISTOPS_DIGIT0 + 10; }

/* Parses one expression at *pos (parentheses already removed); returns its value or -1. */
static int eval_at(const int32_t *t, int n, int *pos, int depth) {
    if (*pos >= n || depth > LISTOPS_MAX_NEST) return -1;
    const int32_t tok = t[(*pos)++];
    if (is_digit(tok)) return tok - LISTOPS_DIGIT0;
    if (!is_op(tok)) return -1;
    int count[10] = {0}, k = 0, lo = 9, hi = 0, sum = 0;
    while (*pos < n && t[*pos] != LISTOPS_END) {
        const int v = eval_at(t, n, pos, depth + 1);
        if (v < 0) return -1;
        count[v]++, k++, sum += v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (*pos >= n || k == 0) return -1;
    (*pos)++; /* ] */
    switch (tok) {
    case LISTOPS_MIN:
        return lo;
    case LISTOPS_MAX:
        return hi;
    case LISTOPS_SM:
        return sum % 10;
    default: { /* int(np.median(args)): the mean of the two middle values when k is even, floored */
        int seen = 0, a = -1, b = -1;
        for (int v = 0; v < 10; v++) {
            for (int c = 0; c < count[v]; c++, seen++) {
                if (seen == (k - 1) / 2) a = v;
                if (seen == k / 2) b = v;
            }
        }
        return (a + b) / 2;
    }
    }
}

/* Copies tokens without parentheses into out (n entries at most); returns the count. */
static int strip_parens(const int32_t *t, int n, int32_t *out) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (t[i] != LISTOPS_LPAREN && t[i] != LISTOPS_RPAREN) out[m++] = t[i];
    return m;
}

int listops_eval_tokens(const int32_t *tokens, int n) {
    int32_t *t = malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
    XB_ASSERT(t);
    const int m = strip_parens(tokens, n, t);
    int pos = 0;
    int v = eval_at(t, m, &pos, 0);
    if (pos != m) v = -1;
    free(t);
    return v;
}

/* ---- LRA's parenthesised form ---- */

/* Appends the expression at *pos of a paren-free sequence in LRA's to_string form: an operator
 * with arguments v0..vk-1 becomes ( ×(k+1), op, v0, ), v1, ), ..., vk-1, ), ], ). */
static int add_parens(const int32_t *t, int n, int *pos, Buf *out, int nest) {
    if (*pos >= n || nest > LISTOPS_MAX_NEST) return -1;
    const int32_t tok = t[*pos];
    if (is_digit(tok)) {
        buf_push(out, tok);
        (*pos)++;
        return 0;
    }
    if (!is_op(tok)) return -1;
    /* count the arguments first: the opening parentheses come before the operator */
    int k = 0, depth = 0;
    for (int i = *pos + 1; i < n; i++) {
        if (depth == 0 && t[i] == LISTOPS_END) break;
        if (depth == 0) k++;
        if (is_op(t[i]))
            depth++;
        else if (t[i] == LISTOPS_END)
            depth--;
    }
    for (int i = 0; i <= k; i++) buf_push(out, LISTOPS_LPAREN);
    buf_push(out, tok);
    (*pos)++;
    for (int i = 0; i < k; i++) {
        if (add_parens(t, n, pos, out, nest + 1)) return -1;
        buf_push(out, LISTOPS_RPAREN);
    }
    if (*pos >= n || t[*pos] != LISTOPS_END) return -1;
    (*pos)++;
    buf_push(out, LISTOPS_END);
    buf_push(out, LISTOPS_RPAREN);
    return 0;
}

static const char *token_text(int32_t t) {
    static const char *const digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    if (is_digit(t)) return digits[t - LISTOPS_DIGIT0];
    if (is_op(t)) return OP_TEXT[t - LISTOPS_MIN];
    if (t == LISTOPS_END) return "]";
    if (t == LISTOPS_LPAREN) return "(";
    if (t == LISTOPS_RPAREN) return ")";
    return NULL;
}

int listops_write_tsv(const char *path, const Split *s, XbError *err) {
    FILE *f = fopen(path, "w");
    if (!f) return xb_error_set(err, path, 0, 0, NULL, "cannot write: %s", strerror(errno));
    fputs("Source\tTarget\n", f);
    Buf plain = {0}, full = {0};
    int rc = 0;
    for (int i = 0; i < s->n && rc == 0; i++) {
        const int64_t a = s->offsets[i], b = s->offsets[i + 1];
        plain.n = full.n = 0;
        for (int64_t k = a; k < b; k++)
            if (s->tokens[k] != LISTOPS_LPAREN && s->tokens[k] != LISTOPS_RPAREN)
                buf_push(&plain, s->tokens[k]);
        int pos = 0;
        if (add_parens(plain.t, (int)plain.n, &pos, &full, 0) || pos != (int)plain.n) {
            rc = xb_error_set(err, path, 0, 0, NULL, "example %d is not a ListOps expression", i);
            break;
        }
        for (size_t k = 0; k < full.n; k++) fprintf(f, "%s%s", k ? " " : "", token_text(full.t[k]));
        fprintf(f, "\t%d\n", s->labels[i]);
    }
    free(plain.t);
    free(full.t);
    if (fclose(f) != 0 && rc == 0)
        rc = xb_error_set(err, path, 0, 0, NULL, "cannot write: %s", strerror(errno));
    return rc;
}

/* ---- generation (lra_benchmarks/data/listops.py, generate_tree) ---- */

typedef struct Gen {
    Rng rng;
    int max_depth, max_args, max_length;
    Buf tree; /* tokens of the tree being generated, without parentheses */
    int too_long;
} Gen;

#define VALUE_P 0.25f

/* A value with probability 1 − VALUE_P (always at max_depth), otherwise an operator over
 * randint(2, max_args) subtrees, the operator drawn after them as in LRA. Stops early once the
 * tree cannot be shorter than max_length (it would be rejected anyway). */
static void gen_tree(Gen *g, int depth) {
    if (g->too_long) return;
    const float r = depth < g->max_depth ? rng_uniform(&g->rng) : 1.0f;
    if (r > VALUE_P) {
        buf_push(&g->tree, LISTOPS_DIGIT0 + (int32_t)rng_below(&g->rng, 10));
    } else {
        const size_t op_at = g->tree.n;
        buf_push(&g->tree, 0); /* the operator, drawn after the arguments */
        const int k = 2 + (int)rng_below(&g->rng, (uint32_t)(g->max_args - 1));
        for (int i = 0; i < k && !g->too_long; i++) gen_tree(g, depth + 1);
        if (g->too_long) return;
        g->tree.t[op_at] = LISTOPS_MIN + (int32_t)rng_below(&g->rng, 4);
        buf_push(&g->tree, LISTOPS_END);
    }
    if ((int64_t)g->tree.n >= g->max_length) g->too_long = 1;
}

/* Open-addressing set of 64-bit hashes (0 marks an empty slot). */
typedef struct HashSet {
    uint64_t *slot;
    size_t cap;
} HashSet;

static int set_insert(HashSet *s, uint64_t h) {
    h = h ? h : 1;
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == h) return 0;
        if (s->slot[i] == 0) {
            s->slot[i] = h;
            return 1;
        }
    }
}

static void split_alloc(Split *s, int n, size_t ntok) {
    s->n = n;
    s->tokens = malloc((ntok ? ntok : 1) * sizeof *s->tokens);
    s->offsets = malloc((size_t)(n + 1) * sizeof *s->offsets);
    s->labels = malloc((size_t)(n ? n : 1) * sizeof *s->labels);
    XB_ASSERT(s->tokens && s->offsets && s->labels);
}

/* Copies the tokens of examples [first, first + n) of the pool into s (labels are the caller's),
 * adding parentheses if asked. */
static void split_from_pool(Split *s, const Buf *pool, const int64_t *off, int first, int n,
                            int parens) {
    Buf tmp = {0};
    const Buf *src = pool;
    const int64_t *o = off;
    int64_t *o2 = NULL;
    if (parens) {
        o2 = malloc((size_t)(n + 1) * sizeof *o2);
        XB_ASSERT(o2);
        o2[0] = 0;
        for (int i = 0; i < n; i++) {
            int pos = 0;
            const int64_t a = off[first + i], b = off[first + i + 1];
            const int rc = add_parens(pool->t + a, (int)(b - a), &pos, &tmp, 0);
            XB_ASSERT(rc == 0 && pos == (int)(b - a));
            o2[i + 1] = (int64_t)tmp.n;
        }
        src = &tmp, o = o2, first = 0;
    }
    const int64_t base = o[first], ntok = o[first + n] - base;
    split_alloc(s, n, (size_t)ntok);
    memcpy(s->tokens, src->t + base, (size_t)ntok * sizeof *s->tokens);
    for (int i = 0; i <= n; i++) s->offsets[i] = o[first + i] - base;
    free(tmp.t);
    free(o2);
}

static int generate(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                    XbError *err) {
    const int ntr = opt_int(v, listops_opts, NOPTS, "num_train");
    const int nva = opt_int(v, listops_opts, NOPTS, "num_val");
    const int nte = opt_int(v, listops_opts, NOPTS, "num_test");
    const int minl = opt_int(v, listops_opts, NOPTS, "min_length");
    const int maxl = opt_int(v, listops_opts, NOPTS, "max_length");
    const int parens = opt_bool(v, listops_opts, NOPTS, "parens");
    const int64_t need = (int64_t)ntr + nva + nte;
    if (need > 20000000)
        return xb_error_set(err, source, 0, 0, "task.num_train",
                            "%lld examples in all is too many (at most 20000000)", (long long)need);
    Gen g = {.max_depth = opt_int(v, listops_opts, NOPTS, "max_depth"),
             .max_args = opt_int(v, listops_opts, NOPTS, "max_args"),
             .max_length = maxl};
    rng_seed(&g.rng, seed, RNG_STREAM_DATA);
    HashSet set = {.cap = 1};
    while (set.cap < (size_t)need * 2) set.cap <<= 1;
    set.slot = calloc(set.cap, sizeof *set.slot);
    Buf pool = {0};
    int64_t *off = malloc((size_t)(need + 1) * sizeof *off);
    int32_t *lab = malloc((size_t)need * sizeof *lab);
    XB_ASSERT(set.slot && off && lab);
    off[0] = 0;
    int64_t have = 0, attempts = 0;
    const int64_t limit = 1000 * need + 10000000;
    while (have < need && attempts < limit) {
        attempts++;
        g.tree.n = 0;
        g.too_long = 0;
        gen_tree(&g, 1);
        const int64_t len = (int64_t)g.tree.n;
        if (g.too_long || len <= minl || len >= maxl) continue;
        if (!set_insert(&set, xb_fnv1a64(XB_FNV_OFFSET, g.tree.t, (size_t)len * sizeof(int32_t))))
            continue;
        for (int64_t i = 0; i < len; i++) buf_push(&pool, g.tree.t[i]);
        int pos = 0;
        lab[have] = eval_at(g.tree.t, (int)len, &pos, 0);
        XB_ASSERT(lab[have] >= 0 && pos == (int)len);
        off[++have] = (int64_t)pool.n;
    }
    free(set.slot);
    free(g.tree.t);
    if (have < need) {
        free(pool.t), free(off), free(lab);
        return xb_error_set(err, source, 0, 0, "task",
                            "could not generate %lld distinct trees with %d < length < %d in %lld "
                            "attempts (raise max_depth or max_args, or widen the lengths)",
                            (long long)need, minl, maxl, (long long)attempts);
    }
    Split *splits[3] = {&d->train, &d->val, &d->test};
    const int counts[3] = {ntr, nva, nte};
    int first = 0;
    for (int k = 0; k < 3; k++) {
        split_from_pool(splits[k], &pool, off, first, counts[k], parens);
        memcpy(splits[k]->labels, lab + first, (size_t)counts[k] * sizeof *lab);
        first += counts[k];
    }
    free(pool.t), free(off), free(lab);
    DatasetId *id = &d->id;
    dataset_id_str(id, "task", "listops");
    dataset_id_str(id, "generator", "lra-listops");
    dataset_id_str(id, "source", "generate");
    dataset_id_uint(id, "seed", seed);
    dataset_id_int(id, "num_train", ntr);
    dataset_id_int(id, "num_val", nva);
    dataset_id_int(id, "num_test", nte);
    dataset_id_int(id, "min_length", minl);
    dataset_id_int(id, "max_length", maxl);
    dataset_id_int(id, "max_depth", g.max_depth);
    dataset_id_int(id, "max_args", g.max_args);
    dataset_id_bool(id, "parens", parens);
    return 0;
}

/* ---- LRA's TSV files ---- */

static const char *const FILES[3] = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};

static int32_t token_id(const char *w, size_t n, int parens, int *skip) {
    *skip = 0;
    if (n == 1 && w[0] >= '0' && w[0] <= '9') return LISTOPS_DIGIT0 + (w[0] - '0');
    if (n == 1 && (w[0] == '(' || w[0] == ')')) {
        *skip = !parens;
        return w[0] == '(' ? LISTOPS_LPAREN : LISTOPS_RPAREN;
    }
    if (n == 1 && w[0] == ']') return LISTOPS_END;
    for (int k = 0; k < 4; k++)
        if (strlen(OP_TEXT[k]) == n && memcmp(w, OP_TEXT[k], n) == 0) return LISTOPS_MIN + k;
    return -1;
}

/* Checks that the tokens of one row, t[0..n) (at columns col[0..n), parentheses included or
 * not), are one ListOps expression: E := digit | OP E... ] with at least one argument per
 * operator, and balanced parentheses. Returns -1 with *at the index of the fault (n: the end of
 * the row) and *why what is wrong, or 0. */
static int check_expression(const int32_t *t, int n, int *at, const char **why) {
    int open = 0, done = 0, paren = 0, prev = -1; /* prev: the last token that is not a paren */
    for (int i = 0; i < n; i++) {
        const int32_t tok = t[i];
        *at = i;
        if (tok == LISTOPS_LPAREN || tok == LISTOPS_RPAREN) {
            paren += tok == LISTOPS_LPAREN ? 1 : -1;
            if (paren < 0) return *why = "a ) without its (", -1;
            continue;
        }
        if (done) return *why = "more after the end of the expression (one per row)", -1;
        if (is_digit(tok)) {
            done = open == 0;
        } else if (is_op(tok)) {
            if (++open > LISTOPS_MAX_NEST) return *why = "nested deeper than 10000 operators", -1;
        } else if (tok == LISTOPS_END) {
            if (open == 0) return *why = "a ] without an operator to close", -1;
            if (prev >= 0 && is_op(t[prev])) return *why = "an operator without arguments", -1;
            done = --open == 0;
        } else {
            return *why = "not a ListOps token", -1;
        }
        prev = i;
    }
    *at = n;
    if (!done)
        return *why = prev < 0 ? "no expression" : "the expression is not closed (a ] is missing)",
               -1;
    if (paren != 0) return *why = "a ( without its )", -1;
    return 0;
}

/* Reads one TSV file into s; *hash receives the FNV-1a 64 of its bytes. */
static int read_tsv(Split *s, const char *path, int parens, uint64_t *hash, XbError *err) {
    FileLines in;
    if (fileio_lines_open(&in, path, XB_FILE_DATA, "task.data_dir", err)) return -1;
    Buf tok = {0}, all = {0}, cols = {0}; /* the file's tokens; this row's, with columns */
    int64_t *off = NULL;
    int32_t *lab = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, got;
    *hash = XB_FNV_OFFSET;
    while (rc == 0 && (got = fileio_lines_next(&in, err)) != 0) {
        if (got < 0) {
            rc = -1;
            break;
        }
        char *line = in.line;
        size_t len = in.len;
        const int lineno = (int)in.lineno;
        *hash = xb_fnv1a64(*hash, line, len);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        const char *nul = memchr(line, '\0', len);
        if (nul) {
            rc = xb_error_set(err, path, lineno, (int)(nul - line) + 1, NULL,
                              "a NUL byte (the file must be text)");
            break;
        }
        if (lineno == 1) {
            if (strcmp(line, "Source\tTarget") != 0)
                rc = xb_error_set(err, path, 1, 1, NULL,
                                  "expected the header \"Source<TAB>Target\"");
            continue;
        }
        if (len == 0) continue;
        char *tab = strchr(line, '\t');
        if (!tab || strchr(tab + 1, '\t')) {
            rc = xb_error_set(err, path, lineno, 1, NULL, "expected two tab-separated columns");
            break;
        }
        if (n == LISTOPS_MAX_ROWS) {
            rc = xb_error_set(err, path, lineno, 1, NULL, "more than %d examples in one file",
                              LISTOPS_MAX_ROWS);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            off = realloc(off, (cap + 1) * sizeof *off);
            lab = realloc(lab, cap * sizeof *lab);
            XB_ASSERT(off && lab);
        }
        off[n] = (int64_t)tok.n;
        all.n = cols.n = 0;
        for (char *p = line; p < tab && rc == 0;) {
            while (p < tab && (*p == ' ')) p++;
            if (p == tab) break;
            char *w = p;
            while (p < tab && *p != ' ') p++;
            int skip;
            const int32_t id = token_id(w, (size_t)(p - w), parens, &skip);
            if (id < 0) {
                char shown[256];
                dataset_show(shown, sizeof shown, w, (size_t)(p - w));
                rc = xb_error_set(
                    err, path, lineno, (int)(w - line) + 1, NULL,
                    "unknown token \"%s\" (valid: 0-9, [MIN, [MAX, [MED, [SM, ], (, ))", shown);
                break;
            }
            buf_push(&all, id);
            buf_push(&cols, (int32_t)(w - line) + 1);
            if (!skip) buf_push(&tok, id);
        }
        if (rc) break;
        int at;
        const char *why;
        if (check_expression(all.t, (int)all.n, &at, &why)) {
            rc = xb_error_set(err, path, lineno,
                              at < (int)all.n ? cols.t[at] : (int)(tab - line) + 1, NULL,
                              "not a ListOps expression: %s", why);
            break;
        }
        const char *target = tab + 1;
        if (!(target[0] >= '0' && target[0] <= '9' && target[1] == '\0')) {
            char shown[256];
            dataset_show(shown, sizeof shown, target, strlen(target));
            rc = xb_error_set(err, path, lineno, (int)(target - line) + 1, NULL,
                              "target must be an integer in [0, 9], got \"%s\"", shown);
            break;
        }
        lab[n] = target[0] - '0';
        n++;
    }
    fileio_lines_close(&in);
    free(all.t), free(cols.t);
    if (rc == 0 && n == 0) rc = xb_error_set(err, path, 0, 0, NULL, "no examples");
    if (rc) {
        free(tok.t), free(off), free(lab);
        return -1;
    }
    off[n] = (int64_t)tok.n;
    s->n = (int)n;
    s->tokens = tok.t ? tok.t : malloc(sizeof(int32_t));
    s->offsets = off;
    s->labels = lab;
    return 0;
}

static int load_files(Dataset *d, const OptValues *v, const char *source, XbError *err) {
    const char *dir = opt_str(v, listops_opts, NOPTS, "data_dir");
    const int parens = opt_bool(v, listops_opts, NOPTS, "parens");
    if (!dir[0])
        return xb_error_set(err, source, 0, 0, "task.data_dir",
                            "is required when task.source is files");
    Split *splits[3] = {&d->train, &d->val, &d->test};
    uint64_t h[3];
    for (int k = 0; k < 3; k++) {
        char path[XB_OPT_STRLEN + 32];
        snprintf(path, sizeof path, "%s/%s", dir, FILES[k]);
        if (read_tsv(splits[k], path, parens, &h[k], err)) return -1;
    }
    DatasetId *id = &d->id;
    dataset_id_str(id, "task", "listops");
    dataset_id_str(id, "source", "files");
    dataset_id_str(id, "data_dir", dir);
    dataset_id_begin(id, "files");
    for (int k = 0; k < 3; k++) dataset_id_hash(id, FILES[k], h[k]);
    dataset_id_end(id);
    dataset_id_bool(id, "parens", parens);
    return 0;
}

static int listops_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                        XbError *err) {
    memset(d, 0, sizeof *d);
    d->vocab_size = LISTOPS_VOCAB;
    d->n_classes = 10;
    int rc;
    if (opt_enum(v, listops_opts, NOPTS, "source") == 1) {
        rc = load_files(d, v, source, err);
    } else {
        const int minl = opt_int(v, listops_opts, NOPTS, "min_length");
        const int maxl = opt_int(v, listops_opts, NOPTS, "max_length");
        if ((int64_t)minl + 1 >= maxl)
            return xb_error_set(err, source, 0, 0, "task.max_length",
                                "must be greater than task.min_length + 1 (got min_length %d, "
                                "max_length %d)",
                                minl, maxl);
        rc = generate(d, v, seed, source, err);
    }
    if (rc) {
        dataset_free(d);
        return -1;
    }
    dataset_checksum(d);
    return 0;
}

static int listops_generated(const OptValues *v) {
    return opt_enum(v, listops_opts, NOPTS, "source") == 0;
}

const TaskSpec task_listops = {
    .name = "listops",
    .description = "ListOps (LRA): evaluate nested MIN/MAX/MED/SM lists of digits, 10 classes",
    .opts = listops_opts,
    .n_opts = NOPTS,
    .load = listops_load,
    .generated = listops_generated,
};
