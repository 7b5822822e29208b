/*
 * Unit tests of static.c's pure parts: finding the file a request names under the mappings
 * (and refusing what leaves them), the answer's status and headers, and the parsers of Range
 * and HTTP dates. Pure C, no Python: a temporary tree on disk, no sockets.
 *
 * static.c resolves a mapping's directory once per process (on first use), as the server's
 * configuration is fixed: every test here uses the one configuration made by setup().
 */
#include "config.h"
#include "response.h"
#include "static.h"
#include "testlib.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[64];
static char root[128], outside[160], map[160], map2[160], check[160], filemap[192];
static struct gy_config cfg;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    if (top[0])
        return;
    snprintf(top, sizeof(top), "/tmp/gyre-test-static-XXXXXX");
    if (!mkdtemp(top)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(root, sizeof(root), "%s/static", top);
    snprintf(outside, sizeof(outside), "%s/secret.txt", top);
    char path[256];
    mkdir(root, 0755);
    snprintf(path, sizeof(path), "%s/sub", root);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/noindex", root);
    mkdir(path, 0755);
    write_file(root, "a.css", "body{}\n");
    write_file(root, "a.css.gz", "GZ");
    write_file(root, "data.bin", "0123456789");
    write_file(root, "sub/index.html", "<p>\n");
    write_file(top, "secret.txt", "secret\n");
    snprintf(path, sizeof(path), "%s/leak", root);
    if (symlink(outside, path) < 0)
        perror("symlink");

    snprintf(map, sizeof(map), "/static=%s", root);
    snprintf(map2, sizeof(map2), "/static=%s", top);
    snprintf(check, sizeof(check), "%s", root);
    snprintf(filemap, sizeof(filemap), "/favicon.ico=%s/data.bin", root);
    cfg.static_maps[cfg.nstatic_maps++] = map;
    cfg.static_maps[cfg.nstatic_maps++] = filemap;
    cfg.static_index[cfg.nstatic_index++] = "index.html";
    cfg.static_skip_ext[cfg.nstatic_skip_ext++] = ".skip";
    cfg.static_gzip_ext[cfg.nstatic_gzip_ext++] = ".css";
    cfg.static_expires[cfg.nstatic_expires++] = (struct gy_expires_rule){ .on = EXPIRES_TYPE,
                                                                          .spec = "text/css=100" };
    cfg.static_expires[cfg.nstatic_expires++] = (struct gy_expires_rule){ .on = EXPIRES_URI,
                                                                          .from_mtime = true,
                                                                          .spec = "\\.bin$ 50" };
}

static struct gy_slice sl(const char *s)
{
    return (struct gy_slice){ s, (uint32_t)strlen(s) };
}

static struct static_request get(const char *path)
{
    return (struct static_request){
        .method = sl("GET"), .path_info = sl(path), .uri = sl(path), .now = 1000000
    };
}

/* The file found for path, relative to root ("" when none). */
static const char *found(const char *method, const char *path)
{
    static char rel[PATH_MAX + 8];
    setup();
    struct static_request q = get(path);
    q.method = sl(method);
    struct static_file f;
    if (!static_find(&cfg, &q, &f))
        return "";
    size_t rl = strlen(root);
    snprintf(rel, sizeof(rel), "%s", strncmp(f.path, root, rl) == 0 ? f.path + rl : f.path);
    return rel;
}

TEST(static_map_finds_files_and_indexes)
{
    CHECK_EQ_STR(found("GET", "/static/a.css"), "/a.css");
    CHECK_EQ_STR(found("HEAD", "/static/a.css"), "/a.css");
    CHECK_EQ_STR(found("GET", "/static/sub/"), "/sub/index.html");
    CHECK_EQ_STR(found("GET", "/static/sub"), "/sub/index.html");
    CHECK_EQ_STR(found("GET", "/favicon.ico"), "/data.bin");
}

TEST(misses_go_to_the_app)
{
    CHECK_EQ_STR(found("POST", "/static/a.css"), "");
    CHECK_EQ_STR(found("GET", "/static/none.css"), "");
    CHECK_EQ_STR(found("GET", "/static/noindex/"), "");
    CHECK_EQ_STR(found("GET", "/other/a.css"), "");
    CHECK_EQ_STR(found("GET", "/statica.css"), ""); /* the mountpoint ends at a '/' */
    CHECK_EQ_STR(found("GET", "/static/a.skip"), "");
}

TEST(traversal_is_refused)
{
    CHECK_EQ_STR(found("GET", "/static/../secret.txt"), "");
    CHECK_EQ_STR(found("GET", "/static/sub/../../secret.txt"), "");
    CHECK_EQ_STR(found("GET", "/static/leak"), "");
    CHECK_EQ_STR(found("GET", "/static/.."), "");
    /* a NUL would cut the path: /static/a.css\0.png is not /static/a.css */
    setup();
    struct static_request q = get("");
    q.path_info = (struct gy_slice){ "/static/a.css\0.png", 18 };
    struct static_file f;
    CHECK(!static_find(&cfg, &q, &f));
    /* inside the tree, ".." is fine */
    CHECK_EQ_STR(found("GET", "/static/sub/../a.css"), "/a.css");
}

static bool answer(struct static_request *q, struct static_file *f)
{
    setup();
    return CHECK(static_find(&cfg, q, f)) && CHECK(static_open(&cfg, q, f));
}

