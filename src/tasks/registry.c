/* The table of all tasks: adding one is a file plus a line here. */
#include <string.h>

#include "core/xassert.h"
#include "tasks/task.h"

extern const TaskSpec task_listops;
extern const TaskSpec task_image;
extern const TaskSpec task_text;
extern const TaskSpec task_retrieval;
extern const TaskSpec task_parity;
extern const TaskSpec task_recall;
extern const TaskSpec task_pathfinder;
extern const TaskSpec task_mqar;
extern const TaskSpec task_needle;
extern const TaskSpec task_selcopy;

static const TaskSpec *const g_tasks[] = {
    &task_listops, &task_text,   &task_retrieval, &task_image,  &task_pathfinder,
    &task_parity,  &task_recall, &task_mqar,      &task_needle, &task_selcopy,
};

int task_count(void) { return (int)XB_ARRAY_LEN(g_tasks); }

const TaskSpec *task_get(int i) {
    XB_ASSERT(i >= 0 && i < task_count());
    return g_tasks[i];
}

int task_find(const char *name) {
    for (int i = 0; i < task_count(); i++)
        if (strcmp(g_tasks[i]->name, name) == 0) return i;
    return -1;
}
