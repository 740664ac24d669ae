/* Command-line options from one static table per subcommand (cli/opts.h). */
#include "cli/opts.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/xassert.h"

enum { HELP_WIDTH = 96, HELP_COLUMN = 22 }; /* lines of --help; where option help starts */

static const char *const TYPE_NAMES[] = {
    [CLI_FLAG] = "flag", [CLI_INT] = "int",   [CLI_REAL] = "real", [CLI_STR] = "string",
    [CLI_ENUM] = "enum", [CLI_LIST] = "list", [CLI_INTS] = "ints", [CLI_PARSE] = "text"};
_Static_assert(XB_ARRAY_LEN(TYPE_NAMES) == CLI_PARSE + 1, "a name for every CliType");

const char *cli_type_name(CliType t) { return TYPE_NAMES[t]; }

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "xformer-bench%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return XB_EXIT_USAGE;
}

int cli_command_error(const char *cmd, const XbError *err) {
    char line[2048];
    xb_error_format(err, line, sizeof line);
    return cli_usage_error(cmd, "%s", line);
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    if (!s || !*s) return -1;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Only the first process of a world speaks: every process parses the same arguments. */
__attribute__((format(printf, 2, 3))) static int say(const CliCommand *c, const char *fmt, ...) {
    if (dist_world_rank() != 0) return XB_EXIT_USAGE;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cli_usage_error(c->name, "%s", msg);
}

static void *field(void *args, const CliOpt *o) { return (char *)args + o->at; }

static void cli_help(const CliCommand *c, FILE *f);
static void value_text(const CliOpt *o, char *buf, size_t n);

/* A range end as the messages write it: whole numbers without a fraction. */
static void fmt_bound(char *buf, size_t n, double x) {
    if (x == floor(x) && fabs(x) < 1e15)
        snprintf(buf, n, "%.0f", x);
    else
        snprintf(buf, n, "%g", x);
}

/* "md, latex or csv" */
static void join_choices(char *buf, size_t n, const char *const *choices) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; choices[i] && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s",
                              i == 0           ? ""
                              : choices[i + 1] ? ", "
                                               : " or ",
                              choices[i]);
}

void cli_opt_valid(const CliOpt *o, char *buf, size_t n) {
    char lo[32], hi[32];
    fmt_bound(lo, sizeof lo, o->min);
    fmt_bound(hi, sizeof hi, o->max);
    if (o->valid)
        snprintf(buf, n, "%s", o->valid);
    else if (o->type == CLI_ENUM)
        join_choices(buf, n, o->choices);
    else if (o->type == CLI_INTS)
        snprintf(buf, n, "integers in [%s, %s] separated by commas", lo, hi);
    else if ((o->type == CLI_INT || o->type == CLI_REAL) && isinf(o->max))
        snprintf(buf, n, "%s >= %s", o->type == CLI_INT ? "an integer" : "a number", lo);
    else if (o->type == CLI_INT || o->type == CLI_REAL)
        snprintf(buf, n, "%s in %c%s, %s%c", o->type == CLI_INT ? "an integer" : "a number",
                 o->open ? '(' : '[', lo, hi, o->open ? ')' : ']');
    else
        snprintf(buf, n, "a value");
}

static int bad_value(const CliCommand *c, const CliOpt *o, const char *got) {
    char valid[512];
    cli_opt_valid(o, valid, sizeof valid);
    return say(c, "%s: expected %s, got \"%s\"", o->name, valid, got);
}

static int int_in(const CliOpt *o, const char *s, long long *out) {
    return cli_parse_int(s, (long long)o->min, isinf(o->max) ? (1LL << 62) : (long long)o->max,
                         out);
}

