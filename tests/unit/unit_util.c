/*
 * unit_util.c — see unit_util.h.  Texts are scanned line by line with
 * strcspn, so a last line without a newline counts as a line.
 */
#include "unit_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <string.h>

FILE *uu_text_open(uu_text_t *t) {
    t->text = NULL;
    t->len = 0;
    t->f = open_memstream(&t->text, &t->len);
    assert_non_null(t->f);
    return t->f;
}

char *uu_text_close(uu_text_t *t) {
    assert_int_equal(fclose(t->f), 0);
    t->f = NULL;
    assert_non_null(t->text);
    return t->text;
}

void uu_assert_line(const char *text, const char *want) {
    size_t wl = strlen(want);
    for (const char *p = text; *p;) {
        size_t ll = strcspn(p, "\n");
        if (ll == wl && !memcmp(p, want, wl))
            return;
        p += ll + (p[ll] == '\n');
    }
    fail_msg("no line\n%s\nin:\n%s", want, text);
}

void uu_assert_lines(const char *text, const char *const *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        uu_assert_line(text, want[i]);
}

void uu_assert_contains(const char *text, const char *const *part, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strstr(text, part[i]))
            fail_msg("no\n%s\nin:\n%s", part[i], text);
}

void uu_assert_width(const char *text, size_t width) {
    for (const char *p = text; *p;) {
        size_t ll = strcspn(p, "\n");
        if (ll > width)
            fail_msg("a line of %zu columns (over %zu): %.*s", ll, width, (int)ll, p);
        p += ll + (p[ll] == '\n');
    }
}
