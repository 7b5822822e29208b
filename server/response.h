/*
 * A response as the cores build it and the protocols frame it: the serialised head and what
 * was promised and sent of the body. Plain C: the protocols see it without Python.
 */
#ifndef GYRE_RESPONSE_H
#define GYRE_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gy_response {
    char *head; /* status line + headers, serialised by start_response */
    size_t head_len, head_cap;
    int status;
    bool started; /* start_response called */
    bool head_sent;
    bool has_content_length;
    bool head_only;     /* HEAD request: no body bytes on the wire */
    int64_t length;     /* the head's Content-Length (the app's or gyre's); -1: none */
    uint64_t body_sent; /* body bytes the app produced (also for HEAD) */
    uint64_t body_out;  /* body bytes handed to the wire: never more than length */
    uint32_t nheaders;
    bool cut; /* a write failed (--disable-write-exception): later writes are dropped */
};

/* response.c. Append n bytes to the head; -1 when out of memory (errno ENOMEM). */
int resp_head_append(struct gy_response *r, const char *p, size_t n);
/* Make room for `more` bytes of head; -1 when out of memory. */
int resp_head_reserve(struct gy_response *r, size_t more);
/* Append "Content-Length: N" unless content_length < 0, the app gave one, or the status has
 * no body; -1 when out of memory. */
int resp_head_content_length(struct gy_response *r, int64_t content_length);
/* Append a string literal: its length counted by the compiler, not by hand. */
#define RESP_HEAD_APPEND_LIT(r, lit) resp_head_append((r), "" lit, sizeof(lit) - 1)
/* 1xx, 204 and 304 have no body (RFC 9110 6.4.1). */
bool resp_status_has_body(int status);
static inline bool resp_has_body(const struct gy_response *r)
{
    return resp_status_has_body(r->status);
}

#endif