TEST(answer_type_expires_gzip)
{
    struct static_request q = get("/static/a.css");
    struct static_file f;
    if (!answer(&q, &f))
        return;
    CHECK_EQ_INT(f.status, 200);
    CHECK_EQ_STR(f.type ? f.type : "(none)", "text/css");
    CHECK(!f.gzip && f.vary);
    CHECK_EQ_INT((long long)f.expires, 1000100);
    CHECK_EQ_INT((long long)f.length, 7);
    static_close(&f);

    q.accept_encoding = sl("deflate, gzip;q=0.5");
    if (!answer(&q, &f))
        return;
    CHECK(f.gzip);
    CHECK_EQ_STR(f.type ? f.type : "(none)", "text/css");
    CHECK_EQ_INT((long long)f.length, 2);
    struct gy_response r = { 0 };
    CHECK_EQ_INT(static_head(&f, &r, "HTTP/1.1 "), 0);
    resp_head_append(&r, "", 1);
    CHECK(strstr(r.head, "HTTP/1.1 200 OK\r\n") == r.head);
    CHECK(strstr(r.head, "Content-Encoding: gzip\r\n") != NULL);
    CHECK(strstr(r.head, "Content-Type: text/css\r\n") != NULL);
    CHECK(strstr(r.head, "Vary: Accept-Encoding\r\n") != NULL);
    CHECK(strstr(r.head, "Expires: Mon, 12 Jan 1970 13:48:20 GMT\r\n") != NULL);
    free(r.head);
    static_close(&f);

    q.accept_encoding = sl("gzip;q=0");
    if (!answer(&q, &f))
        return;
    CHECK(!f.gzip);
    static_close(&f);
}

TEST(answer_expires_from_mtime_by_uri)
{
    struct static_request q = get("/static/data.bin");
    struct static_file f;
    if (!answer(&q, &f))
        return;
    CHECK_EQ_INT((long long)f.expires, (long long)f.st.st_mtime + 50);
    CHECK(f.type == NULL || strcmp(f.type, "text/css") != 0);
    static_close(&f);
}

TEST(answer_304_206_416)
{
    struct static_request q = get("/static/data.bin");
    struct static_file f;
    q.if_modified_since = sl("Fri, 31 Dec 2999 23:59:59 GMT");
    if (!answer(&q, &f))
        return;
    CHECK_EQ_INT(f.status, 304);
    CHECK_EQ_INT(static_content_length(&f), -1);
    static_close(&f);

    q = get("/static/data.bin");
    q.if_modified_since = sl("Thu, 01 Jan 1970 00:00:00 GMT");
    q.range = sl("bytes=2-4");
    if (!answer(&q, &f))
        return;
    CHECK_EQ_INT(f.status, 206);
    CHECK_EQ_INT((long long)f.offset, 2);
    CHECK_EQ_INT(static_content_length(&f), 3);
    struct gy_response r = { 0 };
    static_head(&f, &r, "Status: ");
    resp_head_append(&r, "", 1);
    CHECK(strstr(r.head, "Status: 206 Partial Content\r\n") == r.head);
    CHECK(strstr(r.head, "Content-Range: bytes 2-4/10\r\n") != NULL);
    free(r.head);
    static_close(&f);

    q.range = sl("bytes=10-");
    if (!answer(&q, &f))
        return;
    CHECK_EQ_INT(f.status, 416);
    CHECK_EQ_INT(static_content_length(&f), 0);
    static_close(&f);

    q.if_range = sl("\"etag\"");
    if (!answer(&q, &f))
        return;
    CHECK_EQ_INT(f.status, 200);
    static_close(&f);
}

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    return static_parse_range(sl(v), size, a, b);
}

TEST(range_parser)
{
    uint64_t a = 0, b = 0;
    CHECK_EQ_INT(range("bytes=0-0", 10, &a, &b), 1);
    CHECK(a == 0 && b == 0);
    CHECK_EQ_INT(range("bytes=5-100", 10, &a, &b), 1);
    CHECK(a == 5 && b == 9);
    CHECK_EQ_INT(range("bytes=-3", 10, &a, &b), 1);
    CHECK(a == 7 && b == 9);
    CHECK_EQ_INT(range("bytes=-30", 10, &a, &b), 1);
    CHECK(a == 0 && b == 9);
    CHECK_EQ_INT(range("bytes=7-", 10, &a, &b), 1);
    CHECK(a == 7 && b == 9);
    CHECK_EQ_INT(range("bytes=10-", 10, &a, &b), -1);
    CHECK_EQ_INT(range("bytes=-0", 10, &a, &b), -1);
    CHECK_EQ_INT(range("bytes=0-", 0, &a, &b), -1);
    /* ignored: the whole file */
    CHECK_EQ_INT(range("bytes=0-1,3-4", 10, &a, &b), 0);
    CHECK_EQ_INT(range("bytes=4-2", 10, &a, &b), 0);
    CHECK_EQ_INT(range("bytes=a-b", 10, &a, &b), 0);
    CHECK_EQ_INT(range("bytes=+1-2", 10, &a, &b), 0);
    CHECK_EQ_INT(range("items=0-1", 10, &a, &b), 0);
    CHECK_EQ_INT(range("bytes=99999999999999999999-", 10, &a, &b), 0);
}

TEST(http_date_parser)
{
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    CHECK_EQ_INT((long long)static_parse_http_date(d, strlen(d)), 784111777);
    CHECK_EQ_INT((long long)static_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30), -1);
    CHECK_EQ_INT((long long)static_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMTx", 30), -1);
    CHECK_EQ_INT((long long)static_parse_http_date("", 0), -1);
}

int main(int argc, char **argv)
{
    int rc = testlib_main(argc, argv);
    if (top[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", top);
    }
    return rc;
}
