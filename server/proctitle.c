/*
 * Process titles, as uWSGI sets them: "gyre master", "gyre worker 3" in ps and
 * /proc/PID/cmdline (the memory of the original argv, overwritten), and the thread name
 * (prctl PR_SET_NAME: top, /proc/PID/comm).
 *
 * Depends on: no other server file (server/README)
 */
#include "daemons.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

static char *title_area; /* the original argv strings, one contiguous block */
static size_t title_len;

char **proctitle_init(int argc, char **argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof(*copy));
    if (!copy)
        return argv;
    char *end = argv[0];
    for (int i = 0; i < argc; i++) {
        copy[i] = strdup(argv[i]);
        if (!copy[i])
            return argv; /* no title then, the original argv stays in use */
        /* Only strings that follow each other belong to the block (they always do on Linux). */
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    }
    title_area = argv[0];
    title_len = (size_t)(end - argv[0]);
    return copy;
}

void proctitle_set(const char *title)
{
    if (title_area && title_len > 2) {
        memset(title_area, 0, title_len);
        snprintf(title_area, title_len - 1, "%s", title);
        /* A last byte that is not NUL tells Linux the title was rewritten: /proc/PID/cmdline
         * (and ps) then read it up to its first NUL, "gyre master" and not "gyre master" and
         * the rest of the old argv's length in NULs (uWSGI's titles read the same). */
        title_area[title_len - 1] = ' ';
    }
    prctl(PR_SET_NAME, title, 0, 0, 0);
}

void proctitle_for(const struct gy_config *cfg, int id)
{
    bool automatic = cfg->auto_procname || cfg->procname_prefix || cfg->procname_append;
    const char *name = id == 0 && cfg->procname_master ? cfg->procname_master : cfg->procname;
    if (!automatic && !name)
        return;
    char base[32];
    if (!name) {
        if (id == 0)
            snprintf(base, sizeof(base), "gyre master");
        else
            snprintf(base, sizeof(base), "gyre worker %d", id);
        name = base;
    }
    char title[512];
    snprintf(title, sizeof(title), "%s%s%s", cfg->procname_prefix ? cfg->procname_prefix : "", name,
             cfg->procname_append ? cfg->procname_append : "");
    proctitle_set(title);
}
