/* Wire format v1 of a job (docs/protocol.md): a msgpack map with short
 * string keys. Unknown keys are skipped so that later minor versions can add
 * fields; a different "v" is refused. */
#include "job.h"

#include <msgpack.h>
#include <stddef.h>
#include <string.h>

static void pack_key(msgpack_packer *pk, const char *k) {
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
}

static void pack_str(msgpack_packer *pk, const char *k, const char *v) {
    pack_key(pk, k);
    size_t n = strlen(v);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, v, n);
}

static void pack_int(msgpack_packer *pk, const char *k, int64_t v) {
    pack_key(pk, k);
    msgpack_pack_int64(pk, v);
}

static void pack_bin(msgpack_packer *pk, const char *k, const void *v, size_t n) {
    pack_key(pk, k);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, v, n);
}

int rq_wire_encode(uint8_t **out, size_t *out_len, const runq_job *job) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = 13 + (job->unique_key != NULL) + (job->result != NULL) + (job->error != NULL);
    msgpack_pack_map(&pk, n);
    pack_int(&pk, "v", RUNQ_WIRE_VERSION);
    pack_str(&pk, "id", job->id);
    pack_str(&pk, "task", job->task);
    pack_str(&pk, "queue", job->queue);
    pack_bin(&pk, "args", job->args, job->args_len);
    pack_int(&pk, "state", job->state);
    pack_int(&pk, "attempt", job->attempt);
    pack_int(&pk, "max_retries", job->max_retries);
    pack_int(&pk, "priority", job->priority);
    pack_int(&pk, "created", job->created_ms);
    pack_int(&pk, "eta", job->eta_ms);
    pack_int(&pk, "timeout", job->timeout_ms);
    pack_int(&pk, "deadline", job->deadline_ms);
    if (job->unique_key) pack_str(&pk, "unique", job->unique_key);
    if (job->result) pack_bin(&pk, "result", job->result, job->result_len);
    if (job->error) pack_str(&pk, "error", job->error);
    *out = NULL;
    *out_len = 0;
    if (sb.size) {
        *out = rq_memdup(sb.data, sb.size);
        *out_len = sb.size;
    }
    msgpack_sbuffer_destroy(&sb);
    return *out ? 0 : rq_error(RUNQ_ENOMEM, "out of memory");
}

/* Decoding: every field is checked for its type; the error names the field
 * so a corrupt job can be dead-lettered with a useful reason. */
typedef struct wire_field {
    const char *key;
    enum { W_STR, W_BIN, W_INT } type;
    size_t offset;   /* into runq_job */
    size_t len_off;  /* W_BIN: offset of the length */
    int int_size;    /* W_INT: 4 or 8 */
    bool required;
} wire_field;

#define OFF(f) offsetof(runq_job, f)
static const wire_field wire_fields[] = {
    {"task", W_STR, OFF(task), 0, 0, true},
    {"queue", W_STR, OFF(queue), 0, 0, true},
    {"args", W_BIN, OFF(args), OFF(args_len), 0, true},
    {"state", W_INT, OFF(state), 0, sizeof(runq_job_state), false},
    {"attempt", W_INT, OFF(attempt), 0, 4, false},
    {"max_retries", W_INT, OFF(max_retries), 0, 4, false},
    {"priority", W_INT, OFF(priority), 0, 4, false},
    {"created", W_INT, OFF(created_ms), 0, 8, false},
    {"eta", W_INT, OFF(eta_ms), 0, 8, false},
    {"timeout", W_INT, OFF(timeout_ms), 0, 8, false},
    {"deadline", W_INT, OFF(deadline_ms), 0, 8, false},
    {"unique", W_STR, OFF(unique_key), 0, 0, false},
    {"result", W_BIN, OFF(result), OFF(result_len), 0, false},
    {"error", W_STR, OFF(error), 0, 0, false},
};
#define NFIELDS (sizeof wire_fields / sizeof wire_fields[0])

static bool key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

static int obj_int(const msgpack_object *o, int64_t *v) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) *v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) *v = o->via.i64;
    else return -1;
    return 0;
}

