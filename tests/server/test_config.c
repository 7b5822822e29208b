/*
 * Unit tests of the configuration layer: options.c (every value form an option takes) and ini.c
 * (uWSGI's .ini format: sections, substitutions, includes, bad lines) and the environment. Pure C: no
 * Python, no server; the .ini files are written to a temporary directory.
 */
#include "config.h"
#include "testlib.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The configuration lives as long as the process: ini.c never frees the strings it hands to
 * options_set (by design, see its header), so LeakSanitizer's report would be all noise. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

static char tmpdir[] = "/tmp/gyre-test-config.XXXXXX";

/* A config as options_parse leaves it before the first option: its defaults. */
static struct gy_config fresh(void)
{
    struct gy_config cfg;
    char *argv[] = { "gyre", "--socket", "/tmp/x.sock", "--wsgi-file", "app.py", NULL };
    options_parse(&cfg, 5, argv);
    cfg.nsockets = 0;
    cfg.wsgi_file = NULL;
    return cfg;
}

/* What --ini FILE does: read the file's entries, then apply those not applied yet. */
static const char *load(struct gy_config *c, const char *path)
{
    int status;
    const char *err = config_add_file(path, NULL);
    return err ? err : options_apply(c, &status);
}

/* The same, with the exit status options_apply asks for (0 when it succeeds). */
static int load_status(struct gy_config *c, const char *path, const char **err)
{
    int status;
    *err = config_add_file(path, NULL);
    if (*err)
        return 2;
    *err = options_apply(c, &status);
    return *err ? status : 0;
}

/* Write text to tmpdir/name; returns the path (static buffer, one at a time). */
static const char *write_file(const char *name, const char *text)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        abort();
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* ---- options_set: value forms ---------------------------------------------------------------- */

TEST(defaults_are_uwsgis)
{
    struct gy_config c = fresh();
    CHECK_EQ_INT(c.cores, 1);
    CHECK_EQ_INT(c.buffer_size, 4096);
    CHECK_EQ_INT(c.listen_backlog, 1024);
    CHECK_EQ_INT(c.chmod_socket, -1);
    CHECK_EQ_INT(c.processes, 1);
    CHECK_EQ_STR(c.callable, "application");
    CHECK(c.socket_timeout == 30);
}

TEST(unknown_option_is_an_error)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "no-such-option", "1") != NULL);
    CHECK(options_set(&c, "", NULL) != NULL);
}

TEST(numbers_are_whole_and_in_range)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "tornado", "100") == NULL);
    CHECK_EQ_INT(c.cores, 100);
    CHECK(options_set(&c, "async", "7") == NULL);
    CHECK_EQ_INT(c.cores, 7);
    static const char *const bad[] = { "", "0x10", "10k", "-1", "1.5", "99999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TEST_CONTEXT("--tornado %s", bad[i]);
        CHECK(options_set(&c, "tornado", bad[i]) != NULL);
    }
    CHECK(options_set(&c, "processes", "0") != NULL);
    CHECK(options_set(&c, "processes", "4") == NULL);
    CHECK_EQ_INT(c.processes, 4);
}

TEST(buffer_size_takes_what_real_configs_give_up_to_a_bound)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "buffer-size", "32768") == NULL);
    CHECK_EQ_INT(c.buffer_size, 32768);
    CHECK(options_set(&c, "buffer-size", "65536  # a comment") == NULL);
    CHECK_EQ_INT(c.buffer_size, 65536);
    CHECK(options_set(&c, "buffer-size", "1048576") == NULL);
    CHECK(options_set(&c, "buffer-size", "1048577") != NULL);
    CHECK(options_set(&c, "buffer-size", "63") != NULL);
}

TEST(a_yes_no_word_where_a_number_is_due_is_0_as_uwsgis_atoi)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "max-requests", "true") == NULL);
    CHECK_EQ_INT(c.max_requests, 0);
    /* ... but not where 0 is out of range: no silent 0 workers. */
    CHECK(options_set(&c, "processes", "true") != NULL);
    CHECK(options_set(&c, "processes", "truely") != NULL);
}

