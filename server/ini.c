/*
 * Options from .ini files (uWSGI's format, parsed by libinih) and from UWSGI_<OPTION> and
 * GYRE_<OPTION> environment variables. Both end in cfg->set_option (options.c's options_set,
 * like the command line): ini.c never calls up into options.c.
 *
 * .ini files, as uWSGI reads them:
 *   - the keys of the [uwsgi] and [gyre] sections apply in file order (FILE:SECTION loads only
 *     SECTION, and ":SECTION" that section of the last file loaded); other sections are ignored;
 *   - a key given twice adds up where the option does (socket, pythonpath, env...);
 *   - "; ..." and "# ..." lines are comments; there are no inline comments (a ';' inside a value
 *     is part of it), and a bare key is a flag set to true;
 *   - in values: %(name) is the value of an option (or placeholder) set earlier, in this or an
 *     earlier file or the environment (the most recent one; left as it is if there is none, so
 *     that log formats keep their %(status)); %d the file's directory with a trailing '/', %p
 *     its absolute path, %s its name, %n its name without the extension, %c the name of its
 *     directory, %o the path as given, %v the current directory, %h the hostname, %k the number
 *     of CPUs, %% a '%'; $(VAR) the environment variable VAR (empty if unset);
 *   - "set-placeholder = NAME=VALUE" (or set-ph) defines a %(NAME) that is not an option: a key
 *     gyre does not know is an error, not a placeholder as in uWSGI's non-strict mode;
 *   - "ini = FILE" inside a file loads FILE there (nesting is limited).
 *
 * Every string handed to options_set() is allocated here and never freed: the configuration
 * lives as long as the process.
 *
 * Depends on: no other server file (server/README)
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INI_MAX_DEPTH 10
#define INI_LINE_MAX 8192 /* longest line accepted, newline included */

extern char **environ;

/* ---- placeholders: every option applied from a file or the environment, newest first ------ */

struct placeholder {
    const char *name, *value;
    struct placeholder *next;
};
static struct placeholder *placeholders;

static void placeholder_add(const char *name, const char *value)
{
    struct placeholder *p = malloc(sizeof(*p));
    if (!p)
        return; /* out of memory at start-up: the %(name) stays unexpanded */
    p->name = name;
    p->value = value ? value : "true";
    p->next = placeholders;
    placeholders = p;
}

static const char *placeholder_get(const char *name, size_t len)
{
    for (const struct placeholder *p = placeholders; p; p = p->next)
        if (strlen(p->name) == len && memcmp(p->name, name, len) == 0)
            return p->value;
    return NULL;
}

/* The message options_set() gives for a name it does not know, whatever its wording. */
static bool is_unknown_option(option_setter set, struct gy_config *cfg, const char *err)
{
    static const char *unknown;
    if (!unknown)
        unknown = set(cfg, "\x01 not an option", NULL);
    return err && unknown && (err == unknown || strcmp(err, unknown) == 0);
}

/* "NAME=VALUE" (spaces around either allowed) to a placeholder. */
static const char *set_placeholder(const char *v)
{
    if (!v)
        return "missing value";
    const char *eq = strchr(v, '=');
    if (!eq)
        return "expected NAME=VALUE";
    const char *ne = eq;
    while (ne > v && isspace((unsigned char)ne[-1]))
        ne--;
    const char *val = eq + 1;
    while (isspace((unsigned char)*val))
        val++;
    if (ne == v)
        return "expected NAME=VALUE";
    char *name = strndup(v, (size_t)(ne - v));
    char *value = strdup(val);
    if (!name || !value)
        return "out of memory";
    placeholder_add(name, value);
    return NULL;
}

static bool is_set_placeholder(const char *name)
{
    return strcmp(name, "set-placeholder") == 0 || strcmp(name, "set-ph") == 0;
}

/* Apply one option from a file or the environment and remember it for %(name). name and value
 * must live for the process. */
static const char *apply(option_setter set, struct gy_config *cfg, const char *name,
                         const char *value)
{
    if (is_set_placeholder(name))
        return set_placeholder(value);
    const char *err = set(cfg, name, value);
    if (!err)
        placeholder_add(name, value);
    return err;
}

/* ---- .ini files ----------------------------------------------------------------------------- */

struct ini_file {
    struct gy_config *cfg;
    option_setter set;
    const char *given;   /* the path as given: what messages name */
    const char *abspath; /* realpath()'s */
    const char *section; /* the one section asked for, or NULL for [uwsgi] and [gyre] */
    FILE *f;
    char *line;
    size_t line_cap;
    int lineno;
    const char *err;
    bool saw_section;
};

static char errbuf[1024];

/* Format the message into errbuf (truncated if it must) and return it. */
__attribute__((format(printf, 1, 2))) static const char *fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
    va_end(ap);
    return errbuf;
}

