/*
 * apply.c — the scoring rules alone, in memory: one lead of an account
 * fed N events over CONTENTS content items (40 insights, four event types,
 * a new event every 7 s of event time), each event written on its own as
 * a stream that trickles in is (a write per event).  Prints the time per
 * event (apply and write, no Redis, no Kafka) and the bytes each write
 * passes to the writer: the lead's record, and the ids and memory of
 * content kept apart that changed.
 *
 *   ds_bench_apply CONTENTS N
 *
 * bench/run.sh apply runs it for 8, 2,400 and 10,000 content items: what
 * an event costs must not grow with what the lead engaged before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules.h"
#include "score.h"

typedef struct count {
    size_t bytes, writes;
} count_t;

static void c_lead(void *opaque, const ds_lead_score_t *v, uint64_t *notes, const void *rec,
                   size_t n, bool member, bool new_member) {
    (void)v, (void)notes, (void)rec, (void)member, (void)new_member;
    count_t *c = opaque;
    c->bytes += n;
    c->writes++;
}

static void c_ids(void *opaque, const char *lead_id, bool whole, const ds_dedupe_entry_t *e,
                  size_t n) {
    (void)lead_id, (void)whole, (void)e;
    ((count_t *)opaque)->bytes += n * 16; /* 8-byte hash, a time */
}

static void c_mem(void *opaque, const char *lead_id, bool whole, const ds_score_field_t *f,
                  size_t n) {
    (void)lead_id, (void)whole;
    count_t *c = opaque;
    for (size_t i = 0; i < n; i++)
        c->bytes += f[i].kn + f[i].vn;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3 || atol(argv[1]) < 1 || atol(argv[2]) < 1) {
        fprintf(stderr, "usage: ds_bench_apply CONTENTS N\n");
        return 2;
    }
    long contents = atol(argv[1]), n = atol(argv[2]);
    static const char rules_yaml[] = "scoring:\n  half_life_days: 30\n";
    char err[256] = "";
    ds_rules_t *r = ds_rules_load_buffer("bench", rules_yaml, sizeof(rules_yaml) - 1, err,
                                         sizeof(err));
    ds_score_unit_t *u = ds_score_unit_new("A", true);
    if (!r || !u) {
        fprintf(stderr, "ds_bench_apply: %s\n", r ? "out of memory" : err);
        return 1;
    }
    static const int types[] = {DS_MA_CONTENT_VIEWED, DS_MA_EMAIL_CLICKED,
                                DS_MA_CONTENT_COMPLETED, DS_MA_FORM_SUBMITTED};
    count_t c = {0};
    ds_score_writer_t w = {.opaque = &c, .lead = c_lead, .ids = c_ids, .mem = c_mem, .epoch = 1};
    size_t last_rec = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char id[32], content[32], insight[32];
        long k = i % contents;
        snprintf(id, sizeof(id), "e-%ld", i);
        snprintf(content, sizeof(content), "c-%ld", k);
        snprintf(insight, sizeof(insight), "i-%ld", k % 40);
        ds_ma_event_t e = ds_ma_event_make(id, 1700000000000LL + (int64_t)i * 7000, "L", "A",
                                           types[(i / contents) % 4], content, insight,
                                           (int)(k % DS_CS__COUNT));
        ds_err_t rc = ds_score_unit_apply(u, r, &e, NULL);
        size_t before = c.bytes;
        if ((rc != DS_ERR_OK && rc != DS_ERR_DUPLICATE) || ds_score_unit_write(u, &w)) {
            fprintf(stderr, "ds_bench_apply: event %ld failed\n", i);
            return 1;
        }
        last_rec = c.bytes - before;
    }
    double dt = now_s() - t0;
    printf("one lead over %5ld content items: %ld events, %.2f us per event (apply and write), "
           "%zu bytes per write (%zu writes), the last %zu\n",
           contents, n, dt / (double)n * 1e6, c.writes ? c.bytes / c.writes : 0, c.writes,
           last_rec);
    ds_score_unit_destroy(u);
    ds_rules_destroy(r);
    return 0;
}
