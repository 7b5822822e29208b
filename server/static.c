/*
 * Static files, answered from C before the app is called: uWSGI's check-static, static-map,
 * static-map2 and check-static-docroot, looked up in that order, the first file found wins.
 *
 * A mapping's directory is resolved with realpath() once (on first use: after --chdir), and
 * so is every file asked for: the file must resolve to a path inside its directory (or inside
 * a --static-safe one), so that no "..", no percent-encoded "%2e%2e" (PATH_INFO is decoded)
 * and no symlink can lead out of it. A request that finds nothing, a directory without index,
 * a method other than GET or HEAD, or a path refused as outside: the app gets the request, as
 * in uWSGI (which logs the refusal too).
 *
 * The answer is made like the app's would be: the head in the request's protocol (status_prefix
 * and head_finish), then the file with the protocol's send_file (sendfile(2) on the core's
 * socket, suspending the core while the socket is full): nothing blocks the loop, and no
 * offload thread is needed.
 *
 * Depends on: log.c, regexp.c, response.c (server/README)
 */
#include "static.h"

#include "config.h"
#include "log.h"
#include "proto.h"
#include "regexp.h"
#include "response.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MIME_SLOTS 8192 /* open addressing; /etc/mime.types has some 1500 extensions */
#define MIME_EXT_MAX 32

/* A directory (or file) of a mapping, as realpath() gives it; resolved on first use. */
struct root {
    char *real;
    size_t len;
    bool is_file;
    bool warned; /* its failure to resolve was logged */
};

struct expires {
    struct gy_regexp *rx; /* the regexp rules (NULL: none, or it did not compile) */
    const char *type;     /* the content-type rules: TYPE of "TYPE=SECONDS" */
    size_t type_len;
    long seconds;
};

static struct {
    bool ready;
    struct root check[GY_MAX_LIST], map[GY_MAX_LIST], map2[GY_MAX_LIST], safe[GY_MAX_LIST];
    struct expires expires[GY_MAX_LIST];
    struct gy_regexp *gzip_re[GY_MAX_LIST];
    struct mime {
        char ext[MIME_EXT_MAX];
        const char *type;
    } * mime;
} ST;

bool static_enabled(const struct gy_config *cfg)
{
    return cfg->ncheck_static || cfg->nstatic_maps || cfg->nstatic_maps2 ||
           cfg->check_static_docroot;
}

/* ---- mime types: /etc/mime.types (or --mimefile), ext -> type --------------------------- */

static uint32_t mime_hash(const char *ext, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a over the lowercased extension */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)tolower((unsigned char)ext[i])) * 16777619u;
    return h;
}

static struct mime *mime_slot(const char *ext, size_t len)
{
    uint32_t h = mime_hash(ext, len);
    for (uint32_t i = 0; i < MIME_SLOTS; i++) {
        struct mime *m = &ST.mime[(h + i) % MIME_SLOTS];
        if (!m->type || (strlen(m->ext) == len && strncasecmp(m->ext, ext, len) == 0))
            return m;
    }
    return NULL; /* full */
}

/* One "type ext ext ..." line; the first file (and line) naming an extension wins. */
static void mime_line(char *line)
{
    char *save = NULL;
    char *type = strtok_r(line, " \t\r\n", &save);
    if (!type || *type == '#')
        return;
    const char *shared = NULL;
    for (char *ext; (ext = strtok_r(NULL, " \t\r\n", &save));) {
        size_t len = strlen(ext);
        if (len >= MIME_EXT_MAX)
            continue;
        struct mime *m = mime_slot(ext, len);
        if (!m || m->type)
            continue;
        if (!shared && !(shared = strdup(type)))
            return;
        memcpy(m->ext, ext, len + 1);
        m->type = shared;
    }
}

