/*
 * gyre's entry: the options, the log's destination, the pid file, then either one worker in the
 * foreground or a master managing --processes workers.
 *
 * Depends on: log.c, logformat.c, master.c, options.c, proctitle.c, route.c, worker.c
 *     (server/README)
 */
#include "daemons.h"
#include "log.h"
#include "process.h"
#include "route.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_logto(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "gyre: --logto %s: %m\n", path);
        return -1;
    }
    /* stdout and stderr both: Python's tracebacks and print() go where gyre's lines go. */
    if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
        fprintf(stderr, "gyre: --logto %s: %m\n", path);
        return -1;
    }
    close(fd);
    return 0;
}

/* Written whole or not at all (uWSGI's --safe-pidfile): a temporary file renamed over it, so
 * that a reader never sees it empty or half written. */
static int write_pidfile(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_errno("--pidfile %s", tmp);
        return -1;
    }
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        log_errno("--pidfile %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The --route* rules, once, in the process that read the configuration: a bad one stops the
 * start, and the actions gyre lacks are named in one warning (not once per worker). */
static int check_routes(const struct gy_config *cfg)
{
    struct route_table *t;
    char err[320];
    if (!route_table_from_config(cfg, &t, err, sizeof(err))) {
        fprintf(stderr, "gyre: %s\n", err);
        return -1;
    }
    const char *unsupported = t ? route_unsupported(t) : NULL;
    if (unsupported)
        log_msg("WARNING: routing actions gyre does not implement, their rules are ignored: %s",
                unsupported);
    route_table_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    static struct gy_config cfg;
    argv = proctitle_init(argc, argv); /* the original argv's memory becomes the title */
    options_parse(&cfg, argc, argv);
    if (cfg.logto && open_logto(cfg.logto) < 0)
        return 1;
    log_init();
    const char *err = log_setup(&cfg);
    if (!err)
        err = logformat_setup(&cfg);
    if (err) {
        fprintf(stderr, "gyre: %s\n", err);
        return 2;
    }
    if (check_routes(&cfg) < 0)
        return 2;
    log_capture_stdio();
    if (cfg.processes > 1 && !cfg.master) {
        log_msg("--processes %d needs a master to manage the workers: implying --master",
                cfg.processes);
        cfg.master = true;
    }
    if (process_prepare(&cfg) < 0)
        return 1;
    if (cfg.pidfile && write_pidfile(cfg.pidfile) < 0)
        return 1;
    if (cfg.pidfile2 && write_pidfile(cfg.pidfile2) < 0)
        return 1;
    int rc = cfg.master ? master_run(&cfg) : worker_run(&cfg, NULL);
    if (cfg.pidfile)
        unlink(cfg.pidfile);
    if (cfg.pidfile2)
        unlink(cfg.pidfile2);
    fflush(NULL);
    _exit(rc);
}