TEST(seconds_take_fractions_and_refuse_the_rest)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "socket-timeout", "2.5") == NULL);
    CHECK(c.socket_timeout == 2.5);
    CHECK(options_set(&c, "harakiri", "0") == NULL);
    CHECK(c.harakiri == 0);
    CHECK(options_set(&c, "http-timeout", "3600000") == NULL); /* a real config's */
    CHECK(c.socket_timeout == 3600000);
    static const char *const bad[] = { "", "-1", "nan", "inf", "5s", "1e10" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TEST_CONTEXT("--harakiri %s", bad[i]);
        CHECK(options_set(&c, "harakiri", bad[i]) != NULL);
    }
}

TEST(flags_take_true_and_false_words)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "master", "false") == NULL);
    CHECK(!c.master);
    CHECK(options_set(&c, "master", "0") == NULL);
    CHECK(!c.master);
    CHECK(options_set(&c, "master", "yes") == NULL);
    CHECK(c.master);
    c.master = false;
    CHECK(options_set(&c, "master", NULL) == NULL);
    CHECK(c.master);
    CHECK(options_set(&c, "master", "maybe") != NULL);
}

TEST(flag_words_in_any_case_with_a_trailing_comment)
{
    static const char *const on[] = {
        "True", "TRUE", "true", "Yes", "ON", "on", "1", "", "true ; a comment", "True # another"
    };
    static const char *const off[] = { "False", "FALSE", "No", "OFF", "0", "false ; not now" };
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        TEST_CONTEXT("master = %s", on[i]);
        struct gy_config c = fresh();
        CHECK(options_set(&c, "master", on[i]) == NULL);
        CHECK(c.master);
    }
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        TEST_CONTEXT("master = %s", off[i]);
        struct gy_config c = fresh();
        CHECK(options_set(&c, "master", off[i]) == NULL);
        CHECK(!c.master);
    }
    struct gy_config c = fresh();
    CHECK(options_set(&c, "master", "truex") != NULL);
    CHECK(options_set(&c, "master", "true;x") != NULL);
}

TEST(numbers_take_a_trailing_comment_as_uwsgis_atoi_does)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "processes", "4 ; four workers") == NULL);
    CHECK_EQ_INT(c.processes, 4);
    CHECK(options_set(&c, "processes", "3\t# three") == NULL);
    CHECK_EQ_INT(c.processes, 3);
    CHECK(options_set(&c, "processes", "5   ") == NULL);
    CHECK_EQ_INT(c.processes, 5);
    CHECK(options_set(&c, "harakiri", "2.5 ; seconds") == NULL);
    CHECK(c.harakiri == 2.5);
    CHECK(options_set(&c, "chmod-socket", "660 ; rw for the group") == NULL);
    CHECK_EQ_INT(c.chmod_socket, 0660);
    /* Not a comment: no blank before it, or words that are no comment. */
    CHECK(options_set(&c, "processes", "4;x") != NULL);
    CHECK(options_set(&c, "processes", "4 workers") != NULL);
    CHECK(options_set(&c, "processes", "; 4") != NULL);
}

TEST(a_value_is_required_where_the_option_takes_one)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "socket", NULL) != NULL);
    CHECK(options_set(&c, "socket", "") != NULL);
}

TEST(sockets_add_up_with_their_protocol)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "socket", "/run/a.sock") == NULL);
    CHECK(options_set(&c, "fastcgi-socket", "127.0.0.1:9000") == NULL);
    CHECK(options_set(&c, "http-socket", ":8080") == NULL);
    CHECK(options_set(&c, "uwsgi-socket", "/run/b.sock") == NULL);
    if (!CHECK_EQ_INT(c.nsockets, 4))
        return;
    CHECK_EQ_STR(c.sockets[0].addr, "/run/a.sock");
    CHECK_EQ_INT(c.sockets[0].proto, GY_PROTO_UWSGI);
    CHECK_EQ_INT(c.sockets[1].proto, GY_PROTO_FASTCGI);
    CHECK_EQ_INT(c.sockets[2].proto, GY_PROTO_HTTP);
    CHECK_EQ_INT(c.sockets[3].proto, GY_PROTO_UWSGI);
    CHECK(options_set(&c, "socket", "127.0.0.1:99999") != NULL);
    CHECK(options_set(&c, "socket", "127.0.0.1:port") != NULL);
}

