/* The queue visit order of a fetch, shared by every backend so that strict
 * and weighted order mean the same on memory:// and Redis. */
#include "backend.h"

void rq_fetch_order(const rq_fetch_request *req, size_t *order) {
    for (size_t i = 0; i < req->nqueues; i++) order[i] = i;
    if (!req->weights) return;
    for (size_t i = 0; i + 1 < req->nqueues; i++) {
        uint64_t total = 0;
        for (size_t k = i; k < req->nqueues; k++) total += req->weights[order[k]];
        if (total == 0) return; /* the engine refuses zero weights; stay safe */
        uint64_t pick = rq_random64() % total;
        size_t k = i;
        while (pick >= req->weights[order[k]]) pick -= req->weights[order[k++]];
        size_t t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
}
