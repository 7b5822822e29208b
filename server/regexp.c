/*
 * The options' regular expressions, with PCRE2 as uWSGI's are PCRE (regexp.h).
 *
 * Depends on: (no other server file)
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regexp.h"

#include <pcre2.h>
#include <stdio.h>

struct gy_regexp *regexp_compile(const char *pattern, size_t len, char *err, size_t errlen)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, (PCRE2_SIZE)len, 0, &code, &off, NULL);
    if (!re) {
        char msg[128];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(err, errlen, "not a valid regular expression (PCRE) at offset %zu: %s",
                 (size_t)off, msg);
        return NULL;
    }
    /* Matching runs often (every log line with --log-route): compile it to machine code
     * when PCRE2 can; an interpreter is the fallback, not an error. */
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return (struct gy_regexp *)re;
}

bool regexp_match(const struct gy_regexp *re, const char *text, size_t len)
{
    /* One match block per thread (the log's capture thread matches too), made once: no
     * allocation per match. It needs no room for captures: nobody asks for them. */
    static _Thread_local pcre2_match_data *md;
    if (!md && !(md = pcre2_match_data_create(1, NULL)))
        return false;
    return pcre2_match((const pcre2_code *)re, (PCRE2_SPTR)text, (PCRE2_SIZE)len, 0, 0, md, NULL) >=
           0;
}

void regexp_free(struct gy_regexp *re)
{
    pcre2_code_free((pcre2_code *)re);
}
