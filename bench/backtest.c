/*
 * backtest.c — the backtest's replay speed without the broker.
 *
 *   ds_bench_backtest EVENTS [ACCOUNTS] [SEED]
 *
 * Generates `dealsignal gen`'s CRM mix (ACCOUNTS default 20,000, SEED
 * default 7) in chunks of 100,000 events, frames each event as Avro the
 * way gen produces it (not timed), then times what `dealsignal backtest`
 * does with a record once the consumer hands it over: decode it with the
 * project's codec, and replay it (ds_backtest_apply, default rules).  The
 * events go to 48 partitions by a hash of the deal id, as keyed records
 * would.  Prints the decode and replay seconds, events/s of both together,
 * the open deals at the end and the peak RSS (which holds one chunk of
 * framed records and its decoded events besides the replay's state).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backtest.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_hash.h"
#include "codec.h"
#include "events.h"
#include "gen.h"
#include "worker.h"

#define CHUNK 100000
#define PARTITIONS 48

static long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s EVENTS [ACCOUNTS] [SEED]\n", argv[0]);
        return 2;
    }
    long events = strtol(argv[1], NULL, 10);
    ds_gen_opts_t go = {.seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 7,
                        .accounts = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20000,
                        .mix = DS_GEN_CRM,
                        .start_ms = 1700000000000LL};
    char err[512];
    ds_registry_init(1 << 20);
    ds_registry_t *reg = ds_registry_open_dir("schemas", err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    ds_rules_t *rules = ds_rules_new_default();
    ds_gen_t *g = ds_gen_new(&go);
    if (!codec || !rules || !g) {
        fprintf(stderr, "setup: %s\n", codec ? "out of memory" : err);
        return 1;
    }
    rules->dedupe_window_days = 7;
    ds_backtest_opts_t bo = {INT64_MIN, INT64_MAX, false};
    ds_backtest_t *bt = ds_backtest_new(rules, &bo);
    ds_buf_t frames;
    ds_buf_init(&frames, 0);
    size_t *off = malloc((CHUNK + 1) * sizeof(*off));
    int32_t *part = malloc(CHUNK * sizeof(*part));
    ds_crm_event_t *evs = malloc(CHUNK * sizeof(*evs));
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    if (!bt || !off || !part || !evs)
        return 1;
    double dec_s = 0, rep_s = 0;
    size_t peak_open = 0;
    long done = 0, undecodable = 0;
    while (done < events) {
        long n = events - done < CHUNK ? events - done : CHUNK;
        ds_buf_reset(&frames);
        for (long i = 0; i < n; i++) {
            ds_gen_event_t ge;
            ds_gen_next(g, &ge);
            off[i] = frames.len;
            part[i] = (int32_t)(ds_fnv64(ge.crm.deal_id, strlen(ge.crm.deal_id)) % PARTITIONS);
            if (ds_codec_encode_crm(codec, &ge.crm, &frames)) {
                fprintf(stderr, "encode failed\n");
                return 1;
            }
        }
        off[n] = frames.len;
        int64_t t0 = ds_clock_mono_us();
        ds_arena_reset(&arena);
        char detail[256];
        for (long i = 0; i < n; i++)
            if (ds_codec_decode_crm(codec, frames.data + off[i], off[i + 1] - off[i], &arena,
                                    &evs[i], detail, sizeof(detail)))
                evs[i].event_id = NULL, undecodable++; /* skipped below */
        int64_t t1 = ds_clock_mono_us();
        for (long i = 0; i < n; i++)
            if (evs[i].event_id && ds_backtest_apply(bt, part[i], &evs[i])) {
                fprintf(stderr, "replay failed\n");
                return 1;
            }
        int64_t t2 = ds_clock_mono_us();
        dec_s += (double)(t1 - t0) / 1e6;
        rep_s += (double)(t2 - t1) / 1e6;
        done += n;
        size_t open = ds_backtest_open_deals(bt);
        if (open > peak_open)
            peak_open = open;
    }
    ds_bt_report_t rep;
    ds_backtest_report(bt, &rep);
    printf("backtest without the broker: %ld events (%ld undecodable) decoded in %.2f s and "
           "replayed in %.2f s = %.0f events/s (replay alone %.0f events/s)\n",
           done, undecodable, dec_s, rep_s, (double)done / (dec_s + rep_s), (double)done / rep_s);
    printf("  deals %lld (%lld won, %lld lost, %lld open at the end, at most %zu open at a chunk's "
           "end); peak RSS %ld MiB\n",
           (long long)rep.deals, (long long)rep.won, (long long)rep.lost, (long long)rep.open,
           peak_open, peak_rss_kib() / 1024);
    ds_backtest_destroy(bt);
    ds_rules_destroy(rules);
    ds_gen_destroy(g);
    ds_arena_free(&arena);
    ds_buf_free(&frames);
    free(off);
    free(part);
    free(evs);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    return 0;
}
