/*
 * Where options come from: .ini files (uWSGI's format, read with libinih), UWSGI_<OPTION> and
 * GYRE_<OPTION> environment variables, and the command line (options.c hands its options here).
 * As in uWSGI, nothing is applied while the sources are read: every source adds entries (key,
 * value, where it was written) to ONE ordered list; config_expand() then replaces the %(name),
 * $(VAR) and @(FILE) references over the whole list, and options.c applies the entries in
 * order. So a %(name) may name a key set later or on the command line, a key that is no option
 * is a placeholder, and `strict` anywhere applies to every entry.
 *
 * .ini files, as uWSGI reads them:
 *   - the keys of the [uwsgi] and [gyre] sections are entries in file order (FILE:SECTION reads
 *     only SECTION, and ":SECTION" that section of the last file read); other sections are
 *     skipped; a key given twice is two entries (they add up where the option does);
 *   - "; ..." and "# ..." lines are comments; a value is kept whole, "a ; b" included (uWSGI
 *     does the same: numbers and flags ignore a trailing " ; comment", see options.c); a bare
 *     key is a flag set to true;
 *   - magic variables, replaced as the line is read: %d the file's directory with a trailing
 *     '/', %p its absolute path, %s its name, %n its name without the extension, %e the
 *     extension, %c the name of its directory, %o the path as given, %x the section asked for
 *     (FILE:SECTION), the same in upper case (%D %P %S %N %E %C %O %X) for the file named on the
 *     command line rather than the one being read, %v the current directory, %h the hostname,
 *     %k the number of CPUs, %t/%T the time in seconds/microseconds, %u %U %g %G the uid, user,
 *     gid and group, %V gyre's version, %% a '%';
 *   - references, replaced once every source is read: %(name) the value of the first entry of
 *     that key (an option or not; left as written when there is none, so that log formats keep
 *     their %(status)), %(a + b * 2) arithmetic on numbers and entries (+ - * /, left to right,
 *     spaces around each operator, a name that is no entry is 0), $(VAR) the environment
 *     variable VAR (left as written if unset, as uWSGI), @(FILE) the content of FILE without its last newline;
 *   - set-placeholder/set-ph NAME=VALUE is an entry that is never an option, set/-S NAME=VALUE
 *     one that is an option if NAME is one;
 *   - "ini = FILE[:SECTION]" (or uWSGI's "include = FILE") reads FILE there (nesting is
 *     limited);
 *   - uWSGI's configuration logic: if-env, if-not-env (VAR or VAR=VALUE), if-opt, if-not-opt
 *     (NAME or NAME=VALUE, among the entries so far), if-exists, if-not-exists, if-file,
 *     if-not-file, if-dir, if-not-dir, if-directory, if-hostname, if-not-hostname, if-reload,
 *     if-not-reload, if-plugin, if-not-plugin ... endif; for (words), for-glob, for-times N,
 *     for-readline FILE ... endfor, %(_) being the item (or what the condition matched). As in
 *     uWSGI blocks do not nest (an if/for inside one is an error), and end, endif, endfor,
 *     end-if or end-for end the one open.
 *
 * Every string is allocated here and never freed: the configuration lives as long as the
 * process.
 *
 * Depends on: no other server file (server/README)
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define INI_MAX_DEPTH 10
#define INI_LINE_MAX 8192 /* longest line accepted, newline included */
#define FOR_MAX_ITEMS 10000

extern char **environ;

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

/* A string that lives for the process: out of memory at start-up is fatal. */
static char *keep(char *s)
{
    if (!s) {
        fputs("gyre: out of memory reading the configuration\n", stderr);
        exit(1);
    }
    return s;
}

static FILE *open_stream(char **buf, size_t *len)
{
    FILE *m = open_memstream(buf, len);
    if (!m)
        keep(NULL);
    return m;
}

__attribute__((format(printf, 1, 2))) static char *keepf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return keep(n < 0 ? NULL : s);
}

/* ---- the entries ---------------------------------------------------------------------------- */

static struct config_entry *first, **last = &first;

struct config_entry *config_entries(void)
{
    return first;
}

void config_reset(void)
{
    first = NULL; /* the old entries stay allocated: options may still point into them */
    last = &first;
}