static int depth;
static char *last_file; /* for "ini = :section" */

/* libinih's fgets-like reader, on our side so that we know the line number and can tell a line
 * longer than the parser's buffer from two lines. errbuf is declared before it for that. */
static char *read_line(char *str, int num, void *stream)
{
    struct ini_file *c = stream;
    ssize_t n = getline(&c->line, &c->line_cap, c->f);
    if (n < 0)
        return NULL;
    c->lineno++;
    if (n >= num) {
        /* Stop here (as at the end of the file); ini_load() reports it. */
        c->err = fail("%s:%d: line too long (the limit is %d bytes)", c->given, c->lineno, num - 2);
        return NULL;
    }
    memcpy(str, c->line, (size_t)n);
    str[n] = '\0';
    return str;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Expand the magic variables, %(name) and $(VAR) of one value into a new string. */
static char *expand(const struct ini_file *c, const char *v)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *m = open_memstream(&out, &out_len);
    if (!m)
        return NULL;
    const char *abs = c->abspath;
    const char *file = base_name(abs);
    size_t dir_len = (size_t)(file - abs); /* with its trailing '/' */
    for (const char *p = v; *p; p++) {
        if ((p[0] == '%' || p[0] == '$') && p[1] == '(') {
            const char *close = strchr(p + 2, ')');
            if (close) {
                size_t len = (size_t)(close - (p + 2));
                const char *val;
                if (p[0] == '%') {
                    val = placeholder_get(p + 2, len);
                } else {
                    char name[256];
                    snprintf(name, sizeof(name), "%.*s", (int)len, p + 2);
                    val = getenv(name);
                    if (!val)
                        val = "";
                }
                if (val) {
                    fputs(val, m);
                    p = close;
                    continue;
                }
            }
            fputc(*p, m); /* no such placeholder: left as written */
            continue;
        }
        if (p[0] != '%' || p[1] == '\0') {
            fputc(*p, m);
            continue;
        }
        char buf[PATH_MAX];
        switch (p[1]) {
        case '%':
            fputc('%', m);
            break;
        case 'd':
            fwrite(abs, 1, dir_len, m);
            break;
        case 'p':
            fputs(abs, m);
            break;
        case 's':
            fputs(file, m);
            break;
        case 'n': {
            const char *dot = strrchr(file, '.');
            fwrite(file, 1, dot && dot != file ? (size_t)(dot - file) : strlen(file), m);
            break;
        }
        case 'c': {
            /* The directory's own name: between the last two slashes of abs. */
            size_t end = dir_len > 1 ? dir_len - 1 : dir_len, start = end;
            while (start > 0 && abs[start - 1] != '/')
                start--;
            fwrite(abs + start, 1, end - start, m);
            break;
        }
        case 'o':
            fputs(c->given, m);
            break;
        case 'v':
            fputs(getcwd(buf, sizeof(buf)) ? buf : "", m);
            break;
        case 'h':
            if (gethostname(buf, sizeof(buf)) < 0)
                buf[0] = '\0';
            buf[sizeof(buf) - 1] = '\0';
            fputs(buf, m);
            break;
        case 'k':
            fprintf(m, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
            break;
        default:
            fputc('%', m); /* not a magic variable: both characters stay */
            continue;
        }
        p++;
    }
    if (fclose(m) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct ini_file *c = user;
    if (c->section ? strcmp(section, c->section) != 0
                   : strcmp(section, "uwsgi") != 0 && strcmp(section, "gyre") != 0)
        return 1;
    c->saw_section = true;
    char *key = strdup(name);
    char *val = value ? expand(c, value) : NULL;
    if (!key || (value && !val)) {
        c->err = fail("%s:%d: out of memory", c->given, c->lineno);
        return 0;
    }
    const char *err = apply(c->set, c->cfg, key, val);
    if (!err)
        return 1;
    if (err == errbuf) {
        /* From a nested ini: it already says where; add where it was included from (once: the
         * innermost include is the one that tells). */
        if (!strstr(errbuf, " (included from ")) {
            char inner[sizeof(errbuf)];
            strcpy(inner, errbuf);
            fail("%s (included from %s:%d)", inner, c->given, c->lineno);
        }
    } else if (is_unknown_option(c->set, c->cfg, err)) {
        fail("%s:%d: unknown option '%s'", c->given, c->lineno, key);
    } else if (val) {
        fail("%s:%d: %s = %s: %s", c->given, c->lineno, key, val, err);
    } else {
        fail("%s:%d: %s: %s", c->given, c->lineno, key, err);
    }
    c->err = errbuf;
    return 0;
}

const char *ini_load(struct gy_config *cfg, const char *path)
{
    /* uWSGI's FILE:SECTION and :SECTION, unless a file is really named so. */
    const char *section = NULL;
    char *file = strdup(path);
    if (!file)
        return "out of memory";
    char *colon = strrchr(file, ':');
    if (colon && !strchr(colon, '/') && access(file, F_OK) != 0) {
        *colon = '\0';
        if (colon[1])
            section = colon + 1;
        if (file[0] == '\0') {
            if (!last_file)
                return fail("%s: no .ini file loaded before to take [%s] from", path,
                            section ? section : "");
            file = strdup(last_file);
            if (!file)
                return "out of memory";
        }
    }
    if (depth >= INI_MAX_DEPTH)
        return fail("%s: .ini files nested more than %d deep (does one include itself?)", file,
                    INI_MAX_DEPTH);

    struct ini_file c = { .cfg = cfg, .set = cfg->set_option, .given = file, .section = section };
    c.f = fopen(file, "re");
    if (!c.f)
        return fail("cannot open %s: %s", file, strerror(errno));
    char *abs = realpath(file, NULL);
    c.abspath = abs ? abs : file;
    free(last_file);
    last_file = strdup(file);

    /* uWSGI's syntax rather than libinih's defaults: no multi-line values (an indented line is
     * a line of its own), no inline comments, bare keys allowed, stop at the first error. */
    ini_allow_multiline = false;
    ini_allow_inline_comments = false;
    ini_allow_no_value = true;
    ini_stop_on_first_error = true;
    ini_max_line = INI_LINE_MAX;

    depth++;
    int rc = ini_parse_stream(read_line, &c, on_key, &c);
    depth--;
    fclose(c.f);
    free(c.line);
    if (c.err)
        return c.err;
    if (rc == -2)
        return fail("%s: out of memory", file);
    if (rc != 0)
        return fail("%s:%d: syntax error: expected [section], key = value or a comment", file, rc);
    if (section && !c.saw_section)
        return fail("%s: no [%s] section", file, section);
    if (!c.saw_section) /* as uWSGI: not an error (an include may hold only placeholders) */
        fprintf(stderr,
                "gyre: warning: %s has no [uwsgi] or [gyre] section: nothing taken from it\n",
                file);
    return NULL;
}

/* ---- the environment ----------------------------------------------------------------------- */

/* UWSGI_SOCKET_TIMEOUT -> socket-timeout (from after the prefix to end); NULL for a name with
 * characters no option has. */
static char *env_option_name(const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
    char *name = malloc(len + 1);
    if (!name)
        return NULL;
    for (size_t j = 0; j < len; j++) {
        unsigned char ch = (unsigned char)p[j];
        if (ch == '_') {
            name[j] = '-';
        } else if (isalnum(ch)) {
            name[j] = (char)tolower(ch);
        } else {
            free(name);
            return NULL;
        }
    }
    name[len] = '\0';
    return name;
}

void env_load(struct gy_config *cfg)
{
    option_setter set = cfg->set_option;
    /* UWSGI_ first, then GYRE_: for an option given both ways, gyre's own name has the last
     * word. A snapshot of the names, since nothing here should depend on environ staying put. */
    static const char *const prefixes[] = { "UWSGI_", "GYRE_" };
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **snap = calloc(n + 1, sizeof(*snap));
    if (!snap)
        return;
    for (size_t i = 0; i < n; i++)
        snap[i] = strdup(environ[i]);

    /* Every UWSGI_X/GYRE_X is a %(x) for .ini files, whatever the order of environ, even when
     * UWSGI_INI loads one before X is seen; one that is no option is only that, as in uWSGI. */
    char **names = calloc(n + 1, sizeof(*names));
    if (!names)
        return;
    for (size_t k = 0; k < 2; k++) {
        size_t plen = strlen(prefixes[k]);
        for (size_t i = 0; i < n; i++) {
            const char *var = snap[i];
            if (!var || strncmp(var, prefixes[k], plen) != 0)
                continue;
            const char *eq = strchr(var, '=');
            if (eq && eq > var + plen && (names[i] = env_option_name(var + plen, eq)))
                placeholder_add(names[i], eq + 1);
        }
    }
    for (size_t k = 0; k < 2; k++) {
        size_t plen = strlen(prefixes[k]);
        for (size_t i = 0; i < n; i++) {
            const char *var = snap[i];
            if (!names[i] || strncmp(var, prefixes[k], plen) != 0)
                continue;
            const char *eq = strchr(var, '=');
            const char *err = apply(set, cfg, names[i], eq + 1);
            if (!err || is_unknown_option(set, cfg, err))
                continue; /* not ours (GYRE_BIN, UWSGI_RELOADS...): ignored */
            fprintf(stderr, "gyre: %.*s=%s: %s\n", (int)(eq - var), var, eq + 1, err);
            exit(2);
        }
    }
    /* The UWSGI_/GYRE_ strings stay: options and placeholders point into them. */
    for (size_t i = 0; i < n; i++)
        if (!names[i])
            free(snap[i]);
    free(names);
    free(snap);
}
