/* SHA-1, only to name server scripts the way Redis does (EVALSHA), so that
 * no round trip is needed to learn a script's name. Not for security. */
#ifndef RUNQ_REDIS_SHA1_H
#define RUNQ_REDIS_SHA1_H

#include <stddef.h>

/* hex receives 40 lowercase hex digits and a NUL. */
void rq_sha1_hex(char hex[41], const void *data, size_t len);

#endif