static void entry_add(const char *key, const char *value, const char *where,
                      enum config_origin origin, bool placeholder_only)
{
    struct config_entry *e = calloc(1, sizeof(*e));
    keep((char *)e);
    e->key = key;
    e->value = value;
    e->where = where;
    e->origin = origin;
    e->placeholder_only = placeholder_only;
    *last = e;
    last = &e->next;
}

static const struct config_entry *entry_find(const char *name, size_t len,
                                             const struct config_entry *self)
{
    for (const struct config_entry *e = first; e; e = e->next)
        if (e != self && strlen(e->key) == len && memcmp(e->key, name, len) == 0)
            return e;
    return NULL;
}

/* ---- configuration logic: if-* / for-* ... endif / endfor ------------------------------------- */

/* A condition or loop head, as uWSGI: it decides for each entry that follows until the end. */
typedef void (*logic_fn)(const char *arg, const char *key, const char *value, const char *where,
                         enum config_origin origin);
static logic_fn logic;
static const char *logic_arg;

static const char *add_one(const char *key, const char *value, const char *where,
                           enum config_origin origin);

/* value with every %(_) replaced by item. */
static char *subst_item(const char *value, const char *item)
{
    if (!value)
        return NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_stream(&out, &len);
    for (const char *p = value; *p; p++) {
        if (strncmp(p, "%(_)", 4) == 0) {
            fputs(item, m);
            p += 3;
        } else {
            fputc(*p, m);
        }
    }
    fclose(m);
    return keep(out);
}

static const char *logic_err;

static void logic_emit(const char *item, const char *key, const char *value, const char *where,
                       enum config_origin origin)
{
    const char *err = add_one(key, subst_item(value, item), where, origin);
    if (err && !logic_err)
        logic_err = err;
}

/* "NAME" or "NAME=VALUE": is NAME set (to VALUE)? *found is what it is set to. */
static bool name_matches(const char *arg, const char *(*lookup)(const char *), const char **found)
{
    const char *eq = strchr(arg, '=');
    char *name = keep(eq ? strndup(arg, (size_t)(eq - arg)) : strdup(arg));
    const char *v = lookup(name);
    free(name);
    *found = v ? v : "";
    return v && (!eq || strcmp(v, eq + 1) == 0);
}

static const char *entry_value(const char *name)
{
    const struct config_entry *e = entry_find(name, strlen(name), NULL);
    return e ? (e->value ? e->value : "true") : NULL;
}

static bool is_type(const char *path, mode_t type)
{
    struct stat st;
    return stat(path, &st) == 0 && (type == 0 || (st.st_mode & S_IFMT) == type);
}

static bool hostname_is(const char *name)
{
    char host[256];
    if (gethostname(host, sizeof(host)) < 0)
        return false;
    host[sizeof(host) - 1] = '\0';
    return strcmp(host, name) == 0;
}

/* The conditions: each says whether the entries of its block apply, and what %(_) is. */
static bool cond_env(const char *arg, const char **item)
{
    return name_matches(arg, (const char *(*)(const char *))getenv, item);
}
static bool cond_opt(const char *arg, const char **item)
{
    return name_matches(arg, entry_value, item);
}
static bool cond_exists(const char *arg, const char **item)
{
    *item = arg;
    return is_type(arg, 0);
}
static bool cond_file(const char *arg, const char **item)
{
    *item = arg;
    return is_type(arg, S_IFREG);
}
static bool cond_dir(const char *arg, const char **item)
{
    *item = arg;
    return is_type(arg, S_IFDIR);
}
static bool cond_hostname(const char *arg, const char **item)
{
    *item = arg;
    return hostname_is(arg);
}
static bool cond_reload(const char *arg, const char **item)
{
    *item = arg; /* a reload re-forks workers, it never reads the configuration again */
    return false;
}
static bool cond_plugin(const char *arg, const char **item)
{
    *item = arg;
    return config_plugin_is_embedded(arg);
}

static const struct {
    const char *name;
    bool (*cond)(const char *arg, const char **item);
} CONDITIONS[] = {
    { "env", cond_env },           { "opt", cond_opt },       { "exists", cond_exists },
    { "file", cond_file },         { "dir", cond_dir },       { "directory", cond_dir },
    { "hostname", cond_hostname }, { "reload", cond_reload }, { "plugin", cond_plugin },
};

