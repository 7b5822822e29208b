/*
 * S, the server state shared by the process's parts (server.h): a file of its own so that
 * using it does not make every file depend on worker.c.
 *
 * Depends on: (no other server file)
 */
#include "server.h"

struct gy_server S;
