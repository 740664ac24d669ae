/* JSON text for reports: a printer whose numbers read back to the same bits, and a strict
 * (RFC 8259) syntax checker that says where and what the first error is.
 *
 * Printer: cJSON 1.7.15's printer
 * does not: it accepts a %1.15g form when it is within a relative DBL_EPSILON of the value, so
 * 0.1 + 0.2 prints as 0.3 (about one double in six loses its last bit) and 2^53 prints as
 * 9.00719925474099e+15. Here integers below 2^53 print as integers and other numbers with the
 * fewest of 15, 16 or 17 significant digits that strtod reads back exactly.
 *
 * Checker: cJSON's parse-error pointer is sometimes one character past the error (a missing
 * object key) and cJSON accepts text that is not JSON (raw control characters in strings, leading
 * zeros), which other readers of the reports (Python's json) refuse. */
#include "report/report.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/xassert.h"

typedef struct {
    char *buf;
    size_t n, cap;
    int compact; /* 1: on one line, no spaces */
} Sb;

static void sb_put(Sb *s, const char *p, size_t n) {
    if (s->n + n + 1 > s->cap) {
        while (s->n + n + 1 > s->cap) s->cap = s->cap ? 2 * s->cap : 4096;
        s->buf = realloc(s->buf, s->cap);
        XB_ASSERT(s->buf);
    }
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    s->buf[s->n] = '\0';
}

static void sb_str(Sb *s, const char *p) { sb_put(s, p, strlen(p)); }

/* A new line at depth (nothing when compact). */
static void sb_newline(Sb *s, int depth) {
    if (s->compact) return;
    sb_put(s, "\n", 1);
    for (int i = 0; i < depth; i++) sb_put(s, "  ", 2);
}

static void print_number(Sb *s, double d) {
    char tmp[64];
    if (!isfinite(d)) {
        sb_str(s, "null"); /* not JSON otherwise */
        return;
    }
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        snprintf(tmp, sizeof tmp, "%.0f", d);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d) break;
        }
    }
    sb_str(s, tmp);
}

static void print_string(Sb *s, const char *str) {
    sb_put(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"':
            sb_put(s, "\\\"", 2);
            break;
        case '\\':
            sb_put(s, "\\\\", 2);
            break;
        case '\b':
            sb_put(s, "\\b", 2);
            break;
        case '\f':
            sb_put(s, "\\f", 2);
            break;
        case '\n':
            sb_put(s, "\\n", 2);
            break;
        case '\r':
            sb_put(s, "\\r", 2);
            break;
        case '\t':
            sb_put(s, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_str(s, esc);
            } else {
                sb_put(s, (const char *)p, 1); /* UTF-8 passes through */
            }
        }
    }
    sb_put(s, "\"", 1);
}

static int is_scalar(const cJSON *j) { return !cJSON_IsArray(j) && !cJSON_IsObject(j); }