static int decode_field(runq_job *job, const wire_field *f, const msgpack_object *o) {
    char *base = (char *)job;
    int64_t v;
    switch (f->type) {
    case W_STR: {
        if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, 0, o->via.str.size))
            return rq_error(RUNQ_EPROTO, "job field \"%s\" is not a string", f->key);
        char *s = rq_malloc(o->via.str.size + 1);
        if (!s) return rq_error(RUNQ_ENOMEM, "out of memory");
        memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
        rq_free(*(char **)(base + f->offset));
        *(char **)(base + f->offset) = s;
        return 0;
    }
    case W_BIN:
        if (o->type != MSGPACK_OBJECT_BIN)
            return rq_error(RUNQ_EPROTO, "job field \"%s\" is not binary", f->key);
        return rq_job_set_buf((uint8_t **)(base + f->offset), (size_t *)(base + f->len_off),
                              o->via.bin.ptr, o->via.bin.size);
    case W_INT:
        if (obj_int(o, &v) != 0)
            return rq_error(RUNQ_EPROTO, "job field \"%s\" is not an integer", f->key);
        if (f->int_size == 4) {
            if (v < INT32_MIN || v > INT32_MAX)
                return rq_error(RUNQ_EPROTO, "job field \"%s\" is out of range", f->key);
            *(int32_t *)(base + f->offset) = (int32_t)v;
        } else {
            *(int64_t *)(base + f->offset) = v;
        }
        return 0;
    }
    return rq_error(RUNQ_EPROTO, "job field \"%s\" has an unknown type", f->key);
}

static int decode_map(runq_job *job, const msgpack_object *root) {
    if (root->type != MSGPACK_OBJECT_MAP) return rq_error(RUNQ_EPROTO, "job is not a msgpack map");
    bool seen[NFIELDS] = {false};
    bool have_version = false, have_id = false;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key, *o = &root->via.map.ptr[i].val;
        int64_t v;
        if (key_is(k, "v")) {
            if (obj_int(o, &v) != 0 || v != RUNQ_WIRE_VERSION)
                return rq_error(RUNQ_EPROTO, "job wire version is not %d", RUNQ_WIRE_VERSION);
            have_version = true;
        } else if (key_is(k, "id")) {
            if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != RUNQ_ID_LEN)
                return rq_error(RUNQ_EPROTO, "job field \"id\" is not a %d-character string", RUNQ_ID_LEN);
            memcpy(job->id, o->via.str.ptr, RUNQ_ID_LEN);
            job->id[RUNQ_ID_LEN] = '\0';
            have_id = true;
        } else {
            for (size_t f = 0; f < NFIELDS; f++) {
                if (!key_is(k, wire_fields[f].key)) continue;
                int rc = decode_field(job, &wire_fields[f], o);
                if (rc) return rc;
                seen[f] = true;
                break;
            }
        }
    }
    if (!have_version) return rq_error(RUNQ_EPROTO, "job has no wire version \"v\"");
    if (!have_id) return rq_error(RUNQ_EPROTO, "job has no \"id\"");
    for (size_t f = 0; f < NFIELDS; f++)
        if (wire_fields[f].required && !seen[f])
            return rq_error(RUNQ_EPROTO, "job has no \"%s\"", wire_fields[f].key);
    if (job->state < RUNQ_STATE_SCHEDULED || job->state > RUNQ_STATE_DEAD)
        return rq_error(RUNQ_EPROTO, "job field \"state\" is out of range");
    if (rq_name_check(job->task, "task") || rq_name_check(job->queue, "queue"))
        return rq_error(RUNQ_EPROTO, "job has an invalid name: %s", runq_error_last());
    return 0;
}

int rq_wire_decode(runq_job **out, const void *buf, size_t len) {
    *out = NULL;
    if (!buf || !len) return rq_error(RUNQ_EPROTO, "job data is empty");
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&u);
        return rq_error(RUNQ_EPROTO, "job data is not one msgpack object");
    }
    runq_job *job = rq_job_new();
    if (job) job->state = RUNQ_STATE_PENDING; /* "state" is optional */
    int rc = job ? decode_map(job, &u.data) : rq_error(RUNQ_ENOMEM, "out of memory");
    msgpack_unpacked_destroy(&u);
    if (rc) {
        rq_job_destroy(job);
        return rc;
    }
    *out = job;
    return 0;
}
