/* Placeholder: .ini files and UWSGI_/GYRE_ environment variables (being written). */
#include "config.h"

const char *ini_load(struct gy_config *cfg, const char *path)
{
    (void)cfg;
    (void)path;
    return ".ini files are not supported yet";
}

void env_load(struct gy_config *cfg)
{
    (void)cfg;
}