static void print_value(Sb *s, const cJSON *j, int depth) {
    if (cJSON_IsNull(j)) {
        sb_str(s, "null");
    } else if (cJSON_IsFalse(j)) {
        sb_str(s, "false");
    } else if (cJSON_IsTrue(j)) {
        sb_str(s, "true");
    } else if (cJSON_IsNumber(j)) {
        print_number(s, j->valuedouble);
    } else if (cJSON_IsString(j)) {
        print_string(s, j->valuestring);
    } else if (cJSON_IsRaw(j)) {
        sb_str(s, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        int flat = 1;
        for (const cJSON *c = j->child; c; c = c->next) flat = flat && is_scalar(c);
        sb_put(s, "[", 1);
        for (const cJSON *c = j->child; c; c = c->next) {
            if (!flat) sb_newline(s, depth + 1);
            print_value(s, c, depth + 1);
            if (c->next) sb_str(s, flat && !s->compact ? ", " : ",");
        }
        if (!flat && j->child) sb_newline(s, depth);
        sb_put(s, "]", 1);
    } else {
        XB_ASSERT(cJSON_IsObject(j));
        sb_put(s, "{", 1);
        for (const cJSON *c = j->child; c; c = c->next) {
            sb_newline(s, depth + 1);
            print_string(s, c->string);
            sb_str(s, s->compact ? ":" : ": ");
            print_value(s, c, depth + 1);
            if (c->next) sb_put(s, ",", 1);
        }
        if (j->child) sb_newline(s, depth);
        sb_put(s, "}", 1);
    }
}

char *report_json_print(const cJSON *j) {
    Sb s = {0};
    print_value(&s, j, 0);
    sb_put(&s, "\n", 1);
    return s.buf;
}

char *report_json_print_compact(const cJSON *j) {
    Sb s = {.compact = 1};
    print_value(&s, j, 0);
    return s.buf;
}

/* ---- syntax check ---- */

typedef struct {
    const char *t;
    size_t n, i;
    const char *msg; /* set on the first error, with i at its place */
} Scan;

const char report_json_too_deep[] = "nested too deeply";
const char report_json_not_utf8[] = "not UTF-8";

static int scan_fail(Scan *s, const char *msg) {
    if (s->i >= s->n) msg = "unexpected end of file";
    s->msg = msg;
    return -1;
}

static void scan_ws(Scan *s) {
    while (s->i < s->n && strchr(" \t\r\n", s->t[s->i]) && s->t[s->i]) s->i++;
}

static int scan_peek(const Scan *s) { return s->i < s->n ? (unsigned char)s->t[s->i] : -1; }

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int scan_string(Scan *s) {
    const size_t start = s->i++; /* at the opening quote */
    for (;;) {
        const int c = scan_peek(s);
        if (c < 0) {
            s->i = start;
            s->msg = "unterminated string";
            return -1;
        }
        if (c == '"') {
            s->i++;
            return 0;
        }
        if (c < 0x20) return scan_fail(s, "control character in a string (write it as \\uXXXX)");
        if (c >= 0x80) { /* RFC 8259 8.1: JSON text is UTF-8 */
            const size_t len = fileio_utf8_char(s->t + s->i, s->n - s->i);
            if (len == 0) return scan_fail(s, report_json_not_utf8);
            s->i += len - 1; /* the loop steps over the character's last byte */
        }
        if (c == '\\') {
            s->i++;
            const int e = scan_peek(s);
            if (e == 'u') {
                for (int k = 0; k < 4; k++) {
                    s->i++;
                    if (!isxdigit(scan_peek(s)))
                        return scan_fail(s, "invalid \\u escape in a string");
                }
            } else if (e < 0 || !strchr("\"\\/bfnrt", e)) {
                s->i--;
                return scan_fail(s, "invalid escape in a string");
            }
        }
        s->i++;
    }
}

static int scan_number(Scan *s) {
    const size_t start = s->i;
    if (scan_peek(s) == '-') s->i++;
    if (scan_peek(s) == '0') {
        s->i++;
        if (is_digit(scan_peek(s))) {
            s->i = start;
            return scan_fail(s, "invalid number (leading zero)");
        }
    } else if (is_digit(scan_peek(s))) {
        while (is_digit(scan_peek(s))) s->i++;
    } else {
        s->i = start;
        return scan_fail(s, "invalid number");
    }
    if (scan_peek(s) == '.') {
        s->i++;
        if (!is_digit(scan_peek(s))) {
            s->i = start;
            return scan_fail(s, "invalid number (no digit after the decimal point)");
        }
        while (is_digit(scan_peek(s))) s->i++;
    }
    if (scan_peek(s) == 'e' || scan_peek(s) == 'E') {
        s->i++;
        if (scan_peek(s) == '+' || scan_peek(s) == '-') s->i++;
        if (!is_digit(scan_peek(s))) {
            s->i = start;
            return scan_fail(s, "invalid number (no digit in the exponent)");
        }
        while (is_digit(scan_peek(s))) s->i++;
    }
    return 0;
}

static int scan_value(Scan *s, int depth);

static int scan_container(Scan *s, int depth, int is_object) {
    const char close = is_object ? '}' : ']';
    if (depth >= REPORT_JSON_MAX_DEPTH) return scan_fail(s, report_json_too_deep);
    s->i++; /* '{' or '[' */
    scan_ws(s);
    if (scan_peek(s) == close) {
        s->i++;
        return 0;
    }
    for (;;) {
        if (is_object) {
            if (scan_peek(s) != '"') return scan_fail(s, "expected a string key");
            if (scan_string(s)) return -1;
            scan_ws(s);
            if (scan_peek(s) != ':') return scan_fail(s, "expected ':' after the key");
            s->i++;
        }
        if (scan_value(s, depth + 1)) return -1;
        scan_ws(s);
        const int c = scan_peek(s);
        if (c == close) {
            s->i++;
            return 0;
        }
        if (c != ',')
            return scan_fail(s, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        s->i++;
        scan_ws(s);
    }
}

static int scan_value(Scan *s, int depth) {
    scan_ws(s);
    const int c = scan_peek(s);
    static const char *const literals[] = {"true", "false", "null"};
    if (c == '{' || c == '[') return scan_container(s, depth, c == '{');
    if (c == '"') return scan_string(s);
    if (c == '-' || is_digit(c)) return scan_number(s);
    for (size_t k = 0; k < XB_ARRAY_LEN(literals); k++) {
        const size_t len = strlen(literals[k]);
        if (c == literals[k][0] && s->n - s->i >= len && !memcmp(s->t + s->i, literals[k], len)) {
            s->i += len;
            return 0;
        }
    }
    return scan_fail(s, "expected a value");
}

int report_json_check(const char *text, size_t n, size_t *pos, const char **msg) {
    Scan s = {.t = text, .n = n};
    if (scan_value(&s, 0) == 0) {
        scan_ws(&s);
        if (s.i == n) return 0;
        scan_fail(&s, "unexpected text after the end of the JSON document");
    }
    *pos = s.i;
    *msg = s.msg;
    return -1;
}