static void mime_load(const struct gy_config *cfg)
{
    ST.mime = calloc(MIME_SLOTS, sizeof(*ST.mime));
    if (!ST.mime) {
        log_msg("static files: out of memory for the mime types: no Content-Type sent");
        return;
    }
    static const char *const dflt[] = { "/etc/mime.types" };
    const char *const *files = cfg->nmimefiles ? cfg->mimefiles : dflt;
    int n = cfg->nmimefiles ? cfg->nmimefiles : 1;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "re");
        if (!f) {
            log_errno("static files: cannot read the mime types of %s", files[i]);
            continue;
        }
        char line[1024];
        while (fgets(line, sizeof(line), f))
            mime_line(line);
        fclose(f);
    }
}

/* uWSGI's rule: the extension is what follows the last '.', when only letters and digits do. */
static const char *mime_type_of(const char *name, size_t len)
{
    size_t i = len;
    while (i > 0 && isalnum((unsigned char)name[i - 1]))
        i--;
    if (!ST.mime || i == 0 || name[i - 1] != '.' || i == len || len - i >= MIME_EXT_MAX)
        return NULL;
    struct mime *m = mime_slot(name + i, len - i);
    return m ? m->type : NULL;
}

/* ---- start-up, on first use ------------------------------------------------------------- */

static void compile_rules(const struct gy_config *cfg)
{
    for (int i = 0; i < cfg->nstatic_expires; i++) {
        const struct gy_expires_rule *r = &cfg->static_expires[i];
        struct expires *e = &ST.expires[i];
        const char *sep = strchr(r->spec, r->on == EXPIRES_TYPE ? '=' : ' ');
        if (!sep) /* options.c checked the form */
            continue;
        e->seconds = strtol(sep + 1, NULL, 10);
        if (r->on == EXPIRES_TYPE) {
            e->type = r->spec;
            e->type_len = (size_t)(sep - r->spec);
            continue;
        }
        char err[192]; /* options.c checked the pattern: it compiles */
        e->rx = regexp_compile(r->spec, (size_t)(sep - r->spec), err, sizeof(err));
    }
    for (int i = 0; i < cfg->nstatic_gzip_re; i++) {
        char err[192];
        ST.gzip_re[i] = regexp_compile(cfg->static_gzip_re[i], strlen(cfg->static_gzip_re[i]), err,
                                       sizeof(err));
    }
}

static void prepare(const struct gy_config *cfg)
{
    if (ST.ready)
        return;
    ST.ready = true;
    mime_load(cfg);
    compile_rules(cfg);
}

/* realpath() of a mapping's directory (or file), kept once it resolves; a directory that
 * does not exist (yet) is tried again on the next request, and said once. */
static bool root_resolve(struct root *rt, const char *dir, size_t len, const char *option)
{
    if (rt->real)
        return true;
    char path[PATH_MAX];
    if (len == 0 || len >= sizeof(path))
        return false;
    memcpy(path, dir, len);
    path[len] = '\0';
    rt->real = realpath(path, NULL);
    struct stat st;
    if (!rt->real || stat(rt->real, &st) < 0) {
        if (!rt->warned)
            log_errno("--%s %s: not served", option, path);
        rt->warned = true;
        free(rt->real);
        rt->real = NULL;
        return false;
    }
    rt->len = strlen(rt->real);
    rt->is_file = S_ISREG(st.st_mode);
    return true;
}

/* ---- finding the file ------------------------------------------------------------------- */

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return sl <= len && memcmp(s + len - sl, suffix, sl) == 0;
}

/* path is dir itself or inside it (dir "/" holds everything). */
static bool is_inside(const char *path, const char *dir, size_t dlen)
{
    if (strncmp(path, dir, dlen) != 0)
        return false;
    return path[dlen] == '\0' || path[dlen] == '/' || (dlen > 0 && dir[dlen - 1] == '/');
}

static bool is_allowed(const struct gy_config *cfg, const char *real, const char *root, size_t rlen)
{
    if (is_inside(real, root, rlen))
        return true;
    for (int i = 0; i < cfg->nstatic_safe; i++)
        if (root_resolve(&ST.safe[i], cfg->static_safe[i], strlen(cfg->static_safe[i]),
                         "static-safe") &&
            is_inside(real, ST.safe[i].real, ST.safe[i].len))
            return true;
    return false;
}

