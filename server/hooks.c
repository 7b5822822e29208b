/*
 * Hooks: the actions of uWSGI's --hook-<phase> (see hooks.h for when each phase runs).
 *
 *   exec:CMD             /bin/sh -c CMD; fails unless it exits 0
 *   mkdir:DIR  rmdir:DIR  chdir:DIR  unlink:FILE  putenv:KEY=VALUE
 *   print:TEXT  log:TEXT a log line
 *   write:FILE TEXT      FILE holds TEXT (created, truncated); writen: adds a newline;
 *   append:FILE TEXT     appendn: the same at FILE's end
 *   writefifo:FIFO TEXT  TEXT to a FIFO that has a reader (fails at once if none)
 *   call:SYMBOL [ARG]    call a C function of gyre's process: void f(char *arg or NULL);
 *   callret:SYMBOL [ARG] ... int f(char *): fails unless it returns 0
 *   unix_signal:N FUNC   what signal N does to the master (hooks.h)
 *
 * Two leniencies over uWSGI, which ends the instance: mkdir of a directory that exists and
 * unlink of a file that does not are done already, not failures (a restart must not fail on
 * what the previous run left).
 *
 * Depends on: log.c (server/README)
 */
#include "hooks.h"
#include "log.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const phase_names[HOOK_NPHASES] = {
    [HOOK_ASAP] = "asap",
    [HOOK_PRE_JAIL] = "pre-jail",
    [HOOK_IN_JAIL] = "in-jail",
    [HOOK_POST_JAIL] = "post-jail",
    [HOOK_AS_ROOT] = "as root",
    [HOOK_AS_USER] = "as user",
    [HOOK_MASTER_START] = "master-start",
    [HOOK_POST_FORK] = "post-fork",
    [HOOK_PRE_APP] = "pre app",
    [HOOK_POST_APP] = "post app",
    [HOOK_ACCEPTING] = "accepting",
    [HOOK_ACCEPTING_ONCE] = "accepting-once",
    [HOOK_ACCEPTING1] = "accepting1",
    [HOOK_ACCEPTING1_ONCE] = "accepting1-once",
    [HOOK_AS_USER_ATEXIT] = "as user atexit",
};

static int run_exec(const char *cmd)
{
    fflush(NULL); /* what stdio buffered is written once, not by both processes */
    pid_t pid = fork();
    if (pid < 0) {
        log_errno("hook exec: fork");
        return -1;
    }
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            log_errno("hook exec: waitpid");
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        log_msg("hook exec: \"%s\" exited with status %d", cmd, WEXITSTATUS(status));
    else
        log_msg("hook exec: \"%s\" killed by signal %d", cmd, WTERMSIG(status));
    return -1;
}

static int run_mkdir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
    log_errno("hook mkdir: %s", dir);
    return -1;
}

static int run_rmdir(const char *dir)
{
    if (rmdir(dir) == 0)
        return 0;
    log_errno("hook rmdir: %s", dir);
    return -1;
}

static int run_chdir(const char *dir)
{
    if (chdir(dir) == 0)
        return 0;
    log_errno("hook chdir: %s", dir);
    return -1;
}

static int run_unlink(const char *file)
{
    if (unlink(file) == 0 || errno == ENOENT)
        return 0;
    log_errno("hook unlink: %s", file);
    return -1;
}

static int run_print(const char *text)
{
    log_msg("%s", text);
    return 0;
}

static int run_putenv(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        log_msg("hook putenv: %s: expected KEY=VALUE", kv);
        return -1;
    }
    char *key = strndup(kv, (size_t)(eq - kv));
    int rc = key ? setenv(key, eq + 1, 1) : -1;
    if (rc < 0)
        log_errno("hook putenv: %s", kv);
    free(key);
    return rc;
}

/* "FILE TEXT": FILE opened with flags, TEXT (and a newline if asked) written whole. */
static int write_text(const char *what, const char *arg, int flags, bool newline)
{
    const char *space = strchr(arg, ' ');
    if (!space || space == arg) {
        log_msg("hook %s: %s: expected FILE TEXT", what, arg);
        return -1;
    }
    char *file = strndup(arg, (size_t)(space - arg));
    int fd = file ? open(file, flags | O_CLOEXEC, 0666) : -1;
    if (fd < 0) {
        log_errno("hook %s: %s", what, file ? file : arg);
        free(file);
        return -1;
    }
    const char *text = space + 1;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && (!newline || write(fd, "\n", 1) == 1);
    if (!ok)
        log_errno("hook %s: %s", what, file);
    close(fd);
    free(file);
    return ok ? 0 : -1;
}

static int run_write(const char *arg)
{
    return write_text("write", arg, O_WRONLY | O_CREAT | O_TRUNC, false);
}
static int run_writen(const char *arg)
{
    return write_text("writen", arg, O_WRONLY | O_CREAT | O_TRUNC, true);
}
static int run_append(const char *arg)
{
    return write_text("append", arg, O_WRONLY | O_CREAT | O_APPEND, false);
}
static int run_appendn(const char *arg)
{
    return write_text("appendn", arg, O_WRONLY | O_CREAT | O_APPEND, true);
}
static int run_writefifo(const char *arg)
{
    /* O_NONBLOCK: a FIFO nobody reads is an error now (ENXIO), never a hang. */
    return write_text("writefifo", arg, O_WRONLY | O_NONBLOCK, false);
}

