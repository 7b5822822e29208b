/*
 * PEP 3333's environ: the request's CGI params as a dict, plus the wsgi.* keys.
 *
 * Depends on: server.c, wsgi_filewrapper.c (server/README)
 */
#include "proto.h"
#include "server.h"
#include "wsgi.h"

#include <string.h>
#include <unistd.h>

static struct {
    PyObject *wsgi_version, *stderr_obj;
    PyObject *s_http, *s_https, *s_empty, *s_get, *s_localhost, *s_80, *s_http11;
    PyObject *k_wsgi_version, *k_url_scheme, *k_input, *k_errors, *k_multithread, *k_multiprocess,
        *k_run_once, *k_file_wrapper, *k_input_terminated, *k_core;
    PyObject *k_uwsgi_core, *k_uwsgi_node, *k_uwsgi_version, *uwsgi_node, *uwsgi_version;
    PyObject *k_script_name, *k_path_info, *k_query_string, *k_request_method, *k_server_name,
        *k_server_port, *k_server_protocol, *k_content_type;
} W;

/* ---- interned environ keys ---------------------------------------------------------------- */

/* CGI names repeat on every request: keep each as one interned str, found by its bytes. The
 * table only grows to a fixed size so that a client inventing header names cannot grow it. */
#define KEY_SLOTS 512
#define KEY_MAX_ENTRIES 384
#define KEY_MAX_LEN 64

static struct key_slot {
    uint32_t hash;
    uint32_t len;
    char name[KEY_MAX_LEN];
    PyObject *str;
} key_table[KEY_SLOTS];
static int key_entries;