static bool (*if_cond)(const char *, const char **);
static bool if_negated;

static void logic_if(const char *arg, const char *key, const char *value, const char *where,
                     enum config_origin origin)
{
    const char *item = "";
    if (if_cond(arg, &item) != if_negated)
        logic_emit(item, key, value, where, origin);
}

/* The loops: call emit for each item of arg. */
static void logic_for(const char *arg, const char *key, const char *value, const char *where,
                      enum config_origin origin)
{
    char *copy = keep(strdup(arg)), *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
        logic_emit(w, key, value, where, origin);
    free(copy);
}

static void logic_for_glob(const char *arg, const char *key, const char *value, const char *where,
                           enum config_origin origin)
{
    glob_t g;
    if (glob(arg, 0, NULL, &g) != 0)
        return; /* no match: no entry, as uWSGI */
    for (size_t i = 0; i < g.gl_pathc; i++)
        logic_emit(g.gl_pathv[i], key, value, where, origin);
    globfree(&g);
}

static void logic_for_times(const char *arg, const char *key, const char *value, const char *where,
                            enum config_origin origin)
{
    long n = strtol(arg, NULL, 10);
    if (n > FOR_MAX_ITEMS) {
        if (!logic_err)
            logic_err = fail("%s: for-times = %s: at most %d", where, arg, FOR_MAX_ITEMS);
        return;
    }
    for (long i = 1; i <= n; i++) {
        char num[32];
        snprintf(num, sizeof(num), "%ld", i);
        logic_emit(num, key, value, where, origin);
    }
}

static void logic_for_readline(const char *arg, const char *key, const char *value,
                               const char *where, enum config_origin origin)
{
    FILE *f = fopen(arg, "re");
    if (!f) {
        if (!logic_err)
            logic_err = fail("%s: for-readline = %s: %s", where, arg, strerror(errno));
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0)
            logic_emit(line, key, value, where, origin);
    }
    free(line);
    fclose(f);
}

static bool is_logic_end(const char *key)
{
    return !strcmp(key, "end") || !strcmp(key, "endif") || !strcmp(key, "end-if") ||
           !strcmp(key, "endfor") || !strcmp(key, "end-for");
}

/* key starts a block: set logic. */
static bool logic_start(const char *key)
{
    static const struct {
        const char *name;
        logic_fn fn;
    } loops[] = { { "for", logic_for },
                  { "for-glob", logic_for_glob },
                  { "for-times", logic_for_times },
                  { "for-readline", logic_for_readline } };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
        if (strcmp(key, loops[i].name) == 0) {
            logic = loops[i].fn;
            return true;
        }
    }
    if (strncmp(key, "if-", 3) != 0)
        return false;
    const char *what = key + 3;
    bool neg = strncmp(what, "not-", 4) == 0;
    if (neg)
        what += 4;
    for (size_t i = 0; i < sizeof(CONDITIONS) / sizeof(CONDITIONS[0]); i++) {
        if (strcmp(what, CONDITIONS[i].name) == 0) {
            if_cond = CONDITIONS[i].cond;
            if_negated = neg;
            logic = logic_if;
            return true;
        }
    }
    return false;
}

/* ---- adding entries ------------------------------------------------------------------------- */

/* "NAME=VALUE" (spaces around either allowed) to an entry. */
static const char *add_named(const char *v, const char *where, enum config_origin origin,
                             bool placeholder_only)
{
    const char *eq = v ? strchr(v, '=') : NULL;
    const char *ne = eq;
    while (ne && ne > v && isspace((unsigned char)ne[-1]))
        ne--;
    if (!eq || ne == v)
        return fail("%s: expected NAME=VALUE", where);
    const char *val = eq + 1;
    while (isspace((unsigned char)*val))
        val++;
    entry_add(keep(strndup(v, (size_t)(ne - v))), keep(strdup(val)), where, origin,
              placeholder_only);
    return NULL;
}

/* One entry, the configuration logic aside: "ini", "include" and the placeholder setters are
 * read here. */
