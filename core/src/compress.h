/* Compressed payloads: args and results above the client's threshold are
 * stored as a msgpack ext object wrapping a zstd frame (docs/protocol.md,
 * "Compressed payloads"). The engine wraps at enqueue and ack and unwraps
 * before a job reaches a handler, a pull caller, get or wait, so neither the
 * backends nor the bindings ever see the wrapping. */
#ifndef RUNQ_COMPRESS_H
#define RUNQ_COMPRESS_H

#include "common.h"

/* The msgpack ext type reserved for runq-wrapped payloads, and the codec
 * byte that starts its data. */
#define RQ_EXT_WRAPPED 82
#define RQ_CODEC_ZSTD 1

/* Compress `in` (one msgpack object of len bytes) when len > threshold
 * (threshold 0: never) and the wrapped form is smaller. *out receives the
 * wrapped bytes (rq_malloc; the caller frees them) or NULL when the payload
 * stays as it is. */
int rq_payload_wrap(uint8_t **out, size_t *out_len, const void *in, size_t len,
                    size_t threshold);

/* True when buf holds a runq-wrapped payload. */
bool rq_payload_is_wrapped(const void *buf, size_t len);

/* If *buf is wrapped, replace it (freed with rq_free) by the decompressed
 * object. Decompressed sizes above max_len are refused before anything is
 * allocated (zip bombs). RUNQ_EPROTO with the detail set when the wrapping
 * is corrupt; *buf is then unchanged. */
int rq_payload_unwrap(uint8_t **buf, size_t *len, size_t max_len);

#endif
