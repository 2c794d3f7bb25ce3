/* Compiled alone with -std=c99 -pedantic: runq.h must be
 * self-contained and clean under strict flags (built as part of "all"). */
#include <runq.h>

int runq_headertest_anchor(void);
int runq_headertest_anchor(void) { return RUNQ_VERSION_NUMBER > 0 ? RUNQ_ID_SIZE : 0; }