/* realpath() of candidate into out, when it is allowed under root; the refusal is logged
 * (a client probing for files outside, or a symlink that leads out). */
static bool resolve_inside(const struct gy_config *cfg, const char *candidate, const char *root,
                           size_t rlen, char *out)
{
    char real[PATH_MAX];
    if (!realpath(candidate, real))
        return false;
    if (!is_allowed(cfg, real, root, rlen)) {
        log_msg("static files: security error: %s is not under %s (or a --static-safe "
                "directory): not served",
                real, root);
        return false;
    }
    memcpy(out, real, strlen(real) + 1);
    return true;
}

static bool skipped(const struct gy_config *cfg, const char *name, size_t len)
{
    for (int i = 0; i < cfg->nstatic_skip_ext; i++)
        if (has_suffix(name, len, cfg->static_skip_ext[i]))
            return true;
    return false;
}

/* A regular file at f->path: the one asked for, or a directory's first --static-index. */
static bool regular_or_index(const struct gy_config *cfg, struct static_file *f, size_t rlen)
{
    struct stat st;
    if (stat(f->path, &st) < 0)
        return false;
    if (S_ISREG(st.st_mode))
        return true;
    if (!S_ISDIR(st.st_mode))
        return false;
    char dir[PATH_MAX + 4];
    memcpy(dir, f->path, strlen(f->path) + 1);
    for (int i = 0; i < cfg->nstatic_index; i++) {
        char candidate[PATH_MAX + 4];
        int n = snprintf(candidate, sizeof(candidate), "%s%s%s", dir,
                         dir[strlen(dir) - 1] == '/' ? "" : "/", cfg->static_index[i]);
        if (n < 0 || (size_t)n >= PATH_MAX)
            continue;
        if (resolve_inside(cfg, candidate, f->root, rlen, f->path) && stat(f->path, &st) == 0 &&
            S_ISREG(st.st_mode))
            return true;
    }
    return false;
}

/* root + "/" + rel: the file, when it is one and allowed. */
static bool try_root(const struct gy_config *cfg, const struct root *rt, const char *rel,
                     size_t rlen_rel, struct static_file *f)
{
    char candidate[PATH_MAX];
    if (rt->len + 1 + rlen_rel >= sizeof(candidate))
        return false;
    memcpy(candidate, rt->real, rt->len);
    size_t n = rt->len;
    candidate[n++] = '/';
    memcpy(candidate + n, rel, rlen_rel);
    candidate[n + rlen_rel] = '\0';
    memcpy(f->root, rt->real, rt->len + 1);
    if (!resolve_inside(cfg, candidate, rt->real, rt->len, f->path))
        return false;
    if (!regular_or_index(cfg, f, rt->len))
        return false;
    return !skipped(cfg, f->path, strlen(f->path));
}

/* A mapping's file (MOUNT=FILE): served for its mountpoint, as in uWSGI. Its directory is
 * the root its FILE.gz must resolve into. */
static void use_file(const struct root *rt, struct static_file *f)
{
    memcpy(f->path, rt->real, rt->len + 1);
    memcpy(f->root, rt->real, rt->len + 1);
    char *slash = strrchr(f->root, '/');
    if (slash)
        slash[slash == f->root ? 1 : 0] = '\0'; /* "/file" lives in "/" */
}

/* PATH_INFO starts with the mountpoint, at a '/' boundary ("/static" is not "/staticx"). */
static bool mount_matches(struct gy_slice path, const char *mount, size_t mlen)
{
    if (path.len < mlen || memcmp(path.ptr, mount, mlen) != 0)
        return false;
    return path.len == mlen || path.ptr[mlen] == '/' || (mlen > 0 && mount[mlen - 1] == '/');
}

