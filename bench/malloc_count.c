/*
 * malloc_count.c — an LD_PRELOAD library for bench/run.sh mallocs: counts
 * malloc/calloc/realloc calls per calling object (the executable, libavro,
 * librdkafka, ...) and, for the executable, per call site, and writes the
 * counts to $DS_MALLOC_COUNT_OUT when the process exits.
 *
 * The counting table is a fixed open-addressing array (no allocation while
 * counting); a lookup that finds the table full counts under "(other)".
 * Allocations made before dlsym resolves the real functions come from a
 * small static buffer and are never freed.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SITES 16384

static void *site_addr[SITES];
static atomic_ulong site_count[SITES];
static atomic_ulong other_count;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);

static _Alignas(16) unsigned char early[1 << 16];
static size_t early_used;

static void *early_alloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (early_used + n > sizeof(early))
        return NULL;
    void *p = early + early_used;
    early_used += n;
    return p;
}

static int is_early(const void *p) {
    return (const unsigned char *)p >= early && (const unsigned char *)p < early + sizeof(early);
}

static void count_site(void *addr) {
    size_t h = ((uintptr_t)addr >> 4) % SITES;
    for (size_t i = 0; i < SITES; i++) {
        size_t k = (h + i) % SITES;
        void *cur = __atomic_load_n(&site_addr[k], __ATOMIC_ACQUIRE);
        if (!cur) {
            void *expected = NULL;
            if (__atomic_compare_exchange_n(&site_addr[k], &expected, addr, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                cur = addr;
            else
                cur = expected;
        }
        if (cur == addr) {
            atomic_fetch_add_explicit(&site_count[k], 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_add_explicit(&other_count, 1, memory_order_relaxed);
}

void *malloc(size_t n) {
    if (!real_malloc && !(real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc")))
        return early_alloc(n);
    count_site(__builtin_return_address(0));
    return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
    if (!real_calloc && !(real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc"))) {
        if (b && a > SIZE_MAX / b)
            return NULL;
        return early_alloc(a * b); /* static memory: already zero */
    }
    count_site(__builtin_return_address(0));
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
    if (!real_realloc)
        real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    count_site(__builtin_return_address(0));
    if (is_early(p)) { /* never resized in practice: copy out of the static buffer */
        void *q = real_realloc(NULL, n);
        if (q)
            memcpy(q, p, n < (size_t)(early + sizeof(early) - (unsigned char *)p)
                             ? n
                             : (size_t)(early + sizeof(early) - (unsigned char *)p));
        return q;
    }
    return real_realloc(p, n);
}

void free(void *p) {
    if (!p || is_early(p))
        return;
    if (!real_free)
        real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_free(p);
}

/* One line per site: count, object file, offset in it (for addr2line). */
__attribute__((destructor)) static void dump(void) {
    const char *path = getenv("DS_MALLOC_COUNT_OUT");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    for (size_t i = 0; i < SITES; i++) {
        if (!site_addr[i])
            continue;
        Dl_info d;
        const char *obj = "?";
        uintptr_t off = (uintptr_t)site_addr[i];
        if (dladdr(site_addr[i], &d) && d.dli_fname) {
            obj = d.dli_fname;
            off -= (uintptr_t)d.dli_fbase;
        }
        fprintf(f, "%lu %s 0x%lx\n", (unsigned long)atomic_load(&site_count[i]), obj,
                (unsigned long)off);
    }
    if (atomic_load(&other_count))
        fprintf(f, "%lu (other) 0x0\n", (unsigned long)atomic_load(&other_count));
    fclose(f);
}
