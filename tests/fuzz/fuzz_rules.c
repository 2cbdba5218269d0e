/*
 * fuzz_rules.c — libFuzzer target for the rules-file parser (YAML from
 * operators, reloaded on SIGHUP: it must reject, never crash).
 */
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    ds_rules_t *r = ds_rules_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof(err));
    ds_rules_destroy(r);
    return 0;
}
