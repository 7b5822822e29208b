/*
 * gyre's entry: the options, the log's destination, the pid file, then either one worker in the
 * foreground or a master managing --processes workers.
 *
 * Depends on: log.c, logformat.c, master.c, options.c, worker.c (server/README)
 */
#include "log.h"
#include "process.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        log_errno("--pidfile %s", path);
        return -1;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    static struct gy_config cfg;
    options_parse(&cfg, argc, argv);
    if (cfg.logto && open_logto(cfg.logto) < 0)
        return 1;
    log_init();
    const char *err = log_setup(&cfg);
    if (!err && (err = logformat_setup(&cfg)) == NULL && logformat_warning())
        log_msg("--log-format: %s", logformat_warning());
    if (err) {
        fprintf(stderr, "gyre: %s\n", err);
        return 2;
    }
    log_capture_stdio();
    if (cfg.processes > 1 && !cfg.master) {
        log_msg("--processes %d needs a master to manage the workers: implying --master",
                cfg.processes);
        cfg.master = true;
    }
    if (cfg.pidfile && write_pidfile(cfg.pidfile) < 0)
        return 1;
    int rc = cfg.master ? master_run(&cfg) : worker_run(&cfg, NULL);
    if (cfg.pidfile)
        unlink(cfg.pidfile);
    fflush(NULL);
    _exit(rc);
}