TEST(chmod_socket_is_octal_and_666_when_bare)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "chmod-socket", NULL) == NULL);
    CHECK_EQ_INT(c.chmod_socket, 0666);
    CHECK(options_set(&c, "chmod-socket", "660") == NULL);
    CHECK_EQ_INT(c.chmod_socket, 0660);
    CHECK(options_set(&c, "chmod-socket", "8") != NULL);
    CHECK(options_set(&c, "chmod-socket", "rw") != NULL);
}

TEST(lists_add_up)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "pythonpath", "/a") == NULL);
    CHECK(options_set(&c, "pp", "/b") == NULL);
    CHECK(options_set(&c, "python-path", "/c") == NULL);
    CHECK_EQ_INT(c.npythonpath, 3);
    CHECK(options_set(&c, "env", "A=1") == NULL);
    CHECK(options_set(&c, "env", "B=") == NULL);
    CHECK_EQ_INT(c.nenv, 2);
}

/* ---- .ini files ------------------------------------------------------------------------------ */

TEST(ini_applies_uwsgi_and_gyre_sections_in_order)
{
    struct gy_config c = fresh();
    const char *p = write_file("order.ini", "[uwsgi]\n"
                                            "socket = /run/one.sock\n"
                                            "tornado = 3\n"
                                            "[other]\n"
                                            "socket = /never.sock\n"
                                            "[gyre]\n"
                                            "tornado = 5\n"
                                            "; a comment\n"
                                            "# another\n"
                                            "master\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_INT(c.nsockets, 1);
    CHECK_EQ_INT(c.cores, 5);
    CHECK(c.master);
}

TEST(ini_values_keep_semicolons_no_inline_comments)
{
    struct gy_config c = fresh();
    const char *p = write_file("semi.ini", "[uwsgi]\nlog-format = a;b ; c\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_STR(c.log_format, "a;b ; c");
}

TEST(ini_magic_variables)
{
    struct gy_config c = fresh();
    const char *p = write_file("magic.ini", "[uwsgi]\n"
                                            "chdir = %d\n"
                                            "wsgi-file = %n.py\n"
                                            "pidfile = %s\n"
                                            "logto = %p\n"
                                            "log-format = 100%% %x %y %\n");
    CHECK(load(&c, p) == NULL);
    char dir[PATH_MAX + 1];
    snprintf(dir, sizeof(dir), "%s/", tmpdir);
    CHECK_EQ_STR(c.chdir, dir);
    CHECK_EQ_STR(c.wsgi_file, "magic.py");
    CHECK_EQ_STR(c.pidfile, "magic.ini");
    CHECK_EQ_STR(c.logto, p);
    /* %x: the section asked for (none); unknown magic letters stay as written */
    CHECK_EQ_STR(c.log_format, "100%  %y %");
}

TEST(ini_references_options_placeholders_and_environment)
{
    struct gy_config c = fresh();
    setenv("GYRE_TEST_DIR", "/srv/app", 1);
    unsetenv("GYRE_TEST_UNSET");
    const char *p = write_file("refs.ini", "[uwsgi]\n"
                                           "set-placeholder = base = /opt/site\n"
                                           "set-ph = n=7\n"
                                           "tornado = %(n)\n"
                                           "chdir = %(base)/src\n"
                                           "pidfile = $(GYRE_TEST_DIR)/pid\n"
                                           "logto = [$(GYRE_TEST_UNSET)]\n"
                                           "log-format = %(status) %(chdir)\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_INT(c.cores, 7);
    CHECK_EQ_STR(c.chdir, "/opt/site/src");
    CHECK_EQ_STR(c.pidfile, "/srv/app/pid");
    CHECK_EQ_STR(c.logto, "[$(GYRE_TEST_UNSET)]"); /* unset: left as written, as uWSGI */
    /* %(status) is no option: it stays for the log format; %(chdir) is the option set above. */
    CHECK_EQ_STR(c.log_format, "%(status) /opt/site/src");
}

TEST(ini_include_and_section_selection)
{
    struct gy_config c = fresh();
    write_file("inc-base.ini", "[uwsgi]\ntornado = 9\n[prod]\nprocesses = 3\n");
    char inc[PATH_MAX + 64];
    snprintf(inc, sizeof(inc), "[uwsgi]\nini = %s/inc-base.ini\nini = %s/inc-base.ini:prod\n",
             tmpdir, tmpdir);
    const char *p = write_file("inc-top.ini", inc);
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_INT(c.cores, 9);
    CHECK_EQ_INT(c.processes, 3);
    /* uWSGI's include = FILE reads it there too. */
    c = fresh();
    snprintf(inc, sizeof(inc), "[uwsgi]\ninclude = %s/inc-base.ini\n", tmpdir);
    p = write_file("inc-include.ini", inc);
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_INT(c.cores, 9);
}

TEST(ini_errors_name_file_line_and_key)
{
    struct gy_config c = fresh();
    const char *p = write_file("badval.ini", "[uwsgi]\ntornado = lots\n");
    const char *err = load(&c, p);
    if (CHECK(err != NULL))
        CHECK(strstr(err, "badval.ini:2: tornado = lots") != NULL);
    err = load(&c, "/nonexistent/dir/x.ini");
    CHECK(err != NULL);
}

TEST(ini_error_in_an_include_says_where_it_was_included)
{
    struct gy_config c = fresh();
    write_file("inner-bad.ini", "[uwsgi]\ntornado = lots\n");
    char top[PATH_MAX + 64];
    snprintf(top, sizeof(top), "[uwsgi]\n\nini = %s/inner-bad.ini\n", tmpdir);
    const char *p = write_file("outer.ini", top);
    const char *err = load(&c, p);
    if (CHECK(err != NULL)) {
        CHECK(strstr(err, "inner-bad.ini:2") != NULL);
        CHECK(strstr(err, "included from") != NULL && strstr(err, "outer.ini:3") != NULL);
    }
}

/* ---- unknown keys, uWSGI's options gyre lacks, strict mode ------------------------------------ */

TEST(unknown_ini_key_is_a_placeholder_not_an_error)
{
    struct gy_config c = fresh();
    const char *p = write_file("ph.ini", "[uwsgi]\n"
                                         "chdir = %(base)/early\n" /* a key set later */
                                         "base = /code\n"
                                         "base = /other\n" /* %(base) is the first one */
                                         "pidfile = %(base)/pid\n"
                                         "no-such-thing = 1\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_STR(c.chdir, "/code/early");
    CHECK_EQ_STR(c.pidfile, "/code/pid");
}

TEST(strict_makes_an_unknown_key_an_error_wherever_it_is_set)
{
    struct gy_config c = fresh();
    const char *err;
    const char *p = write_file("strict.ini",
                               "[uwsgi]\ntornado = 2\nbogus-key = 1\nstrict = true\n");
    CHECK_EQ_INT(load_status(&c, p, &err), 1);
    if (CHECK(err != NULL))
        CHECK(strstr(err, "strict.ini:3") != NULL && strstr(err, "bogus-key") != NULL);
    /* set-placeholder is the way to a placeholder under strict. */
    c = fresh();
    p = write_file("strict-ph.ini", "[uwsgi]\nstrict\nset-ph = base=/x\nchdir = %(base)\n");
    CHECK_EQ_INT(load_status(&c, p, &err), 0);
    CHECK_EQ_STR(c.chdir, "/x");
}

TEST(a_uwsgi_option_gyre_lacks_is_a_warning_or_a_strict_error)
{
    struct gy_config c = fresh();
    const char *err;
    const char *p = write_file("unsup.ini", "[uwsgi]\ngevent = 100\nthunder-lock\ntornado = 3\n");
    CHECK_EQ_INT(load_status(&c, p, &err), 0);
    CHECK_EQ_INT(c.cores, 3);
    c = fresh();
    p = write_file("unsup-strict.ini", "[uwsgi]\nstrict = yes\ngevent = 100\n");
    CHECK_EQ_INT(load_status(&c, p, &err), 1);
    if (CHECK(err != NULL))
        CHECK(strstr(err, "gevent") != NULL && strstr(err, "--tornado") != NULL);
}

TEST(plugins_gyre_has_built_in_are_no_ops_others_warn)
{
    CHECK(config_plugin_is_embedded("python3"));
    CHECK(config_plugin_is_embedded("tornado_python3"));
    CHECK(config_plugin_is_embedded("/usr/lib/uwsgi/plugins/greenlet_python3_plugin.so"));
    CHECK(!config_plugin_is_embedded("gevent"));
    CHECK(!config_plugin_is_embedded("php"));
    struct gy_config c = fresh();
    CHECK(options_set(&c, "plugin", "python3, tornado_python3,greenlet_python3") == NULL);
    CHECK(options_set(&c, "plugins", "python3,php") == NULL); /* a warning */
    c.strict = true;
    CHECK(options_set(&c, "plugins", "python3,php") != NULL);
    CHECK(options_set(&c, "plugins", "http") == NULL);
}

/* ---- references: arithmetic, files, the environment ------------------------------------------ */

TEST(placeholder_arithmetic_as_uwsgi)
{
    struct gy_config c = fresh();
    const char *p = write_file("math.ini", "[uwsgi]\n"
                                           "n = 3\n"
                                           "processes = %(n * 2 + 1)\n" /* 7 */
                                           "tornado = %(1 + 2 * 3)\n"   /* left to right: 9 */
                                           "listen = %(%k * 100)\n"     /* CPUs x 100 */
                                           "buffer-size = %(nothing + 8000)\n" /* no entry: 0 */
                                           "pidfile = %(n+1)\n" /* no blanks: a name */
                                           "logto = %(9 / 2)-%(processes - 1)\n"
                                           /* parentheses nest; each token is read with
                                            * atoi: "(3" is 0, "2)" is 2: 0 * 2 + 1 */
                                           "harakiri = %((n * 2) + 1)\n");
    CHECK(load(&c, p) == NULL);
    CHECK(c.harakiri == 1);
    CHECK_EQ_INT(c.processes, 7);
    CHECK_EQ_INT(c.cores, 9);
    CHECK_EQ_INT(c.listen_backlog, (int)sysconf(_SC_NPROCESSORS_ONLN) * 100);
    CHECK_EQ_INT(c.buffer_size, 8000);
    CHECK_EQ_STR(c.pidfile, "%(n+1)");
    CHECK_EQ_STR(c.logto, "4-6");
}

TEST(file_content_and_environment_references)
{
    struct gy_config c = fresh();
    write_file("content.txt", "/from/a/file\n");
    setenv("GYRE_TEST_HOME", "/srv/home", 1);
    char text[PATH_MAX + 128];
    snprintf(text, sizeof(text),
             "[uwsgi]\nchdir = @(%s/content.txt)\npidfile = $(GYRE_TEST_HOME)/p\n", tmpdir);
    const char *p = write_file("refs2.ini", text);
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_STR(c.chdir, "/from/a/file");
    CHECK_EQ_STR(c.pidfile, "/srv/home/p");
    c = fresh();
    p = write_file("refs3.ini", "[uwsgi]\nchdir = @(/nonexistent/file)\n");
    const char *err = load(&c, p);
    CHECK(err != NULL && strstr(err, "/nonexistent/file") != NULL);
}

TEST(magic_variables_of_the_file_and_of_the_top_file)
{
    struct gy_config c = fresh();
    write_file("magic-inner.ini", "[uwsgi]\nchdir = %n|%N|%e|%s|%S|%x\n");
    char top[PATH_MAX + 128];
    snprintf(top, sizeof(top), "[uwsgi]\nini = %s/magic-inner.ini\n[other]\npidfile = %%x\n",
             tmpdir);
    write_file("magic-top.cfg", top);
    char sel[PATH_MAX + 32];
    snprintf(sel, sizeof(sel), "%s/magic-top.cfg", tmpdir);
    CHECK(load(&c, sel) == NULL);
    CHECK_EQ_STR(c.chdir, "magic-inner|magic-top|ini|magic-inner.ini|magic-top.cfg|");
    snprintf(sel, sizeof(sel), "%s/magic-top.cfg:other", tmpdir);
    CHECK(load(&c, sel) == NULL);
    CHECK_EQ_STR(c.pidfile, "other");
}

/* ---- configuration logic ---------------------------------------------------------------------- */

TEST(if_blocks_as_uwsgi)
{
    struct gy_config c = fresh();
    setenv("GYRE_TEST_MODE", "prod", 1);
    unsetenv("GYRE_TEST_NOPE");
    char text[2048];
    snprintf(text, sizeof(text),
             "[uwsgi]\n"
             "if-env = GYRE_TEST_MODE\n"
             "env = MODE=%%(_)\n"
             "endif =\n"
             "if-env = GYRE_TEST_MODE=dev\n"
             "env = NEVER1=1\n"
             "endif\n"
             "if-not-env = GYRE_TEST_NOPE\n"
             "env = NOPE=unset\n"
             "endif\n"
             "if-env = GYRE_TEST_NOPE\n"
             "env = NEVER2=1\n"
             "endif\n"
             "tornado = 4\n"
             "if-opt = tornado=4\n"
             "env = CORES=%%(_)\n"
             "endif\n"
             "if-not-opt = processes\n"
             "env = NOPROC=1\n"
             "endif\n"
             "if-exists = %s\n"
             "env = DIR=%%(_)\n"
             "endif\n"
             "if-not-exists = %s/none\n"
             "env = ABSENT=1\n"
             "endif\n"
             "if-file = %s\n"
             "env = NEVER3=1\n"
             "endif\n"
             "if-dir = %s\n"
             "env = ISDIR=1\n"
             "endif\n"
             "if-plugin = python3\n"
             "env = PY=1\n"
             "endif\n"
             "if-not-reload = x\n"
             "env = FIRST=1\n"
             "endif\n",
             tmpdir, tmpdir, tmpdir, tmpdir);
    const char *p = write_file("if.ini", text);
    CHECK(load(&c, p) == NULL);
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "DIR=%s", tmpdir);
    const char *want[] = { "MODE=prod", "NOPE=unset", "CORES=4", "NOPROC=1", dir,
                           "ABSENT=1",  "ISDIR=1",    "PY=1",    "FIRST=1" };
    if (!CHECK_EQ_INT(c.nenv, (int)(sizeof(want) / sizeof(want[0]))))
        return;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_EQ_STR(c.env[i], want[i]);
}

TEST(for_loops_as_uwsgi)
{
    struct gy_config c = fresh();
    write_file("g-a.glob", "");
    write_file("g-b.glob", "");
    write_file("lines.txt", "one\n\ntwo\n");
    char text[2048];
    snprintf(text, sizeof(text),
             "[uwsgi]\n"
             "for = a b\n"
             "env = W_%%(_)=1\n"
             "pythonpath = /w/%%(_)\n"
             "endfor\n"
             "for-times = 3\n"
             "env = T%%(_)=1\n"
             "endfor =\n"
             "for-glob = %s/g-*.glob\n"
             "pythonpath = %%(_)\n"
             "endfor\n"
             "for-readline = %s/lines.txt\n"
             "env = L_%%(_)=1\n"
             "end\n"
             "env = AFTER=1\n",
             tmpdir, tmpdir);
    const char *p = write_file("for.ini", text);
    CHECK(load(&c, p) == NULL);
    const char *want[] = {
        "W_a=1", "W_b=1", "T1=1", "T2=1", "T3=1", "L_one=1", "L_two=1", "AFTER=1"
    };
    if (CHECK_EQ_INT(c.nenv, (int)(sizeof(want) / sizeof(want[0]))))
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
            CHECK_EQ_STR(c.env[i], want[i]);
    if (CHECK_EQ_INT(c.npythonpath, 4)) {
        CHECK_EQ_STR(c.pythonpath[0], "/w/a");
        CHECK_EQ_STR(c.pythonpath[1], "/w/b");
        CHECK(strstr(c.pythonpath[2], "g-a.glob") != NULL);
        CHECK(strstr(c.pythonpath[3], "g-b.glob") != NULL);
    }
}

TEST(blocks_do_not_nest_as_in_uwsgi)
{
    struct gy_config c = fresh();
    const char *p = write_file("nest.ini", "[uwsgi]\nif-env = PATH\nfor = a b\nenv = X=1\n");
    const char *err = load(&c, p);
    CHECK(err != NULL && strstr(err, "nest.ini:3") != NULL && strstr(err, "nest") != NULL);
}

TEST(set_is_an_option_or_a_placeholder)
{
    struct gy_config c = fresh();
    const char *p = write_file("set.ini", "[uwsgi]\nset = tornado=6\nset = where=/x\n"
                                          "chdir = %(where)\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_INT(c.cores, 6);
    CHECK_EQ_STR(c.chdir, "/x");
}

TEST(ini_include_loop_is_bounded)
{
    struct gy_config c = fresh();
    char self[PATH_MAX + 32];
    snprintf(self, sizeof(self), "[uwsgi]\nini = %s/loop.ini\n", tmpdir);
    const char *p = write_file("loop.ini", self);
    CHECK(load(&c, p) != NULL);
}

TEST(ini_file_without_the_section_applies_nothing)
{
    /* uWSGI warns and goes on (the warning goes to stderr); FILE:SECTION with no such section
     * is an error. */
    struct gy_config c = fresh();
    const char *p = write_file("nosection.ini", "[app]\nsocket = /x.sock\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_INT(c.nsockets, 0);
    char sel[PATH_MAX + 8];
    snprintf(sel, sizeof(sel), "%s:prod", p);
    CHECK(load(&c, sel) != NULL);
}

/* ---- the environment ------------------------------------------------------------------------- */

TEST(environment_options_with_both_prefixes)
{
    setenv("UWSGI_TORNADO", "12", 1);
    setenv("GYRE_BUFFER_SIZE", "8192", 1);
    setenv("UWSGI_MASTER", "True", 1);
    setenv("UWSGI_UNRELATED_THING", "x", 1); /* not an option: a placeholder, as uWSGI */
    setenv("UWSGI_GEVENT", "10", 1);         /* uWSGI's, not gyre's: a warning */
    struct gy_config c = fresh();
    unsetenv("UWSGI_TORNADO");
    unsetenv("GYRE_BUFFER_SIZE");
    unsetenv("UWSGI_MASTER");
    unsetenv("UWSGI_GEVENT");
    CHECK_EQ_INT(c.cores, 12);
    CHECK_EQ_INT(c.buffer_size, 8192);
    CHECK(c.master);
    /* ... whose value an .ini can use. */
    const char *p = write_file("envph.ini", "[uwsgi]\nchdir = /%(unrelated-thing)\n");
    CHECK(load(&c, p) == NULL);
    CHECK_EQ_STR(c.chdir, "/x");
    unsetenv("UWSGI_UNRELATED_THING");
}

TEST(uwsgi_ini_from_the_environment_reads_the_file)
{
    const char *p = write_file("fromenv.ini", "[uwsgi]\ntornado = 21\n");
    setenv("UWSGI_INI", p, 1);
    struct gy_config c = fresh();
    unsetenv("UWSGI_INI");
    CHECK_EQ_INT(c.cores, 21);
}

/* ---- the command line ------------------------------------------------------------------------ */

TEST(command_line_short_flags_and_bare_ini)
{
    const char *p = write_file("bare.ini", "[uwsgi]\nlisten = 77\n");
    char *argv[] = { "gyre",    "-s", "/tmp/x.sock", "-w", "pkg.app", "-ML", "-p4", "-b",
                     "8192",    "-t", "30",          "-i", "-C",      "660", "-z",  "9",
                     (char *)p, "-R", "100",         "-l", "88",      NULL };
    struct gy_config c;
    options_parse(&c, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv);
    CHECK_EQ_INT(c.nsockets, 1);
    CHECK_EQ_STR(c.module, "pkg.app");
    CHECK(c.master);
    CHECK_EQ_INT(c.processes, 4);
    CHECK_EQ_INT(c.buffer_size, 8192);
    CHECK(c.harakiri == 30);
    CHECK(c.disable_logging);
    CHECK_EQ_INT(c.chmod_socket, 0660);
    CHECK(c.socket_timeout == 9);
    CHECK_EQ_INT((int)c.max_requests, 100);
    CHECK_EQ_INT(c.listen_backlog, 88); /* -l after the file: the command line's order */
}

TEST(command_line_flag_values_and_references)
{
    char *argv[] = { "gyre",
                     "--socket",
                     "/tmp/x.sock",
                     "--wsgi-file",
                     "app.py",
                     "--master=True",
                     "--disable-logging=false",
                     "--set",
                     "n=5",
                     "--processes",
                     "%(n - 1)",
                     NULL };
    struct gy_config c;
    options_parse(&c, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv);
    CHECK(c.master);
    CHECK(!c.disable_logging);
    CHECK_EQ_INT(c.processes, 4);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = testlib_main(argc, argv);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
