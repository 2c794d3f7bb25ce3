/* Backend URL parsing: memory://[name], redis://[user:pass@]host[:port][/db],
 * unix:///path[?db=N]; both Redis forms accept ?connect_timeout=ms&timeout=ms. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

void rq_url_clear(rq_url *u) {
    rq_free(u->name);
    rq_free(u->host);
    rq_free(u->path);
    rq_free(u->user);
    rq_free(u->password);
    memset(u, 0, sizeof *u);
}

/* Copy [s, s+n) as a new string with %XX escapes decoded (passwords may
 * contain '@' or ':'). */
static char *url_decode(const char *s, size_t n) {
    char *out = rq_malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (end == hex + 2) {
                *o++ = (char)v;
                i += 2;
                continue;
            }
        }
        *o++ = s[i];
    }
    *o = '\0';
    return out;
}

static int parse_int(const char *s, size_t n, long lo, long hi, long *out) {
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_query(rq_url *u, const char *q, const char *url) {
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        long v;
        if (!eq || parse_int(eq + 1, len - (size_t)(eq + 1 - q), 0, 86400000, &v) != 0)
            return rq_error(RUNQ_EURL, "URL %s: bad query parameter \"%.*s\" (expected name=number)",
                            url, (int)len, q);
        size_t klen = (size_t)(eq - q);
        if (klen == 15 && strncmp(q, "connect_timeout", klen) == 0)
            u->connect_timeout_ms = (int)v;
        else if (klen == 7 && strncmp(q, "timeout", klen) == 0)
            u->command_timeout_ms = (int)v;
        else if (klen == 2 && strncmp(q, "db", klen) == 0 && v <= 65535)
            u->db = (int)v;
        else
            return rq_error(RUNQ_EURL, "URL %s: unknown query parameter \"%.*s\"", url, (int)klen, q);
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

static int parse_redis(rq_url *u, const char *rest, const char *url) {
    const char *query = strchr(rest, '?');
    size_t auth_end_limit = query ? (size_t)(query - rest) : strlen(rest);
    const char *slash = memchr(rest, '/', auth_end_limit);
    size_t hostpart = slash ? (size_t)(slash - rest) : auth_end_limit;
    /* The last '@' before the path separates credentials from the host. */
    const char *at = NULL;
    for (size_t i = 0; i < hostpart; i++)
        if (rest[i] == '@') at = rest + i;
    const char *host = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon) {
            if (colon > rest) u->user = url_decode(rest, (size_t)(colon - rest));
            u->password = url_decode(colon + 1, (size_t)(at - colon - 1));
        } else {
            u->password = url_decode(rest, (size_t)(at - rest));
        }
        host = at + 1;
    }
    size_t hlen = hostpart - (size_t)(host - rest);
    const char *pcolon = NULL;
    if (hlen && host[0] == '[') { /* [::1]:6379 */
        const char *close = memchr(host, ']', hlen);
        if (!close) return rq_error(RUNQ_EURL, "URL %s: unclosed '[' in host", url);
        u->host = url_decode(host + 1, (size_t)(close - host - 1));
        if ((size_t)(close - host) + 1 < hlen) {
            if (close[1] != ':') return rq_error(RUNQ_EURL, "URL %s: junk after ']'", url);
            pcolon = close + 1;
        }
    } else {
        pcolon = memchr(host, ':', hlen);
        u->host = url_decode(host, pcolon ? (size_t)(pcolon - host) : hlen);
    }
    if (!u->host || !*u->host) return rq_error(RUNQ_EURL, "URL %s: no host", url);
    u->port = 6379;
    if (pcolon) {
        long port;
        if (parse_int(pcolon + 1, (size_t)(host + hlen - pcolon - 1), 1, 65535, &port) != 0)
            return rq_error(RUNQ_EURL, "URL %s: the port must be a number from 1 to 65535", url);
        u->port = (int)port;
    }
    if (slash) {
        size_t dlen = auth_end_limit - hostpart - 1;
        long db;
        if (dlen > 0) {
            if (parse_int(slash + 1, dlen, 0, 65535, &db) != 0)
                return rq_error(RUNQ_EURL, "URL %s: the database must be a number", url);
            u->db = (int)db;
        }
    }
    return parse_query(u, query ? query + 1 : NULL, url);
}

int rq_url_parse(rq_url *u, const char *url) {
    memset(u, 0, sizeof *u);
    u->connect_timeout_ms = -1;
    u->command_timeout_ms = -1;
    if (url == NULL) return rq_error(RUNQ_EURL, "no backend URL given");
    const char *sep = strstr(url, "://");
    if (!sep)
        return rq_error(RUNQ_EURL, "URL \"%s\" has no scheme; use memory://, redis://host:port "
                                   "or unix:///path", url);
    size_t slen = (size_t)(sep - url);
    const char *rest = sep + 3;
    int rc;
    if (slen == 6 && strncmp(url, "memory", 6) == 0) {
        u->scheme = RQ_URL_MEMORY;
        if (*rest) {
            rc = rq_name_check(rest, "memory store");
            if (rc) return rq_error(RUNQ_EURL, "URL %s: %s", url, runq_error_last());
            u->name = rq_strdup(rest);
        }
        return 0;
    }
    if (slen == 5 && strncmp(url, "redis", 5) == 0) {
        u->scheme = RQ_URL_REDIS;
        rc = parse_redis(u, rest, url);
    } else if (slen == 4 && strncmp(url, "unix", 4) == 0) {
        u->scheme = RQ_URL_UNIX;
        const char *query = strchr(rest, '?');
        size_t plen = query ? (size_t)(query - rest) : strlen(rest);
        if (plen == 0 || rest[0] != '/')
            return rq_error(RUNQ_EURL, "URL %s: expected an absolute socket path, unix:///path", url);
        u->path = url_decode(rest, plen);
        rc = parse_query(u, query ? query + 1 : NULL, url);
    } else {
        return rq_error(RUNQ_EURL, "URL \"%s\": unsupported scheme \"%.*s\" (memory, redis, unix)",
                        url, (int)slen, url);
    }
    if (rc) rq_url_clear(u);
    return rc;
}