static const char *add_one(const char *key, const char *value, const char *where,
                           enum config_origin origin)
{
    if (strcmp(key, "ini") == 0 || strcmp(key, "include") == 0) {
        if (!value || !*value)
            return fail("%s: %s: missing file name", where, key);
        const char *err = config_add_file(value, where);
        if (!err || origin == CONFIG_FROM_FILE)
            return err; /* a file's own messages say where it was included from */
        /* UWSGI_INI=x.ini or --ini x.ini: the message says which. */
        char inner[sizeof(errbuf)];
        snprintf(inner, sizeof(inner), "%s", err);
        if (origin == CONFIG_FROM_CLI)
            return fail("%s: %s", where, inner);
        return fail("%s=%s: %s", where, value, inner);
    }
    if (strcmp(key, "set-placeholder") == 0 || strcmp(key, "set-ph") == 0)
        return add_named(value, where, origin, true);
    if (strcmp(key, "set") == 0)
        return add_named(value, where, origin, false);
    entry_add(key, value, where, origin, false);
    return NULL;
}

const char *config_add(const char *key, const char *value, const char *where,
                       enum config_origin origin)
{
    if (is_logic_end(key)) {
        logic = NULL;
        return NULL;
    }
    if (logic && logic_start(key)) {
        logic = NULL;
        return fail("%s: %s inside an if/for block: blocks do not nest (as in uWSGI)", where, key);
    }
    if (logic) {
        logic_err = NULL;
        logic(logic_arg, key, value, where, origin);
        return logic_err;
    }
    if (logic_start(key)) {
        if (!value || !*value) {
            logic = NULL;
            return fail("%s: %s: missing value", where, key);
        }
        logic_arg = value;
        return NULL;
    }
    return add_one(key, value, where, origin);
}

/* ---- .ini files ----------------------------------------------------------------------------- */

struct ini_file {
    const char *given;   /* the path as given: what messages name */
    const char *abspath; /* realpath()'s */
    const char *section; /* the one section asked for, or NULL for [uwsgi] and [gyre] */
    const char *from;    /* where it was included from ("FILE:LINE"), or NULL */
    FILE *f;
    char *line;
    size_t line_cap;
    int lineno;
    const char *err;
    bool saw_section;
};

static int depth;
static char *last_file;            /* for "ini = :section" */
static const struct ini_file *top; /* the file named on the command line: %O %P ... */

/* libinih's fgets-like reader, on our side so that we know the line number and can tell a line
 * longer than the parser's buffer from two lines. */
