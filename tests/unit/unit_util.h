/*
 * unit_util.h — what several unit tests need the same way: text a
 * printer writes, captured in memory; line checks on that text; a seeded
 * stream of pseudo-random numbers for property tests; the main every unit
 * test has (and the integration suites that do not start their
 * environment with ds_h_main).
 *
 * The checks fail the running cmocka case (they call fail_msg), so they
 * are for the test's main thread only.  Nothing here keeps state between
 * calls: a test owns its uu_text_t and its random state.
 */
#ifndef DS_UNIT_UTIL_H
#define DS_UNIT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** How many elements the array a has. */
#define UU_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/** A unit test's main: runs the cases given (cmocka_unit_test(name), …)
 *  as cmocka's group "tests" between group_setup and group_teardown (NULL
 *  for none) and returns cmocka's count of failed cases.  The file that
 *  uses it includes cmocka.h. */
#define UU_MAIN(group_setup, group_teardown, ...)                                                  \
    int main(void) {                                                                               \
        const struct CMUnitTest tests[] = {__VA_ARGS__};                                           \
        return cmocka_run_group_tests(tests, group_setup, group_teardown);                         \
    }

/** A memory stream and the text written to it. */
typedef struct uu_text {
    char *text;
    size_t len;
    FILE *f;
} uu_text_t;

/** Opens t's stream (the case fails if it cannot) and returns it. */
FILE *uu_text_open(uu_text_t *t);
/** Closes t's stream and returns the NUL-terminated text written to it;
 *  the caller frees it. */
char *uu_text_close(uu_text_t *t);

/** Fails the case unless one whole line of text is want (the failure
 *  shows want and the text). */
void uu_assert_line(const char *text, const char *want);
/** uu_assert_line for each of want[0..n). */
void uu_assert_lines(const char *text, const char *const *want, size_t n);
/** Fails the case unless text contains each of part[0..n) (the failure
 *  shows the part missing and the text). */
void uu_assert_contains(const char *text, const char *const *part, size_t n);
/** Fails the case at the first line of text longer than width columns
 *  (bytes), showing it. */
void uu_assert_width(const char *text, size_t width);

/** splitmix64: the next value of the stream seeded by *state (advanced).
 *  The same seed gives the same stream on every machine. */
static inline uint64_t uu_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/** The next value of the stream modulo n (n > 0). */
static inline uint64_t uu_below(uint64_t *state, uint64_t n) {
    return uu_splitmix64(state) % n;
}

#endif