static bool try_maps(const struct gy_config *cfg, const char *const *maps, int n,
                     struct root *roots, bool keep_mount, const char *option,
                     const struct static_request *q, struct static_file *f)
{
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(maps[i], '=');
        size_t mlen = (size_t)(eq - maps[i]);
        if (!mount_matches(q->path_info, maps[i], mlen) ||
            !root_resolve(&roots[i], eq + 1, strlen(eq + 1), option))
            continue;
        if (roots[i].is_file) {
            use_file(&roots[i], f);
            return true;
        }
        size_t skip = keep_mount ? 0 : mlen;
        if (try_root(cfg, &roots[i], q->path_info.ptr + skip, q->path_info.len - skip, f))
            return true;
    }
    return false;
}

bool static_find(const struct gy_config *cfg, const struct static_request *q, struct static_file *f)
{
    prepare(cfg);
    f->fd = -1;
    if (!GY_SLICE_EQ(q->method, "GET") && !GY_SLICE_EQ(q->method, "HEAD"))
        return false;
    struct gy_slice p = q->path_info;
    /* A NUL would cut the path short of what the client asked for. */
    if (p.len == 0 || memchr(p.ptr, '\0', p.len) || skipped(cfg, p.ptr, p.len))
        return false;
    for (int i = 0; i < cfg->ncheck_static; i++)
        if (root_resolve(&ST.check[i], cfg->check_static[i], strlen(cfg->check_static[i]),
                         "check-static") &&
            try_root(cfg, &ST.check[i], p.ptr, p.len, f))
            return true;
    if (try_maps(cfg, cfg->static_maps, cfg->nstatic_maps, ST.map, false, "static-map", q, f) ||
        try_maps(cfg, cfg->static_maps2, cfg->nstatic_maps2, ST.map2, true, "static-map2", q, f))
        return true;
    if (cfg->check_static_docroot && q->document_root.len &&
        !memchr(q->document_root.ptr, '\0', q->document_root.len)) {
        /* The front end's DOCUMENT_ROOT changes from request to request: resolved each time. */
        struct root rt = { .warned = true };
        bool found = root_resolve(&rt, q->document_root.ptr, q->document_root.len,
                                  "check-static-docroot") &&
                     !rt.is_file && try_root(cfg, &rt, p.ptr, p.len, f);
        free(rt.real);
        return found;
    }
    return false;
}

/* ---- the answer ------------------------------------------------------------------------- */

