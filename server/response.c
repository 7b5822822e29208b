/*
 * The response head's bytes: appended by start_response (wsgi.c) and by the protocols'
 * head_finish (proto_*.c), one growing buffer per core, reused from request to request.
 *
 * Depends on: (no other server file)
 */
#include "response.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int resp_head_reserve(struct gy_response *r, size_t more)
{
    if (r->head_len + more <= r->head_cap)
        return 0;
    size_t cap = r->head_cap ? r->head_cap : 512;
    while (cap < r->head_len + more)
        cap *= 2;
    char *p = realloc(r->head, cap);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    r->head = p;
    r->head_cap = cap;
    return 0;
}

int resp_head_append(struct gy_response *r, const char *p, size_t n)
{
    if (resp_head_reserve(r, n) < 0)
        return -1;
    memcpy(r->head + r->head_len, p, n);
    r->head_len += n;
    return 0;
}

bool resp_status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

int resp_head_content_length(struct gy_response *r, int64_t content_length)
{
    if (content_length < 0 || r->has_content_length || !resp_status_has_body(r->status))
        return 0;
    char line[48];
    int n = snprintf(line, sizeof(line), "Content-Length: %lld\r\n", (long long)content_length);
    r->has_content_length = true;
    r->length = content_length;
    return resp_head_append(r, line, (size_t)n);
}