/* "SYMBOL [ARG]": the function, and its argument (NULL without one) in *argp (to free). */
static void *find_symbol(const char *what, const char *spec, char **argp)
{
    const char *space = strchr(spec, ' ');
    char *name = space ? strndup(spec, (size_t)(space - spec)) : strdup(spec);
    *argp = space ? strdup(space + 1) : NULL;
    void *sym = name ? dlsym(RTLD_DEFAULT, name) : NULL;
    if (!sym)
        log_msg("hook %s: no function %s in gyre's process", what, name ? name : spec);
    free(name);
    return sym;
}

static int run_call(const char *spec)
{
    char *arg;
    void *sym = find_symbol("call", spec, &arg);
    if (sym) {
        void (*fn)(char *);
        memcpy(&fn, &sym, sizeof(fn)); /* dlsym's object pointer to a function pointer */
        fn(arg);
    }
    free(arg);
    return sym ? 0 : -1;
}

static int run_callret(const char *spec)
{
    char *arg;
    void *sym = find_symbol("callret", spec, &arg);
    int rc = -1;
    if (sym) {
        int (*fn)(char *);
        memcpy(&fn, &sym, sizeof(fn));
        rc = fn(arg);
        if (rc != 0)
            log_msg("hook callret: %s returned %d", spec, rc);
    }
    free(arg);
    return rc == 0 ? 0 : -1;
}

static hook_unix_signal_fn unix_signal_fn;

void hooks_set_unix_signal(hook_unix_signal_fn fn)
{
    unix_signal_fn = fn;
}

static int run_unix_signal(const char *arg)
{
    char *end;
    long signo = strtol(arg, &end, 10);
    if (end == arg || *end != ' ' || signo < 1 || signo > 64) {
        log_msg("hook unix_signal: %s: expected SIGNUM FUNCTION", arg);
        return -1;
    }
    while (*end == ' ')
        end++;
    if (!unix_signal_fn) {
        log_msg("hook unix_signal: %s: only the master's signals can be given a function: no "
                "effect here",
                arg);
        return 0;
    }
    return unix_signal_fn((int)signo, end);
}

static const struct hook_action {
    const char *name;
    int (*run)(const char *arg);
} ACTIONS[] = {
    { "exec", run_exec },
    { "mkdir", run_mkdir },
    { "rmdir", run_rmdir },
    { "chdir", run_chdir },
    { "cd", run_chdir },
    { "unlink", run_unlink },
    { "print", run_print },
    { "log", run_print },
    { "putenv", run_putenv },
    { "write", run_write },
    { "writen", run_writen },
    { "append", run_append },
    { "appendn", run_appendn },
    { "writefifo", run_writefifo },
    { "call", run_call },
    { "callret", run_callret },
    { "unix_signal", run_unix_signal },
};

/* The action of "name:arg" (uWSGI's "!name:arg", a hook not echoed to the log, too). */
static const struct hook_action *action_of(const char *spec, bool *quiet)
{
    *quiet = spec[0] == '!';
    spec += *quiet;
    const char *colon = strchr(spec, ':');
    if (!colon)
        return NULL;
    size_t len = (size_t)(colon - spec);
    for (size_t i = 0; i < sizeof(ACTIONS) / sizeof(ACTIONS[0]); i++)
        if (strlen(ACTIONS[i].name) == len && memcmp(ACTIONS[i].name, spec, len) == 0)
            return &ACTIONS[i];
    return NULL;
}

int hooks_check(const struct gy_config *cfg)
{
    int rc = 0;
    for (int p = 0; p < HOOK_NPHASES; p++)
        for (int i = 0; i < cfg->nhooks[p]; i++) {
            bool quiet;
            if (!action_of(cfg->hooks[p][i], &quiet)) {
                log_msg("hook (%s) \"%s\": expected ACTION:ARG with ACTION one of exec, mkdir, "
                        "rmdir, chdir, unlink, print, log, putenv, write, writen, append, "
                        "appendn, writefifo, call, callret, unix_signal",
                        phase_names[p], cfg->hooks[p][i]);
                rc = -1;
            }
        }
    return rc;
}

bool hooks_any(const struct gy_config *cfg, enum hook_phase phase)
{
    return cfg->nhooks[phase] > 0;
}

int hooks_run(const struct gy_config *cfg, enum hook_phase phase)
{
    for (int i = 0; i < cfg->nhooks[phase]; i++) {
        const char *spec = cfg->hooks[phase][i];
        bool quiet;
        const struct hook_action *a = action_of(spec, &quiet);
        if (!a) { /* hooks_check said so at start-up */
            log_msg("hook (%s) \"%s\": unknown action", phase_names[phase], spec);
            return -1;
        }
        if (quiet)
            log_msg("running --- PRIVATE HOOK --- (%s)...", phase_names[phase]);
        else
            log_msg("running \"%s\" (%s)...", spec, phase_names[phase]);
        if (a->run(strchr(spec, ':') + 1) < 0) {
            log_msg("FATAL hook failed (%s): \"%s\"", phase_names[phase], quiet ? "!" : spec);
            return -1;
        }
    }
    return 0;
}
