/*
 * Unit tests of the configuration layer: options.c (every value form an option takes) and ini.c
 * (uWSGI's .ini format: sections, substitutions, includes, bad lines) and env_load. Pure C: no
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

TEST(buffer_size_is_bounded_by_the_uwsgi_field)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "buffer-size", "32768") == NULL);
    CHECK_EQ_INT(c.buffer_size, 32768);
    CHECK(options_set(&c, "buffer-size", "65535") == NULL);
    CHECK(options_set(&c, "buffer-size", "65536") != NULL);
}

TEST(seconds_take_fractions_and_refuse_the_rest)
{
    struct gy_config c = fresh();
    CHECK(options_set(&c, "socket-timeout", "2.5") == NULL);
    CHECK(c.socket_timeout == 2.5);
    CHECK(options_set(&c, "harakiri", "0") == NULL);
    CHECK(c.harakiri == 0);
    static const char *const bad[] = { "", "-1", "nan", "inf", "5s", "1e7" };
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
    CHECK(ini_load(&c, p) == NULL);
    CHECK_EQ_INT(c.nsockets, 1);
    CHECK_EQ_INT(c.cores, 5);
    CHECK(c.master);
}

TEST(ini_values_keep_semicolons_no_inline_comments)
{
    struct gy_config c = fresh();
    const char *p = write_file("semi.ini", "[uwsgi]\nlog-format = a;b ; c\n");
    CHECK(ini_load(&c, p) == NULL);
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
                                            "log-format = 100%% %x %\n");
    CHECK(ini_load(&c, p) == NULL);
    char dir[PATH_MAX + 1];
    snprintf(dir, sizeof(dir), "%s/", tmpdir);
    CHECK_EQ_STR(c.chdir, dir);
    CHECK_EQ_STR(c.wsgi_file, "magic.py");
    CHECK_EQ_STR(c.pidfile, "magic.ini");
    CHECK_EQ_STR(c.logto, p);
    CHECK_EQ_STR(c.log_format, "100% %x %"); /* unknown magic letters stay as written */
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
    CHECK(ini_load(&c, p) == NULL);
    CHECK_EQ_INT(c.cores, 7);
    CHECK_EQ_STR(c.chdir, "/opt/site/src");
    CHECK_EQ_STR(c.pidfile, "/srv/app/pid");
    CHECK_EQ_STR(c.logto, "[]");
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
    CHECK(ini_load(&c, p) == NULL);
    CHECK_EQ_INT(c.cores, 9);
    CHECK_EQ_INT(c.processes, 3);
}

TEST(ini_errors_name_file_line_and_key)
{
    struct gy_config c = fresh();
    const char *p = write_file("bad.ini", "[uwsgi]\ntornado = 2\nno-such-thing = 1\n");
    const char *err = ini_load(&c, p);
    if (CHECK(err != NULL)) {
        CHECK(strstr(err, "bad.ini:3") != NULL);
        CHECK(strstr(err, "no-such-thing") != NULL);
    }
    p = write_file("badval.ini", "[uwsgi]\ntornado = lots\n");
    err = ini_load(&c, p);
    if (CHECK(err != NULL))
        CHECK(strstr(err, "badval.ini:2: tornado = lots") != NULL);
    err = ini_load(&c, "/nonexistent/dir/x.ini");
    CHECK(err != NULL);
}

TEST(ini_error_in_an_include_says_where_it_was_included)
{
    struct gy_config c = fresh();
    write_file("inner-bad.ini", "[uwsgi]\nbogus = 1\n");
    char top[PATH_MAX + 64];
    snprintf(top, sizeof(top), "[uwsgi]\n\nini = %s/inner-bad.ini\n", tmpdir);
    const char *p = write_file("outer.ini", top);
    const char *err = ini_load(&c, p);
    if (CHECK(err != NULL)) {
        CHECK(strstr(err, "inner-bad.ini:2") != NULL);
        CHECK(strstr(err, "included from") != NULL && strstr(err, "outer.ini:3") != NULL);
    }
}

TEST(ini_include_loop_is_bounded)
{
    struct gy_config c = fresh();
    char self[PATH_MAX + 32];
    snprintf(self, sizeof(self), "[uwsgi]\nini = %s/loop.ini\n", tmpdir);
    const char *p = write_file("loop.ini", self);
    CHECK(ini_load(&c, p) != NULL);
}

TEST(ini_file_without_the_section_applies_nothing)
{
    /* uWSGI warns and goes on (the warning goes to stderr); FILE:SECTION with no such section
     * is an error. */
    struct gy_config c = fresh();
    const char *p = write_file("nosection.ini", "[app]\nsocket = /x.sock\n");
    CHECK(ini_load(&c, p) == NULL);
    CHECK_EQ_INT(c.nsockets, 0);
    char sel[PATH_MAX + 8];
    snprintf(sel, sizeof(sel), "%s:prod", p);
    CHECK(ini_load(&c, sel) != NULL);
}

/* ---- the environment ------------------------------------------------------------------------- */

TEST(environment_options_with_both_prefixes)
{
    setenv("UWSGI_TORNADO", "12", 1);
    setenv("GYRE_BUFFER_SIZE", "8192", 1);
    setenv("UWSGI_UNRELATED_THING", "x", 1); /* not an option: ignored, as uWSGI does */
    struct gy_config c = fresh();
    unsetenv("UWSGI_TORNADO");
    unsetenv("GYRE_BUFFER_SIZE");
    unsetenv("UWSGI_UNRELATED_THING");
    CHECK_EQ_INT(c.cores, 12);
    CHECK_EQ_INT(c.buffer_size, 8192);
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
