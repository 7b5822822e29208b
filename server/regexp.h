/*
 * Regular expressions of the options (regexp.c): uWSGI's are PCRE, so gyre's are PCRE2, for
 * every option that takes one and only asks "does it match": --static-expires*, --static-gzip,
 * --log-route, --log-req-route, --log-drain, --log-filter. (--route needs the captures and
 * keeps its own compiled patterns: route.c.) Plain C.
 */
#ifndef GYRE_REGEXP_H
#define GYRE_REGEXP_H

#include <stdbool.h>
#include <stddef.h>

struct gy_regexp;

/* Compile pattern[0..len); NULL with what is wrong in err. */
struct gy_regexp *regexp_compile(const char *pattern, size_t len, char *err, size_t errlen);
/* Does re match somewhere in text[0..len)? (No NUL needed; a match error is no match.) */
bool regexp_match(const struct gy_regexp *re, const char *text, size_t len);
void regexp_free(struct gy_regexp *re);

#endif
