/*
 * Unit tests of redis_url.c: the store= URLs of a `--cache2` cache. Each good form fills the
 * struct with its defaults; each bad one is refused with a message that names the URL and the
 * part that is wrong. Pure C: no Python.
 */
#include "redis_url.h"
#include "testlib.h"

#include <string.h>

static struct redis_url good(const char *url)
{
    struct redis_url u;
    char err[512] = "";
    TEST_CONTEXT("%s", url);
    if (!CHECK_EQ_INT(redis_url_parse(url, &u, err, sizeof(err)), 0))
        printf("  %s\n", err);
    return u;
}

/* Refused, with `why` somewhere in the message and the URL itself at its start. */
static void bad(const char *url, const char *why)
{
    struct redis_url u;
    char err[512] = "";
    TEST_CONTEXT("%s", url);
    CHECK_EQ_INT(redis_url_parse(url, &u, err, sizeof(err)), -1);
    CHECK(strncmp(err, url, strlen(url)) == 0);
    if (!CHECK(strstr(err, why)))
        printf("  got: %s\n", err);
}

TEST(schemes_are_recognised)
{
    CHECK(redis_url_is_redis("redis://h"));
    CHECK(redis_url_is_redis("redis+unix:///s"));
    CHECK(redis_url_is_redis("unix:///s"));
    CHECK(!redis_url_is_redis("rediss://h"));
    CHECK(!redis_url_is_redis("local"));
    CHECK(!redis_url_is_redis(""));
}

TEST(tcp_defaults)
{
    struct redis_url u = good("redis://cache.example");
    CHECK_EQ_STR(u.host, "cache.example");
    CHECK_EQ_INT(u.port, 6379);
    CHECK_EQ_INT(u.db, 0);
    CHECK_EQ_STR(u.path, "");
    CHECK(u.timeout == REDIS_URL_DEFAULT_TIMEOUT);
}

TEST(tcp_port_db_and_options)
{
    struct redis_url u = good("redis://10.0.0.7:6380/3");
    CHECK_EQ_STR(u.host, "10.0.0.7");
    CHECK_EQ_INT(u.port, 6380);
    CHECK_EQ_INT(u.db, 3);
    u = good("redis://h:1/?timeout=0.25");
    CHECK_EQ_INT(u.port, 1);
    CHECK_EQ_INT(u.db, 0);
    CHECK(u.timeout == 0.25);
    u = good("redis://h?db=5&timeout=10");
    CHECK_EQ_INT(u.db, 5);
    CHECK(u.timeout == 10.0);
    u = good("redis://h:65535/");
    CHECK_EQ_INT(u.port, 65535);
}

TEST(tcp_ipv6_in_brackets)
{
    struct redis_url u = good("redis://[::1]:7000/2");
    CHECK_EQ_STR(u.host, "::1");
    CHECK_EQ_INT(u.port, 7000);
    CHECK_EQ_INT(u.db, 2);
    u = good("redis://[fe80::1]");
    CHECK_EQ_STR(u.host, "fe80::1");
    CHECK_EQ_INT(u.port, 6379);
}

TEST(unix_sockets)
{
    struct redis_url u = good("redis+unix:///run/redis/redis.sock");
    CHECK_EQ_STR(u.path, "/run/redis/redis.sock");
    CHECK_EQ_STR(u.host, "");
    CHECK_EQ_INT(u.db, 0);
    u = good("unix:///tmp/r.sock?db=9&timeout=1.5");
    CHECK_EQ_STR(u.path, "/tmp/r.sock");
    CHECK_EQ_INT(u.db, 9);
    CHECK(u.timeout == 1.5);
}

TEST(bad_hosts_and_ports)
{
    bad("redis://", "no host");
    bad("redis://:6379", "no host");
    bad("redis://h:0", "not a port");
    bad("redis://h:65536", "not a port");
    bad("redis://h:", "not a port");
    bad("redis://h:63x9", "not a port");
    bad("redis://[::1", "without ']'");
    bad("redis://[::1]x", "unexpected 'x'");
    bad("redis://user:secret@h", "password");
    bad("redis://:secret@h:6379/0", "password");
}

TEST(bad_databases_and_options)
{
    bad("redis://h/x", "not a database number");
    bad("redis://h/-1", "not a database number");
    bad("redis://h/1?db=2", "given twice");
    bad("redis://h?db=", "not a database number");
    bad("redis://h?timeout=0", "timeout=0");
    bad("redis://h?timeout=-1", "timeout=-1");
    bad("redis://h?timeout=nan", "timeout=nan");
    bad("redis://h?timeout=3600.5", "timeout=3600.5");
    bad("redis://h?timeout", "has no value");
    bad("redis://h?password=x", "unknown option 'password'");
}

TEST(bad_unix_paths)
{
    bad("redis+unix://relative.sock", "absolute path");
    bad("redis+unix://", "absolute path");
    bad("unix://?db=1", "absolute path");
    char url[160] = "redis+unix:///";
    memset(url + strlen(url), 'a', 120);
    url[sizeof(url) - 1] = '\0';
    bad(url, "longer than 107 bytes");
    bad("redis+unix:///s?db=1&db=2", "given twice");
}

TEST(not_redis_at_all)
{
    bad("memcached://h", "not a Redis URL");
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
