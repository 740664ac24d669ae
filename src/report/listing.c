/* `xformer-bench list --json` (report/listing.h). */
#include "report/listing.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "core/xassert.h"
#include "report/report.h"
#include "tasks/task.h"

static cJSON *text_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *choices_of(const char *const *choices) {
    cJSON *a = cJSON_CreateArray();
    XB_ASSERT(a);
    for (int i = 0; choices[i]; i++) cJSON_AddItemToArray(a, cJSON_CreateString(choices[i]));
    return a;
}

/* An option of a mechanism, a task or a config section: its type, default (typed), range or
 * choices, what is valid (as the config's errors say it) and help. */
static cJSON *spec_json(const OptSpec *o) {
    cJSON *j = cJSON_CreateObject();
    XB_ASSERT(j);
    cJSON_AddStringToObject(j, "name", o->name);
    cJSON_AddStringToObject(j, "type", opt_type_name(o->type));
    switch (o->type) {
    case OPT_INT:
    case OPT_FLOAT:
        cJSON_AddNumberToObject(j, "default", o->def);
        cJSON_AddNumberToObject(j, "min", o->min);
        cJSON_AddNumberToObject(j, "max", o->max);
        break;
    case OPT_BOOL:
        cJSON_AddBoolToObject(j, "default", o->def != 0.0);
        break;
    case OPT_ENUM:
        cJSON_AddStringToObject(j, "default", o->choices[(int)o->def]);
        cJSON_AddItemToObject(j, "choices", choices_of(o->choices));
        break;
    case OPT_STRING:
        cJSON_AddStringToObject(j, "default", o->def_str ? o->def_str : "");
        break;
    }
    char valid[512];
    opt_describe_valid(o, valid, sizeof valid);
    cJSON_AddStringToObject(j, "valid", valid);
    cJSON_AddItemToObject(j, "help", text_or_null(o->help));
    return j;
}

static cJSON *specs_json(const OptSpec *o, int n) {
    cJSON *a = cJSON_CreateArray();
    XB_ASSERT(a);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, spec_json(&o[i]));
    return a;
}

static cJSON *mechanism_json(const ListMechanism *m) {
    cJSON *j = cJSON_CreateObject();
    XB_ASSERT(j);
    cJSON_AddStringToObject(j, "name", m->name);
    cJSON_AddStringToObject(j, "class", m->classes);
    cJSON_AddStringToObject(j, "arxiv", m->arxiv);
    cJSON_AddStringToObject(j, "title", m->title);
    cJSON_AddBoolToObject(j, "beyond_survey", m->beyond_survey);
    cJSON_AddBoolToObject(j, "honours_mask", m->honours_mask);
    cJSON *pd = cJSON_CreateNull();
    if (m->padding_dependence) {
        cJSON_Delete(pd);
        pd = cJSON_CreateObject();
        XB_ASSERT(pd);
        cJSON_AddStringToObject(pd, "what", m->padding_dependence);
        cJSON_AddItemToObject(pd, "option", text_or_null(m->padding_dependence_option));
    }
    cJSON_AddItemToObject(j, "padding_dependence", pd);
    cJSON_AddItemToObject(j, "options", specs_json(m->opts, m->n_opts));
    return j;
}

static cJSON *tasks_json(void) {
    cJSON *a = cJSON_CreateArray();
    XB_ASSERT(a);
    for (int i = 0; i < task_count(); i++) {
        const TaskSpec *t = task_get(i);
        cJSON *j = cJSON_CreateObject();
        XB_ASSERT(j);
        cJSON_AddStringToObject(j, "name", t->name);
        cJSON_AddStringToObject(j, "description", t->description);
        cJSON_AddBoolToObject(j, "sequence", t->sequence);
        cJSON_AddItemToObject(j, "options", specs_json(t->opts, t->n_opts));
        cJSON_AddItemToArray(a, j);
    }
    return a;
}

static cJSON *config_json(void) {
    static const char *const sections[] = {"experiment", "model", "train"};
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    for (size_t k = 0; k < XB_ARRAY_LEN(sections); k++) {
        cJSON *a = cJSON_AddArrayToObject(o, sections[k]);
        XB_ASSERT(a);
        for (int i = 0; i < cfg_key_count(sections[k]); i++)
            cJSON_AddItemToArray(a, spec_json(cfg_key(sections[k], i)));
    }
    return o;
}

static cJSON *command_option_json(const ListCommandOption *o) {
    cJSON *j = cJSON_CreateObject();
    XB_ASSERT(j);
    char alias[3] = {'-', o->alias, '\0'};
    cJSON_AddStringToObject(j, "name", o->name);
    cJSON_AddItemToObject(j, "short", text_or_null(o->alias ? alias : NULL));
    cJSON_AddStringToObject(j, "type", o->type);
    cJSON_AddItemToObject(j, "value", text_or_null(o->value));
    cJSON_AddItemToObject(j, "default", text_or_null(o->def));
    if (!isnan(o->min)) { /* an infinite end is no JSON number: null, no bound */
        cJSON_AddItemToObject(j, "min",
                              isfinite(o->min) ? cJSON_CreateNumber(o->min) : cJSON_CreateNull());
        cJSON_AddItemToObject(j, "max",
                              isfinite(o->max) ? cJSON_CreateNumber(o->max) : cJSON_CreateNull());
    }
    if (o->choices) cJSON_AddItemToObject(j, "choices", choices_of(o->choices));
    cJSON_AddItemToObject(j, "valid", text_or_null(o->valid));
    cJSON_AddItemToObject(j, "help", text_or_null(o->help));
    return j;
}

static cJSON *commands_json(const ListCommand *c, int nc) {
    cJSON *a = cJSON_CreateArray();
    XB_ASSERT(a);
    for (int i = 0; i < nc; i++) {
        cJSON *j = cJSON_CreateObject(), *opts = cJSON_CreateArray();
        XB_ASSERT(j && opts);
        cJSON_AddStringToObject(j, "name", c[i].name);
        cJSON_AddStringToObject(j, "summary", c[i].summary);
        cJSON_AddStringToObject(j, "operands", c[i].operands ? c[i].operands : "");
        for (int k = 0; k < c[i].n_opts; k++)
            cJSON_AddItemToArray(opts, command_option_json(&c[i].opts[k]));
        cJSON_AddItemToObject(j, "options", opts);
        cJSON_AddItemToArray(a, j);
    }
    return a;
}

cJSON *report_listing(int parts, const ListMechanism *m, int nm, const ListCommand *c, int nc) {
    cJSON *doc = cJSON_CreateObject();
    XB_ASSERT(doc);
    cJSON_AddNumberToObject(doc, "schema_version", XB_REPORT_SCHEMA_VERSION);
    cJSON_AddStringToObject(doc, "kind", "list");
    if (parts & LISTING_MECHANISMS) {
        cJSON *a = cJSON_AddArrayToObject(doc, "mechanisms");
        XB_ASSERT(a);
        for (int i = 0; i < nm; i++) cJSON_AddItemToArray(a, mechanism_json(&m[i]));
    }
    if (parts & LISTING_TASKS) cJSON_AddItemToObject(doc, "tasks", tasks_json());
    if (parts & LISTING_CONFIG) cJSON_AddItemToObject(doc, "config", config_json());
    if (parts & LISTING_COMMANDS) cJSON_AddItemToObject(doc, "commands", commands_json(c, nc));
    return doc;
}