static char *read_line(char *str, int num, void *stream)
{
    struct ini_file *c = stream;
    ssize_t n = getline(&c->line, &c->line_cap, c->f);
    if (n < 0)
        return NULL;
    c->lineno++;
    if (n >= num) {
        /* Stop here (as at the end of the file); config_add_file() reports it. */
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

/* The magic variable of letter ch (lower case: f, the file being read; upper case: the file
 * named on the command line) onto m; false when ch is no magic variable. */
static bool put_magic(FILE *m, const struct ini_file *c, char ch)
{
    const struct ini_file *f = isupper((unsigned char)ch) && top ? top : c;
    const char *abs = f->abspath;
    const char *file = base_name(abs);
    size_t dir_len = (size_t)(file - abs); /* with its trailing '/' */
    const char *dot = strrchr(file, '.');
    char buf[PATH_MAX];
    struct timeval tv;
    switch (ch) {
    case '%':
        fputc('%', m);
        return true;
    case 'd':
    case 'D':
        fwrite(abs, 1, dir_len, m);
        return true;
    case 'p':
    case 'P':
        fputs(abs, m);
        return true;
    case 's':
    case 'S':
        fputs(file, m);
        return true;
    case 'n':
    case 'N':
        fwrite(file, 1, dot && dot != file ? (size_t)(dot - file) : strlen(file), m);
        return true;
    case 'e':
    case 'E':
        fputs(dot && dot != file ? dot + 1 : "", m);
        return true;
    case 'c':
    case 'C': {
        /* The directory's own name: between the last two slashes of abs. */
        size_t end = dir_len > 1 ? dir_len - 1 : dir_len, start = end;
        while (start > 0 && abs[start - 1] != '/')
            start--;
        fwrite(abs + start, 1, end - start, m);
        return true;
    }
    case 'o':
    case 'O':
        fputs(f->given, m);
        return true;
    case 'x':
    case 'X':
        fputs(f->section ? f->section : "", m);
        return true;
    case 'v':
        fputs(getcwd(buf, sizeof(buf)) ? buf : "", m);
        return true;
    case 'h':
        if (gethostname(buf, sizeof(buf)) < 0)
            buf[0] = '\0';
        buf[sizeof(buf) - 1] = '\0';
        fputs(buf, m);
        return true;
    case 'k':
        fprintf(m, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
        return true;
    case 't':
    case 'T':
        gettimeofday(&tv, NULL);
        if (ch == 't')
            fprintf(m, "%lld", (long long)tv.tv_sec);
        else
            fprintf(m, "%lld", (long long)tv.tv_sec * 1000000 + tv.tv_usec);
        return true;
    case 'u':
        fprintf(m, "%u", (unsigned)getuid());
        return true;
    case 'g':
        fprintf(m, "%u", (unsigned)getgid());
        return true;
    case 'U': {
        const struct passwd *pw = getpwuid(getuid());
        fputs(pw ? pw->pw_name : "", m);
        return true;
    }
    case 'G': {
        const struct group *gr = getgrgid(getgid());
        fputs(gr ? gr->gr_name : "", m);
        return true;
    }
    case 'V':
        fputs(GYRE_VERSION, m);
        return true;
    default:
        return false;
    }
}

/* The magic variables of one value into a new string; %(...) $(...) @(...) are kept for
 * config_expand(). */
static char *expand_magic(const struct ini_file *c, const char *v)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *m = open_memstream(&out, &out_len);
    if (!m)
        return NULL;
    for (const char *p = v; *p; p++) {
        if (p[0] == '%' && p[1] != '\0' && p[1] != '(' && put_magic(m, c, p[1])) {
            p++;
            continue;
        }
        fputc(*p, m); /* not a magic variable: both characters stay */
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
    char *key = keep(strdup(name));
    char *val = value ? keep(expand_magic(c, value)) : NULL;
    const char *where = c->from ? keepf("%s:%d (included from %s)", c->given, c->lineno, c->from)
                                : keepf("%s:%d", c->given, c->lineno);
    const char *err = config_add(key, val, where, CONFIG_FROM_FILE);
    if (err) {
        c->err = err;
        return 0;
    }
    return 1;
}

/* FILE:SECTION and :SECTION (uWSGI's), unless a file is really named so: the file to open into
 * *file, the section or NULL into *section. */
static const char *split_section(const char *path, char **file, const char **section)
{
    *section = NULL;
    *file = keep(strdup(path));
    char *colon = strrchr(*file, ':');
    if (!colon || strchr(colon, '/') || access(*file, F_OK) == 0)
        return NULL;
    *colon = '\0';
    if (colon[1])
        *section = colon + 1;
    if ((*file)[0] == '\0') {
        if (!last_file)
            return fail("%s: no .ini file read before to take [%s] from", path,
                        *section ? *section : "");
        *file = keep(strdup(last_file));
    }
    return NULL;
}

const char *config_add_file(const char *path, const char *from)
{
    char *file;
    const char *section;
    const char *err = split_section(path, &file, &section);
    if (err)
        return err;
    if (depth >= INI_MAX_DEPTH)
        return fail("%s: .ini files nested more than %d deep (does one include itself?)", file,
                    INI_MAX_DEPTH);
    const char *in = from && depth > 0 ? keepf(" (included from %s)", from) : "";

    struct ini_file c = { .given = file, .section = section, .from = depth > 0 ? from : NULL };
    c.f = fopen(file, "re");
    if (!c.f)
        return fail("cannot open %s: %s%s", file, strerror(errno), in);
    char *abs = realpath(file, NULL);
    c.abspath = abs ? abs : file;
    free(last_file);
    last_file = keep(strdup(file));
    if (depth == 0)
        top = &c;

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
    if (depth == 0) {
        top = NULL;
        logic = NULL; /* a block ends with the file named on the command line */
    }
    if (c.err)
        return c.err;
    if (rc == -2)
        return fail("%s: out of memory", file);
    if (rc != 0)
        return fail("%s:%d: syntax error: expected [section], key = value or a comment%s", file, rc,
                    in);
    if (section && !c.saw_section)
        return fail("%s: no [%s] section%s", file, section, in);
    if (!c.saw_section) /* as uWSGI: not an error (an include may hold only placeholders) */
        fprintf(stderr,
                "gyre: warning: %s has no [uwsgi] or [gyre] section: nothing taken from it\n",
                file);
    return NULL;
}

/* ---- the environment ----------------------------------------------------------------------- */

/* UWSGI_SOCKET_TIMEOUT -> socket-timeout (from after the prefix to end), as uWSGI maps them:
 * '_' to '-', letters to lower case, anything else as it is. */
static char *env_option_name(const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
    char *name = keep(malloc(len + 1));
    for (size_t j = 0; j < len; j++) {
        unsigned char ch = (unsigned char)p[j];
        name[j] = ch == '_' ? '-' : (char)tolower(ch);
    }
    name[len] = '\0';
    return name;
}

const char *config_add_env(void)
{
    /* UWSGI_ first, then GYRE_: for an option given both ways, gyre's own name has the last
     * word. Copies of the strings, since nothing here should depend on environ staying put.
     * Through config_add, as uWSGI: UWSGI_INI=app.ini reads app.ini. */
    static const struct {
        const char *prefix;
        enum config_origin origin;
    } sources[] = { { "UWSGI_", CONFIG_FROM_UWSGI_ENV }, { "GYRE_", CONFIG_FROM_GYRE_ENV } };
    for (size_t k = 0; k < sizeof(sources) / sizeof(sources[0]); k++) {
        size_t plen = strlen(sources[k].prefix);
        for (char **v = environ; v && *v; v++) {
            const char *eq = strchr(*v, '=');
            if (strncmp(*v, sources[k].prefix, plen) != 0 || !eq || eq == *v + plen)
                continue;
            const char *err = config_add(env_option_name(*v + plen, eq), keep(strdup(eq + 1)),
                                         keep(strndup(*v, (size_t)(eq - *v))), sources[k].origin);
            if (err)
                return err;
        }
    }
    logic = NULL; /* an if/for block does not run on from the environment */
    return NULL;
}

/* ---- plugins ------------------------------------------------------------------------------- */

/* uWSGI's plugins whose job gyre does itself, built in: --plugin NAME is a no-op for these
 * (and if-plugin is true), a warning for any other. "python3" is uWSGI's Python plugin, and
 * tornado/greenlet its loop and suspend engine; http and corerouter the HTTP router (--http);
 * logfile the --logto file; router_static --static-map. */
static const char *const EMBEDDED_PLUGINS[] = {
    "python",        "python3",          "python311",
    "tornado",       "tornado_python3",  "tornado_python311",
    "greenlet",      "greenlet_python3", "greenlet_python311",
    "http",          "corerouter",       "logfile",
    "router_static",
};

bool config_plugin_is_embedded(const char *name)
{
    /* "python3", "python3_plugin.so" or "/usr/lib/uwsgi/plugins/python3_plugin.so" */
    const char *base = base_name(name);
    size_t len = strlen(base);
    static const char suffix[] = "_plugin.so";
    if (len > sizeof(suffix) - 1 && strcmp(base + len - (sizeof(suffix) - 1), suffix) == 0)
        len -= sizeof(suffix) - 1;
    for (size_t i = 0; i < sizeof(EMBEDDED_PLUGINS) / sizeof(EMBEDDED_PLUGINS[0]); i++)
        if (strlen(EMBEDDED_PLUGINS[i]) == len && strncmp(EMBEDDED_PLUGINS[i], base, len) == 0)
            return true;
    return false;
}

/* ---- references: %(name), %(a + b), $(VAR), @(FILE) --------------------------------------- */

/* An operand of %(...) arithmetic: an entry's value, else the token itself, read as uWSGI
 * reads both, with atoi: the leading number, and 0 when there is none ("(2" is 0, "2)" is 2). */
static long operand(const char *tok, size_t len, const struct config_entry *self)
{
    const struct config_entry *e = entry_find(tok, len, self);
    if (e)
        return e->value ? strtol(e->value, NULL, 10) : 0;
    char num[32];
    if (len >= sizeof(num))
        len = sizeof(num) - 1;
    memcpy(num, tok, len);
    num[len] = '\0';
    return strtol(num, NULL, 10);
}

/* "a + b * c" (spaces around the operators, left to right) into *out; false when s is not
 * arithmetic. */
static bool arithmetic(const char *s, size_t len, const struct config_entry *self, long *out)
{
    const char *p = s, *end = s + len;
    long acc = 0;
    char op = '+';
    bool want_operand = true;
    int n = 0;
    while (p < end) {
        const char *tok = p;
        while (p < end && *p != ' ')
            p++;
        size_t tlen = (size_t)(p - tok);
        while (p < end && *p == ' ')
            p++;
        if (tlen == 0)
            return false;
        if (want_operand) {
            long v = operand(tok, tlen, self);
            switch (op) {
            case '+':
                acc += v;
                break;
            case '-':
                acc -= v;
                break;
            case '*':
                acc *= v;
                break;
            case '/':
                acc = v ? acc / v : 0;
                break;
            }
            n++;
        } else {
            if (tlen != 1 || !strchr("+-*/", tok[0]))
                return false;
            op = tok[0];
        }
        want_operand = !want_operand;
    }
    *out = acc;
    return n >= 2 && !want_operand;
}

/* @(FILE)'s content without its trailing newlines into m. */
static const char *put_file(FILE *m, const char *path, const struct config_entry *e)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return fail("%s: @(%s): %s", e->where, path, strerror(errno));
    char buf[4096];
    char *content = NULL;
    size_t len = 0;
    FILE *c = open_stream(&content, &len);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, c);
    fclose(f);
    fclose(c);
    while (len > 0 && (content[len - 1] == '\n' || content[len - 1] == '\r'))
        len--;
    fwrite(content, 1, len, m);
    free(content);
    return NULL;
}

/* One reference (sigil '%', '$' or '@', name of len bytes) onto m; false to leave it as
 * written. */
static bool put_reference(FILE *m, char sigil, const char *name, size_t len,
                          const struct config_entry *e, const char **err)
{
    char *s = keep(strndup(name, len));
    bool done = true;
    if (sigil == '$') {
        const char *v = getenv(s);
        if (v)
            fputs(v, m);
        else
            done = false; /* unset: left as written, as uWSGI does */
    } else if (sigil == '@') {
        *err = put_file(m, s, e);
    } else {
        long v;
        const struct config_entry *ref = entry_find(name, len, e);
        if (ref)
            fputs(ref->value ? ref->value : "true", m);
        else if (memchr(name, ' ', len) && arithmetic(name, len, e, &v))
            fprintf(m, "%ld", v);
        else
            done = false; /* no such entry: left as written (log formats' %(status)) */
    }
    free(s);
    return done;
}

/* The ')' closing the '(' at open, nested ones counted as uWSGI counts them (%((a * 2) + 1)
 * is one reference); NULL when it is not closed. */
static const char *matching_paren(const char *open)
{
    int depth = 0;
    for (const char *p = open; *p; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p;
    }
    return NULL;
}

/* The references of e->value with the one sigil replaced. */
static const char *expand_pass(struct config_entry *e, char sigil)
{
    if (!e->value || !strchr(e->value, sigil))
        return NULL;
    char *out = NULL;
    size_t out_len = 0;
    FILE *m = open_stream(&out, &out_len);
    const char *err = NULL;
    for (const char *p = e->value; *p; p++) {
        const char *close = p[0] == sigil && p[1] == '(' ? matching_paren(p + 1) : NULL;
        if (close && put_reference(m, sigil, p + 2, (size_t)(close - (p + 2)), e, &err)) {
            p = close;
            continue;
        }
        fputc(*p, m);
    }
    fclose(m);
    e->value = keep(out);
    return err;
}

const char *config_expand(void)
{
    /* uWSGI's order: every %(...) of every entry, then every $(...), then every @(...). */
    static const char sigils[] = { '%', '$', '@' };
    for (size_t s = 0; s < sizeof(sigils); s++) {
        for (struct config_entry *e = first; e; e = e->next) {
            if (e->expanded)
                continue;
            const char *err = expand_pass(e, sigils[s]);
            if (err)
                return err;
        }
    }
    for (struct config_entry *e = first; e; e = e->next)
        e->expanded = true;
    return NULL;
}