/* Comma-separated whole numbers; *bad the first item that is not one (or the whole value). */
static int parse_ints(const CliOpt *o, const char *v, CliInts *out, char *bad, size_t n) {
    out->n = 0;
    snprintf(bad, n, "%s", v);
    for (const char *p = v;;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        long long x;
        if (len >= sizeof item || int_in(o, item, &x) || out->n == CLI_MAX_INTS) {
            if (len && out->n < CLI_MAX_INTS) snprintf(bad, n, "%.*s", (int)len, p);
            return -1;
        }
        out->v[out->n++] = x;
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* Stores value v of option o in args; returns 0, or the exit code after the error. */
static int set_value(const CliCommand *c, const CliOpt *o, const char *v, void *args) {
    void *dst = field(args, o);
    char got[512] = "";
    switch (o->type) {
    case CLI_FLAG:
        *(int *)dst = 1;
        return 0;
    case CLI_INT:
        return int_in(o, v, dst) ? bad_value(c, o, v) : 0;
    case CLI_REAL: {
        char *end;
        const double d = strtod(v, &end);
        const int in = o->open ? d > o->min && d < o->max : d >= o->min && d <= o->max;
        if (end == v || *end || !isfinite(d) || !in) return bad_value(c, o, v);
        *(double *)dst = d;
        return 0;
    }
    case CLI_STR:
        *(const char **)dst = v;
        return 0;
    case CLI_ENUM:
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(v, o->choices[i])) {
                *(int *)dst = i;
                return 0;
            }
        return bad_value(c, o, v);
    case CLI_LIST: {
        CliList *l = dst;
        const char **grown = realloc(l->v, ((size_t)l->n + 1) * sizeof *grown);
        XB_ASSERT(grown);
        l->v = grown;
        l->v[l->n++] = v;
        return 0;
    }
    case CLI_INTS:
        return parse_ints(o, v, dst, got, sizeof got) ? bad_value(c, o, got) : 0;
    case CLI_PARSE:
        return o->parse(dst, v, got, sizeof got) ? bad_value(c, o, got[0] ? got : v) : 0;
    }
    return 0;
}

static void set_defaults(const CliCommand *c, void *args) {
    for (int k = 0; k < c->n_opts; k++) {
        const CliOpt *o = &c->opts[k];
        XB_ASSERT(o->name); /* no hole in the table */
        if (!o->def) continue;
        const int rc = set_value(c, o, o->def, args);
        XB_ASSERT(rc == 0); /* a table's default is valid */
    }
}

/* The option that argument a names (a long name, or a short form "-o"), or -1. */
static int find_opt(const CliCommand *c, const char *a) {
    for (int k = 0; k < c->n_opts; k++) {
        const CliOpt *o = &c->opts[k];
        if (!strcmp(a, o->name) || (o->alias && a[1] == o->alias && !a[2])) return k;
    }
    return -1;
}

/* "--set, -o/--output, ..., --help" */
static void list_names(const CliCommand *c, char *buf, size_t n) {
    size_t k = 0;
    for (int i = 0; i < c->n_opts && k < n; i++) {
        const CliOpt *o = &c->opts[i];
        if (o->alias)
            k += (size_t)snprintf(buf + k, n - k, "-%c/%s, ", o->alias, o->name);
        else
            k += (size_t)snprintf(buf + k, n - k, "%s, ", o->name);
    }
    if (k < n) snprintf(buf + k, n - k, "--help");
}

static int add_operand(const CliCommand *c, const char *a, void *args) {
    CliList *ops = (CliList *)((char *)args + c->operands_at);
    if (c->max_operands >= 0 && ops->n >= c->max_operands) {
        if (ops->n == 1)
            return say(c, "expected %s, got \"%s\" and \"%s\"", c->one_more, ops->v[0], a);
        return say(c, "expected %s, got one more: \"%s\"", c->one_more, a);
    }
    const char **grown = realloc(ops->v, ((size_t)ops->n + 1) * sizeof *grown);
    XB_ASSERT(grown);
    ops->v = grown;
    ops->v[ops->n++] = a;
    return 0;
}

/* The mode the given options select. */
static int select_mode(const CliCommand *c, void *args, const CliSeen *seen) {
    int plain = 0;
    for (int m = 0; m < c->n_modes; m++) {
        const CliMode *md = &c->modes[m];
        if (md->select < 0) {
            plain = m;
            continue;
        }
        const CliOpt *o = &c->opts[md->select];
        if (o->type == CLI_FLAG ? seen->given[md->select] != 0
                                : *(int *)field(args, o) == md->value)
            return m;
    }
    return plain;
}

/* The first option given (in argv order) that does not apply in the selected mode. */
static int check_modes(const CliCommand *c, const CliSeen *seen) {
    int worst = -1;
    for (int k = 0; k < c->n_opts; k++) {
        const unsigned m = c->opts[k].modes;
        if (!seen->given[k] || !m || (m & (1u << seen->mode))) continue;
        if (worst < 0 || seen->given[k] < seen->given[worst]) worst = k;
    }
    if (worst < 0) return 0;
    const CliOpt *o = &c->opts[worst];
    for (int m = 0; m < c->n_modes; m++) /* an option of one named mode */
        if (o->modes == 1u << m && c->modes[m].name)
            return say(c, "%s applies only to %s (see --help)", o->name, c->modes[m].name);
    XB_ASSERT(c->modes[seen->mode].name);
    return say(c, "%s does not apply to %s (see --help)", o->name, c->modes[seen->mode].name);
}

/* One argument (and its value) at argv[*i]; returns 0 or the exit code after an error. */
static int take(const CliCommand *c, int argc, char **argv, int *i, void *args, CliSeen *seen) {
    const char *a = argv[*i];
    if (a[0] != '-' || !a[1]) return add_operand(c, a, args);
    const int k = find_opt(c, a);
    if (k < 0) {
        char names[1024];
        list_names(c, names, sizeof names);
        return say(c, "unknown option \"%s\" (valid: %s)", a, names);
    }
    const CliOpt *o = &c->opts[k];
    if (!seen->given[k]) seen->given[k] = *i;
    if (o->type == CLI_FLAG) return set_value(c, o, NULL, args);
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!v || (!*v && o->type == CLI_STR))
        return say(c, "%s needs %s (see --help)", a, o->needs ? o->needs : "a value");
    ++*i;
    return set_value(c, o, v, args);
}