static uint32_t key_hash(const char *p, uint32_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* A new reference to the str for a CGI name. */
static PyObject *environ_key(struct gy_slice name)
{
    if (name.len > KEY_MAX_LEN)
        return PyUnicode_DecodeLatin1(name.ptr, name.len, NULL);
    uint32_t h = key_hash(name.ptr, name.len);
    for (uint32_t i = 0; i < KEY_SLOTS; i++) {
        struct key_slot *s = &key_table[(h + i) % KEY_SLOTS];
        if (!s->str) {
            PyObject *k = PyUnicode_DecodeLatin1(name.ptr, name.len, NULL);
            if (!k || key_entries >= KEY_MAX_ENTRIES)
                return k;
            PyUnicode_InternInPlace(&k);
            s->hash = h;
            s->len = name.len;
            memcpy(s->name, name.ptr, name.len);
            s->str = k;
            key_entries++;
            Py_INCREF(k);
            return k;
        }
        if (s->hash == h && s->len == name.len && memcmp(s->name, name.ptr, name.len) == 0) {
            Py_INCREF(s->str);
            return s->str;
        }
    }
    return PyUnicode_DecodeLatin1(name.ptr, name.len, NULL);
}

/* ---- shared environ values ------------------------------------------------------------------ */

/*
 * Most values repeat too (GET, HTTP/1.1, the port, the server name, the host, Accept, the
 * client's address behind nginx): a short value is shared through a small direct-mapped table
 * of str found by their bytes, so a request builds few strings and a parked one holds few of
 * its own. Values that never repeat (a query string, a cookie) just replace each other's slot:
 * the table stays VALUE_SLOTS strings whatever clients send. A str is immutable, so a request
 * cannot change another's value through the shared object.
 */
#define VALUE_SLOTS 256
#define VALUE_MAX_LEN 48

static struct value_slot {
    uint32_t len;
    char bytes[VALUE_MAX_LEN];
    PyObject *str;
} value_table[VALUE_SLOTS];

/* A new reference to the str for a CGI value. */
static PyObject *environ_value(struct gy_slice v)
{
    if (v.len > VALUE_MAX_LEN)
        return PyUnicode_DecodeLatin1(v.ptr, v.len, NULL);
    struct value_slot *s = &value_table[key_hash(v.ptr, v.len) % VALUE_SLOTS];
    if (s->str && s->len == v.len && memcmp(s->bytes, v.ptr, v.len) == 0)
        return Py_NewRef(s->str);
    PyObject *str = PyUnicode_DecodeLatin1(v.ptr, v.len, NULL);
    if (!str)
        return NULL;
    Py_XSETREF(s->str, Py_NewRef(str));
    s->len = v.len;
    memcpy(s->bytes, v.ptr, v.len);
    return str;
}

static PyObject *intern_cstr(const char *s)
{
    struct gy_slice sl = { s, (uint32_t)strlen(s) };
    return environ_key(sl);
}

/* ---- the environ -------------------------------------------------------------------------- */

static int set_item(PyObject *env, PyObject *key, PyObject *value)
{
    if (!key || !value) {
        Py_XDECREF(key);
        Py_XDECREF(value);
        return -1;
    }
    int rc = PyDict_SetItem(env, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return rc;
}

static int set_default(PyObject *env, PyObject *key, PyObject *value)
{
    PyObject *r = PyDict_SetDefault(env, key, value);
    return r ? 0 : -1;
}

PyObject *environ_build(struct gy_core *c, struct req_facts *f, PyObject *input)
{
    const struct gy_conn *conn = c->conn;
    PyObject *env = PyDict_New();
    if (!env)
        return NULL;
    if (!c->id_obj && !(c->id_obj = PyLong_FromLong(c->id))) {
        Py_DECREF(env);
        return NULL;
    }
    *f = (struct req_facts){ .method = -1, .uri = -1, .path_info = -1, .addr = -1, .proto = -1 };
    struct gy_slice http_content_type = { NULL, 0 };
    bool have_content_type = false;

    for (uint32_t i = 0; i < conn->nparams; i++) {
        const struct gy_param *p = &conn->params[i];
        struct gy_slice n = p->name;
        /* PEP 3333: the body's type and length are CONTENT_TYPE and CONTENT_LENGTH only. */
        static const char http_content[] = "HTTP_CONTENT_";
        if (n.len > sizeof(http_content) - 1 &&
            memcmp(n.ptr, http_content, sizeof(http_content) - 1) == 0) {
            if (GY_SLICE_EQ(n, "HTTP_CONTENT_TYPE")) {
                http_content_type = p->value;
                continue;
            }
            if (GY_SLICE_EQ(n, "HTTP_CONTENT_LENGTH"))
                continue;
        }
        switch (n.ptr[0]) {
        case 'R':
            if (GY_SLICE_EQ(n, "REQUEST_METHOD"))
                f->method = (int)i;
            else if (GY_SLICE_EQ(n, "REQUEST_URI"))
                f->uri = (int)i;
            else if (GY_SLICE_EQ(n, "REMOTE_ADDR"))
                f->addr = (int)i;
            break;
        case 'P':
            if (GY_SLICE_EQ(n, "PATH_INFO"))
                f->path_info = (int)i;
            break;
        case 'S':
            if (GY_SLICE_EQ(n, "SERVER_PROTOCOL"))
                f->proto = (int)i;
            break;
        case 'C':
            if (GY_SLICE_EQ(n, "CONTENT_TYPE"))
                have_content_type = true;
            break;
        case 'H':
            /* "on" as nginx sends it, or "1"; "off" and "" are plain http, as CGI has it. */
            if (GY_SLICE_EQ(n, "HTTPS"))
                f->https = (p->value.len == 2 && (p->value.ptr[0] | 0x20) == 'o' &&
                            (p->value.ptr[1] | 0x20) == 'n') ||
                           GY_SLICE_EQ(p->value, "1");
            break;
        case 'U':
            if (GY_SLICE_EQ(n, "UWSGI_SCHEME"))
                f->scheme = p->value;
            break;
        }
        if (set_item(env, environ_key(n), environ_value(p->value)) < 0)
            goto fail;
    }
    if (!have_content_type && http_content_type.ptr &&
        set_item(env, Py_NewRef(W.k_content_type),
                 PyUnicode_DecodeLatin1(http_content_type.ptr, http_content_type.len, NULL)) < 0)
        goto fail;

    /* Keys PEP 3333 requires even when the front end did not send them. */
    if (set_default(env, W.k_script_name, W.s_empty) < 0 ||
        set_default(env, W.k_path_info, W.s_empty) < 0 ||
        set_default(env, W.k_query_string, W.s_empty) < 0 ||
        set_default(env, W.k_request_method, W.s_get) < 0 ||
        set_default(env, W.k_server_name, W.s_localhost) < 0 ||
        set_default(env, W.k_server_port, W.s_80) < 0 ||
        set_default(env, W.k_server_protocol, W.s_http11) < 0)
        goto fail;

    PyObject *scheme;
    if (f->scheme.len)
        scheme = PyUnicode_DecodeLatin1(f->scheme.ptr, f->scheme.len, NULL);
    else
        scheme = Py_NewRef(f->https ? W.s_https : W.s_http);
    if (set_item(env, Py_NewRef(W.k_url_scheme), scheme) < 0 ||
        PyDict_SetItem(env, W.k_input, input) < 0 || PyDict_SetItem(env, W.k_core, c->id_obj) < 0 ||
        /* as uWSGI, only where there are several cores to tell apart */
        (S.ncores > 1 && PyDict_SetItem(env, W.k_uwsgi_core, c->id_obj) < 0) ||
        PyDict_SetItem(env, W.k_uwsgi_node, W.uwsgi_node) < 0 ||
        PyDict_SetItem(env, W.k_uwsgi_version, W.uwsgi_version) < 0 ||
        PyDict_SetItem(env, W.k_wsgi_version, W.wsgi_version) < 0 ||
        PyDict_SetItem(env, W.k_errors, W.stderr_obj) < 0 ||
        PyDict_SetItem(env, W.k_multithread,
                       S.cfg->thread_cores && S.ncores > 1 ? Py_True : Py_False) < 0 ||
        PyDict_SetItem(env, W.k_multiprocess, Py_False) < 0 ||
        PyDict_SetItem(env, W.k_run_once, Py_False) < 0 ||
        PyDict_SetItem(env, W.k_input_terminated, Py_True) < 0 ||
        PyDict_SetItem(env, W.k_file_wrapper, filewrapper_type()) < 0)
        goto fail;
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}

struct gy_slice environ_param(const struct gy_conn *conn, int index, const char *dflt)
{
    if (index < 0)
        return (struct gy_slice){ dflt, (uint32_t)strlen(dflt) };
    return conn->params[index].value;
}

int environ_init(void)
{
    PyObject *sys_stderr = PySys_GetObject("stderr");
    W.stderr_obj = Py_XNewRef(sys_stderr);
    W.wsgi_version = Py_BuildValue("(ii)", 1, 0);
    W.s_http = intern_cstr("http");
    W.s_https = intern_cstr("https");
    W.s_empty = PyUnicode_FromString("");
    W.s_get = intern_cstr("GET");
    W.s_localhost = intern_cstr("localhost");
    W.s_80 = intern_cstr("80");
    W.s_http11 = intern_cstr("HTTP/1.1");
    W.k_wsgi_version = intern_cstr("wsgi.version");
    W.k_url_scheme = intern_cstr("wsgi.url_scheme");
    W.k_input = intern_cstr("wsgi.input");
    W.k_errors = intern_cstr("wsgi.errors");
    W.k_multithread = intern_cstr("wsgi.multithread");
    W.k_multiprocess = intern_cstr("wsgi.multiprocess");
    W.k_run_once = intern_cstr("wsgi.run_once");
    W.k_file_wrapper = intern_cstr("wsgi.file_wrapper");
    W.k_input_terminated = intern_cstr("wsgi.input_terminated");
    W.k_core = intern_cstr("gyre.core");
    /* uWSGI's own keys, which apps read: the core, the host name and the version (bytes) */
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    W.k_uwsgi_core = intern_cstr("uwsgi.core");
    W.k_uwsgi_node = intern_cstr("uwsgi.node");
    W.k_uwsgi_version = intern_cstr("uwsgi.version");
    W.uwsgi_node = PyBytes_FromString(host);
    W.uwsgi_version = PyBytes_FromString(UWSGI_VERSION_STRING);
    W.k_script_name = intern_cstr("SCRIPT_NAME");
    W.k_path_info = intern_cstr("PATH_INFO");
    W.k_query_string = intern_cstr("QUERY_STRING");
    W.k_request_method = intern_cstr("REQUEST_METHOD");
    W.k_server_name = intern_cstr("SERVER_NAME");
    W.k_server_port = intern_cstr("SERVER_PORT");
    W.k_server_protocol = intern_cstr("SERVER_PROTOCOL");
    W.k_content_type = intern_cstr("CONTENT_TYPE");
    if (PyErr_Occurred() || !W.stderr_obj)
        return -1;
    return 0;
}
