/* A small test harness: ASSERT_* macros that print where and why, and a
 * main() that runs the test named on the command line (ctest runs every test
 * in its own process with its own timeout; see tests/c/CMakeLists.txt).
 *
 * A test file defines its tests with TEST(name) { ... } and ends with
 * TEST_MAIN(). The CMake file finds the names with a regex over TEST(...). */
#ifndef RUNQ_TEST_CHECK_H
#define RUNQ_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runq.h"

typedef void (*check_fn)(void);
typedef struct check_entry { const char *name; check_fn fn; } check_entry;

#define CHECK_MAX 128
extern check_entry check_tests[CHECK_MAX];
extern int check_ntests;

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void register_##name(void) {      \
        if (check_ntests < CHECK_MAX)                                     \
            check_tests[check_ntests++] = (check_entry){#name, test_##name}; \
    }                                                                     \
    static void test_##name(void)

#define CHECK_FAIL(...)                                                   \
    do {                                                                  \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                     \
        fprintf(stderr, " (last runq error: %s)\n", runq_error_last());   \
        abort();                                                          \
    } while (0)

#define ASSERT(cond) do { if (!(cond)) CHECK_FAIL("assertion failed: %s", #cond); } while (0)
#define ASSERT_INT(a, op, b)                                              \
    do {                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);               \
        if (!(a_ op b_))                                                  \
            CHECK_FAIL("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);     \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT(a, !=, b)
#define ASSERT_GE(a, b) ASSERT_INT(a, >=, b)
#define ASSERT_LE(a, b) ASSERT_INT(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT(a, >, b)
#define ASSERT_LT(a, b) ASSERT_INT(a, <, b)
#define ASSERT_OK(expr)                                                   \
    do {                                                                  \
        int r_ = (expr);                                                  \
        if (r_ != 0) CHECK_FAIL("%s returned %d (%s)", #expr, r_, runq_strerror(r_)); \
    } while (0)
#define ASSERT_STR(a, b)                                                  \
    do {                                                                  \
        const char *a_ = (a), *b_ = (b);                                  \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                            \
            CHECK_FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    } while (0)

/* The backend URL under test: RUNQ_TEST_URL, else memory://. */
static inline const char *check_url(void) {
    const char *u = getenv("RUNQ_TEST_URL");
    return u && *u ? u : "memory://";
}

#define TEST_MAIN()                                                       \
    check_entry check_tests[CHECK_MAX];                                   \
    int check_ntests;                                                     \
    int main(int argc, char **argv) {                                     \
        int ran = 0;                                                      \
        for (int i = 0; i < check_ntests; i++) {                          \
            if (argc > 1 && strcmp(argv[1], check_tests[i].name) != 0) continue; \
            fprintf(stderr, "-- %s\n", check_tests[i].name);              \
            check_tests[i].fn();                                          \
            ran++;                                                        \
        }                                                                 \
        if (ran == 0) { fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "?"); return 2; } \
        return 0;                                                         \
    }

#endif