/* After the arguments: the mode's options, the operands, the options a command cannot go without.
 */
static int check_after(const CliCommand *c, void *args, CliSeen *seen) {
    seen->mode = select_mode(c, args, seen);
    int rc = check_modes(c, seen);
    if (rc) return rc;
    const CliList *ops = (const CliList *)((const char *)args + c->operands_at);
    if (ops->n < c->min_operands) {
        if (c->missing) return say(c, "%s", c->missing);
        if (dist_world_rank() == 0) cli_help(c, stderr);
        return XB_EXIT_USAGE;
    }
    for (int k = 0; k < c->n_opts; k++) {
        const CliOpt *o = &c->opts[k];
        char value[256];
        value_text(o, value, sizeof value);
        if (o->required && !seen->given[k])
            return o->alias ? say(c, "expected -%c %s (see --help)", o->alias, value)
                            : say(c, "expected %s %s (see --help)", o->name, value);
    }
    return 0;
}

/* Fills args with the defaults of c's options, then parses argv[1..argc) into it. Returns 0 to
 * go on; else the command returns *code at once: 0 after the help (--help, -h), XB_EXIT_USAGE
 * after a one-line error (or the usage) on stderr. Only the first process of a world prints. */
static int cli_parse(const CliCommand *c, int argc, char **argv, void *args, CliSeen *seen,
                     int *code) {
    XB_ASSERT(c->n_opts <= (int)XB_ARRAY_LEN(seen->given));
    memset(seen, 0, sizeof *seen);
    set_defaults(c, args);
    *code = XB_EXIT_OK;
    for (int i = 1; i < argc && !*code; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (dist_world_rank() == 0) cli_help(c, stdout);
            return 1;
        }
        *code = take(c, argc, argv, &i, args, seen);
    }
    if (!*code) *code = check_after(c, args, seen);
    return *code != XB_EXIT_OK;
}

/* Frees what cli_parse allocated in args (the CliLists). */
static void cli_args_free(const CliCommand *c, void *args) {
    for (int k = 0; k < c->n_opts; k++)
        if (c->opts[k].type == CLI_LIST) {
            CliList *l = field(args, &c->opts[k]);
            free(l->v);
            l->v = NULL, l->n = 0;
        }
    CliList *ops = (CliList *)((char *)args + c->operands_at);
    free(ops->v);
    ops->v = NULL, ops->n = 0;
}

int cli_main(const CliCommand *c, int argc, char **argv) {
    void *args = calloc(1, c->args_size);
    XB_ASSERT(args);
    if (c->args_init) memcpy(args, c->args_init, c->args_size);
    CliSeen seen;
    int rc;
    if (!cli_parse(c, argc, argv, args, &seen, &rc)) rc = c->go(args, &seen);
    cli_args_free(c, args);
    free(args);
    return rc;
}

/* ---- help ---- */

/* Writes text from column `col` on, wrapped at HELP_WIDTH with continuation lines indented to
 * `indent`; ends with a newline. */
static void wrap(FILE *f, const char *text, int col, int indent) {
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        size_t w = strcspn(p, " ");
        if (col > indent && col + 1 + (int)w > HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        } else if (col < indent) {
            fprintf(f, "%*s", indent - col, "");
            col = indent;
        }
        fprintf(f, "%.*s", (int)w, p);
        col += (int)w;
        p += w;
    }
    fputc('\n', f);
}

/* The value part of option o in usage and help: its meta, or an enum's choices "test|val". */
static void value_text(const CliOpt *o, char *buf, size_t n) {
    buf[0] = '\0';
    if (o->type == CLI_ENUM && !o->meta) {
        size_t k = 0;
        for (int i = 0; o->choices[i] && k < n; i++)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "|" : "", o->choices[i]);
    } else if (o->meta) {
        snprintf(buf, n, "%s", o->meta);
    }
}

