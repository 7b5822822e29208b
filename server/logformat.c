/* Placeholder: --log-format (being written). */
#include "log.h"

#include <stdio.h>

const char *logformat_compile(const char *fmt)
{
    (void)fmt;
    return "--log-format is not supported yet";
}

size_t logformat_render(const struct log_fields *f, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%.*s %.*s %d\n", f->method_len, f->method, f->uri_len, f->uri,
                     f->status);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
