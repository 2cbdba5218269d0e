/*
 * fuzz_decode.c — libFuzzer target for the framed-Avro decode path of both
 * input records (what every untrusted Kafka value goes through).
 * The first byte picks the record; the rest is the Kafka value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec.h"
#include "ds_buf.h"
#include "ds_registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ds_registry_t *reg;
static ds_codec_t *codec;
static ds_arena_t arena;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!codec) {
        char err[512];
        const char *dir = getenv("DS_SCHEMAS_DIR");
        ds_registry_init(1 << 20);
        reg = ds_registry_new_dir(dir ? dir : DS_SOURCE_DIR "/schemas", err, sizeof(err));
        if (!reg)
            abort();
        codec = ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err));
        if (!codec)
            abort();
        ds_arena_init(&arena, 1 << 20);
    }
    if (size < 1)
        return 0;
    char detail[256];
    ds_arena_reset(&arena);
    if (data[0] & 1) {
        ds_crm_event_t ev;
        (void)ds_codec_decode_crm(codec, data + 1, size - 1, &arena, &ev, detail, sizeof(detail));
    } else {
        ds_ma_event_t ev;
        (void)ds_codec_decode_ma(codec, data + 1, size - 1, &arena, &ev, detail, sizeof(detail));
    }
    return 0;
}