/* q=0, q=0.0, q=0.000: the coding is refused. */
static bool is_q_zero(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    if (n < 3 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=')
        return false;
    for (size_t i = 2; i < n && p[i] != ' '; i++)
        if (p[i] != '0' && p[i] != '.')
            return false;
    return true;
}

/* Accept-Encoding names gzip with a q-value above 0 (RFC 9110 12.5.3). */
static bool accepts_gzip(struct gy_slice ae)
{
    size_t i = 0, n = ae.len;
    const char *s = ae.ptr;
    while (i < n) {
        size_t item = i, item_end = i;
        while (item_end < n && s[item_end] != ',')
            item_end++;
        while (item < item_end && (s[item] == ' ' || s[item] == '\t'))
            item++;
        size_t name_end = item;
        while (name_end < item_end && s[name_end] != ';' && s[name_end] != ' ' &&
               s[name_end] != '\t')
            name_end++;
        if (name_end - item == 4 && strncasecmp(s + item, "gzip", 4) == 0) {
            size_t semi = name_end;
            while (semi < item_end && s[semi] != ';')
                semi++;
            return semi == item_end || !is_q_zero(s + semi + 1, item_end - semi - 1);
        }
        i = item_end + 1;
    }
    return false;
}

static bool wants_gzip_variant(const struct gy_config *cfg, const char *path)
{
    if (cfg->static_gzip_all)
        return true;
    size_t len = strlen(path);
    for (int i = 0; i < cfg->nstatic_gzip_dir; i++)
        if (strncmp(path, cfg->static_gzip_dir[i], strlen(cfg->static_gzip_dir[i])) == 0)
            return true;
    for (int i = 0; i < cfg->nstatic_gzip_ext; i++)
        if (has_suffix(path, len, cfg->static_gzip_ext[i]))
            return true;
    for (int i = 0; i < cfg->nstatic_gzip_re; i++)
        if (ST.gzip_re[i] && regexp_match(ST.gzip_re[i], path, strlen(path)))
            return true;
    return false;
}

static int open_regular(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* FILE.gz in place of FILE, when it is wanted, accepted, there and allowed. */
static void pick_gzip(const struct gy_config *cfg, const struct static_request *q,
                      struct static_file *f)
{
    if (!wants_gzip_variant(cfg, f->path))
        return;
    f->vary = true; /* the answer depends on Accept-Encoding, whichever is sent */
    if (!accepts_gzip(q->accept_encoding))
        return;
    char candidate[PATH_MAX + 4], real[PATH_MAX + 4];
    int n = snprintf(candidate, sizeof(candidate), "%s.gz", f->path);
    if (n < 0 || (size_t)n >= PATH_MAX)
        return;
    if (!resolve_inside(cfg, candidate, f->root, strlen(f->root), real))
        return;
    struct stat st;
    int fd = open_regular(real, &st);
    if (fd < 0)
        return;
    close(f->fd);
    f->fd = fd;
    f->st = st;
    f->gzip = true;
    memcpy(f->path, real, strlen(real) + 1);
}

static bool regexp_matches(const struct expires *e, const char *s, size_t len)
{
    return e->rx && regexp_match(e->rx, s, len);
}

/* The first rule that matches, in uWSGI's order: file name, PATH_INFO, REQUEST_URI, type. */
static time_t expires_of(const struct gy_config *cfg, const struct static_request *q,
                         const struct static_file *f, const char *orig_path)
{
    static const enum gy_expires_on order[] = { EXPIRES_FILENAME, EXPIRES_PATH_INFO, EXPIRES_URI,
                                                EXPIRES_TYPE };
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        for (int i = 0; i < cfg->nstatic_expires; i++) {
            const struct gy_expires_rule *r = &cfg->static_expires[i];
            const struct expires *e = &ST.expires[i];
            if (r->on != order[k])
                continue;
            bool match = false;
            if (r->on == EXPIRES_FILENAME)
                match = regexp_matches(e, orig_path, strlen(orig_path));
            else if (r->on == EXPIRES_PATH_INFO)
                match = regexp_matches(e, q->path_info.ptr, q->path_info.len);
            else if (r->on == EXPIRES_URI)
                match = regexp_matches(e, q->uri.ptr, q->uri.len);
            else
                match = f->type && strlen(f->type) == e->type_len &&
                        strncasecmp(f->type, e->type, e->type_len) == 0;
            if (match)
                return (r->from_mtime ? f->st.st_mtime : q->now) + e->seconds;
        }
    }
    return 0;
}

bool static_open(const struct gy_config *cfg, const struct static_request *q, struct static_file *f)
{
    prepare(cfg);
    f->gzip = f->vary = false;
    f->fd = open_regular(f->path, &f->st);
    if (f->fd < 0) {
        log_errno("static files: open(%s)", f->path);
        return false;
    }
    char orig[PATH_MAX + 4];
    memcpy(orig, f->path, strlen(f->path) + 1);
    f->type = mime_type_of(orig, strlen(orig)); /* of FILE: FILE.gz is its encoding */
    pick_gzip(cfg, q, f);
    f->expires = expires_of(cfg, q, f, orig);
    uint64_t size = (uint64_t)f->st.st_size;
    f->status = 200;
    f->offset = 0;
    f->length = size;
    if (q->if_modified_since.len) {
        time_t ims = static_parse_http_date(q->if_modified_since.ptr, q->if_modified_since.len);
        if (ims >= 0 && f->st.st_mtime <= ims) {
            f->status = 304;
            f->length = 0;
            return true;
        }
    }
    /* If-Range names a version of the file: honouring the Range only when it matches is
     * optional (RFC 9110 13.1.5); sending the whole file is always right. */
    uint64_t from, to;
    int range = q->range.len && !q->if_range.len ? static_parse_range(q->range, size, &from, &to)
                                                 : 0;
    if (range < 0) {
        f->status = 416;
        f->length = 0;
    } else if (range > 0) {
        f->status = 206;
        f->offset = from;
        f->length = to - from + 1;
    }
    return true;
}

void static_close(struct static_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

int64_t static_content_length(const struct static_file *f)
{
    return f->status == 304 ? -1 : (int64_t)f->length;
}

static size_t http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return 0;
    return strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int header(struct gy_response *r, const char *name, const char *value)
{
    char line[PATH_MAX + 64];
    int n = snprintf(line, sizeof(line), "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= sizeof(line))
        return 0;
    r->nheaders++;
    return resp_head_append(r, line, (size_t)n);
}

static const char *status_line(int status)
{
    switch (status) {
    case 206:
        return "206 Partial Content";
    case 304:
        return "304 Not Modified";
    case 416:
        return "416 Range Not Satisfiable";
    default:
        return "200 OK";
    }
}

int static_head(const struct static_file *f, struct gy_response *r, const char *status_prefix)
{
    r->head_len = 0;
    r->nheaders = 0;
    r->status = f->status;
    r->started = true;
    r->has_content_length = false;
    r->length = -1;
    const char *sl = status_line(f->status);
    if (resp_head_append(r, status_prefix, strlen(status_prefix)) < 0 ||
        resp_head_append(r, sl, strlen(sl)) < 0 || RESP_HEAD_APPEND_LIT(r, "\r\n") < 0)
        return -1;
    char v[128];
    int rc = 0;
    if (f->type && f->status != 416 && f->status != 304)
        rc |= header(r, "Content-Type", f->type);
    if (f->gzip && f->status != 416 && f->status != 304)
        rc |= header(r, "Content-Encoding", "gzip");
    if (f->vary)
        rc |= header(r, "Vary", "Accept-Encoding");
    if (http_date(f->st.st_mtime, v, sizeof(v)))
        rc |= header(r, "Last-Modified", v);
    if (f->expires && http_date(f->expires, v, sizeof(v)))
        rc |= header(r, "Expires", v);
    if (f->status == 206) {
        snprintf(v, sizeof(v), "bytes %llu-%llu/%llu", (unsigned long long)f->offset,
                 (unsigned long long)(f->offset + f->length - 1),
                 (unsigned long long)f->st.st_size);
        rc |= header(r, "Content-Range", v);
    } else if (f->status == 416) {
        snprintf(v, sizeof(v), "bytes */%llu", (unsigned long long)f->st.st_size);
        rc |= header(r, "Content-Range", v);
    }
    if (f->status != 304)
        rc |= header(r, "Accept-Ranges", "bytes");
    return rc < 0 ? -1 : 0;
}

/* ---- parsing request headers ------------------------------------------------------------ */

time_t static_parse_http_date(const char *p, size_t len)
{
    char buf[64];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    struct tm tm = { 0 };
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0')
        return -1;
    return timegm(&tm);
}

static bool parse_u64(const char *p, const char *end, uint64_t *out)
{
    int64_t v;
    if (p == end || gy_parse_decimal(p, (size_t)(end - p), &v) < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

int static_parse_range(struct gy_slice v, uint64_t size, uint64_t *from, uint64_t *to)
{
    static const char unit[] = "bytes=";
    const char *p = v.ptr, *end = v.ptr + v.len;
    if (v.len < sizeof(unit) - 1 || strncasecmp(p, unit, sizeof(unit) - 1) != 0)
        return 0;
    p += sizeof(unit) - 1;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    if (memchr(p, ',', (size_t)(end - p)))
        return 0; /* several ranges: the whole file is a valid answer (RFC 9110 14.2) */
    const char *dash = memchr(p, '-', (size_t)(end - p));
    if (!dash)
        return 0;
    uint64_t a, b;
    if (dash == p) { /* bytes=-N: the last N bytes */
        if (!parse_u64(dash + 1, end, &b))
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (!parse_u64(p, dash, &a))
        return 0;
    if (dash + 1 == end) {
        b = UINT64_MAX;
    } else if (!parse_u64(dash + 1, end, &b) || b < a) {
        return 0;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = b >= size ? size - 1 : b;
    return 1;
}

/* ---- serving, in a core ----------------------------------------------------------------- */

static void request_of(const struct gy_conn *c, struct static_request *q)
{
    *q = (struct static_request){ .now = time(NULL) };
    for (uint32_t i = 0; i < c->nparams; i++) {
        const struct gy_param *p = &c->params[i];
        struct gy_slice n = p->name;
        if (GY_SLICE_EQ(n, "REQUEST_METHOD"))
            q->method = p->value;
        else if (GY_SLICE_EQ(n, "PATH_INFO"))
            q->path_info = p->value;
        else if (GY_SLICE_EQ(n, "REQUEST_URI"))
            q->uri = p->value;
        else if (GY_SLICE_EQ(n, "DOCUMENT_ROOT"))
            q->document_root = p->value;
        else if (GY_SLICE_EQ(n, "HTTP_IF_MODIFIED_SINCE"))
            q->if_modified_since = p->value;
        else if (GY_SLICE_EQ(n, "HTTP_RANGE"))
            q->range = p->value;
        else if (GY_SLICE_EQ(n, "HTTP_IF_RANGE"))
            q->if_range = p->value;
        else if (GY_SLICE_EQ(n, "HTTP_ACCEPT_ENCODING"))
            q->accept_encoding = p->value;
    }
}

static enum io_result send_answer(struct gy_conn *c, struct gy_response *r, struct static_file *f,
                                  bool head_only)
{
    const struct gy_protocol *proto = c->proto;
    if (static_head(f, r, proto->status_prefix) < 0)
        return IO_FAILED;
    r->head_only = head_only || !resp_has_body(r);
    if (proto->head_finish(c, r, static_content_length(f)) < 0)
        return IO_FAILED;
    struct iovec head = { r->head, r->head_len };
    r->head_sent = true;
    enum io_result rc = proto->send(c, &head, NULL, 0);
    r->body_sent = f->length; /* the log line's size: what a GET gets */
    if (rc != IO_OK || r->head_only || f->length == 0)
        return rc;
    uint64_t sent = 0;
    rc = proto->send_file(c, f->fd, (off_t)f->offset, f->length, &sent);
    r->body_out += sent;
    return rc;
}

bool static_serve(const struct gy_config *cfg, struct gy_conn *c, struct gy_response *r,
                  enum io_result *io, bool *complete)
{
    if (!static_enabled(cfg))
        return false;
    struct static_request q;
    request_of(c, &q);
    struct static_file f;
    if (!static_find(cfg, &q, &f) || !static_open(cfg, &q, &f))
        return false;
    enum io_result rc = send_answer(c, r, &f, GY_SLICE_EQ(q.method, "HEAD"));
    *io = rc;
    *complete = rc == IO_OK && (r->head_only || r->body_out == f.length);
    if (rc == IO_FAILED)
        log_msg("static files: out of memory answering for %s: connection dropped", f.path);
    else if (rc == IO_ERROR)
        log_errno("static files: sending %s", f.path);
    else if (rc == IO_OK && !*complete)
        log_msg("static files: %s shrank while it was sent (%llu of %llu bytes): connection "
                "dropped",
                f.path, (unsigned long long)r->body_out, (unsigned long long)f.length);
    else if (rc == IO_CLOSED || rc == IO_TIMEOUT)
        log_msg("static files: the client went away (or timed out) during %s", f.path);
    static_close(&f);
    return true;
}