/* How the usage line shows option o: "[-o DIR]", "[--set KEY=VALUE]...", "[--split test|val]". */
static void usage_item(const CliOpt *o, char *buf, size_t n) {
    char value[256];
    value_text(o, value, sizeof value);
    char name[64];
    if (o->alias && value[0])
        snprintf(name, sizeof name, "-%c", o->alias);
    else
        snprintf(name, sizeof name, "%s", o->name);
    snprintf(buf, n, "%s%s%s%s%s%s", o->required ? "" : "[", name, value[0] ? " " : "", value,
             o->required ? "" : "]", o->type == CLI_LIST ? "..." : "");
}

/* Whether option k is listed in the usage line of mode m (-1: the line of the modes without
 * operands of their own). */
static int in_usage(const CliCommand *c, int k, int m) {
    const unsigned modes = c->opts[k].modes;
    if (m >= 0) return c->modes[m].select != k && (!modes || (modes & (1u << m)));
    if (!modes) return 1;
    for (int j = 0; j < c->n_modes; j++)
        if ((modes & (1u << j)) && !c->modes[j].operands) return 1;
    return 0;
}

static void usage_line(const CliCommand *c, FILE *f, int first, int m) {
    const char *prefix = m >= 0 && c->modes[m].prefix ? c->modes[m].prefix : "";
    const char *operands = m >= 0 ? c->modes[m].operands : c->operands;
    char head[256];
    int col = snprintf(head, sizeof head, "%s%sxformer-bench %s%s%s", first ? "usage: " : "       ",
                       prefix, c->name, operands && *operands ? " " : "", operands ? operands : "");
    fputs(head, f);
    const int indent = (int)strlen(first ? "usage: " : "       ") + (int)strlen(prefix) +
                       (int)strlen("xformer-bench ") + (int)strlen(c->name) + 1;
    for (int k = 0; k < c->n_opts; k++) {
        if (!in_usage(c, k, m)) continue;
        char item[336]; /* "[" name(63) " " value(255) "]..." */
        usage_item(&c->opts[k], item, sizeof item);
        const int w = (int)strlen(item);
        if (col + 1 + w > HELP_WIDTH) {
            fprintf(f, "\n%*s%s", indent, "", item);
            col = indent + w;
        } else {
            fprintf(f, " %s", item);
            col += 1 + w;
        }
    }
    fputc('\n', f);
}

/* Prints c's usage lines on f. */
static void cli_usage(const CliCommand *c, FILE *f) {
    usage_line(c, f, 1, -1);
    for (int m = 0; m < c->n_modes; m++)
        if (c->modes[m].operands) usage_line(c, f, 0, m);
    for (int i = 0; c->usage_extra && c->usage_extra[i]; i++)
        fprintf(f, "       %s\n", c->usage_extra[i]);
}

/* "  -o, --output DIR" */
static int help_label(const CliOpt *o, char *buf, size_t n) {
    char value[256];
    value_text(o, value, sizeof value);
    if (o->alias)
        return snprintf(buf, n, "  -%c, %s%s%s", o->alias, o->name, value[0] ? " " : "", value);
    return snprintf(buf, n, "  %s%s%s", o->name, value[0] ? " " : "", value);
}

static void help_option(const CliOpt *o, FILE *f) {
    char label[320], text[1536];
    const int w = help_label(o, label, sizeof label);
    fputs(label, f);
    size_t k = (size_t)snprintf(text, sizeof text, "%s", o->help ? o->help : "");
    if (o->def && o->type != CLI_FLAG) snprintf(text + k, sizeof text - k, " (default %s)", o->def);
    if (w + 2 > HELP_COLUMN) {
        fputc('\n', f);
        wrap(f, text, 0, HELP_COLUMN);
    } else {
        wrap(f, text, w, HELP_COLUMN);
    }
}

/* Prints c's help (usage, paragraphs, options with defaults) on f. */
static void cli_help(const CliCommand *c, FILE *f) {
    cli_usage(c, f);
    unsigned char done[CLI_MAX_OPTS] = {0};
    XB_ASSERT(c->n_opts <= (int)sizeof done);
    for (int h = 0; h < c->n_help; h++) {
        const CliHelp *p = &c->help[h];
        if (p->text) fprintf(f, "\n%s", p->text);
        int listed = 0;
        for (int k = 0; k < c->n_opts && p->modes; k++) {
            const unsigned m = c->opts[k].modes ? c->opts[k].modes : ~0u;
            if (done[k] || !(m & p->modes)) continue;
            if (!listed++) fputc('\n', f);
            help_option(&c->opts[k], f);
            done[k] = 1;
        }
    }
}
