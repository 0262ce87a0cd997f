/* Fuzz target: the msgpack checker, decoder, typed field readers and the
 * msgpack -> JSON renderer, on untrusted bytes. None may crash, leak or
 * read out of bounds, and they must agree on what is well-formed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mp.h"
#include "mpjson.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_mp: check failed at %s:%d: %s\n", __FILE__, \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* A status returned for bad input must be one of ours, with its message
 * NUL-terminated inside the struct. */
static void check_error(int rv, const struct cairn_error *err)
{
    CHECK(rv > CAIRN_OK && rv <= CAIRN_UNAUTHENTICATED);
    CHECK(memchr(err->msg, '\0', sizeof err->msg) != NULL);
    CHECK(memchr(err->type, '\0', sizeof err->type) != NULL);
}

/* Read the fields a command or a request could carry, with every typed
 * reader, from a decoded map. */
static void read_fields(const msgpack_object *map)
{
    static const char *const keys[] = {"op",    "ts",   "user",
                                       "req",   "Name", "Value",
                                       "Names", "Tags", "Overwrite"};
    struct cairn_error err;

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const msgpack_object_array *arr;
        const msgpack_object_map *m;
        struct mp_str str;
        uint64_t u;
        int64_t i64;
        bool b, is_bin;
        int rv;

        rv = mp_get_str(map, keys[i], &str, &err);
        CHECK(rv >= -1 && rv <= 1);
        if (rv == 1) {
            CHECK(str.n == 0 || str.p != NULL);
            CHECK(mp_str_eqn(str, keys[i]) ==
                  (str.n == strlen(keys[i]) &&
                   memcmp(str.p, keys[i], str.n) == 0));
        }
        rv = mp_get_bytes(map, keys[i], &str, &is_bin, &err);
        CHECK(rv >= -1 && rv <= 1);
        CHECK(mp_get_bool(map, keys[i], &b, &err) >= -1);
        CHECK(mp_get_u64(map, keys[i], &u, &err) >= -1);
        CHECK(mp_get_i64(map, keys[i], &i64, &err) >= -1);
        rv = mp_get_array(map, keys[i], &arr, &err);
        if (rv == 1) {
            for (uint32_t j = 0; j < arr->size; j++) {
                if (arr->ptr[j].type == MSGPACK_OBJECT_MAP) {
                    CHECK(mp_get_str(&arr->ptr[j], "Key", &str, &err) >= -1);
                }
            }
        }
        rv = mp_get_map(map, keys[i], &m, &err);
        CHECK(rv >= -1 && rv <= 1);
        (void)mp_map_get(map, keys[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cairn_error err;
    struct mp_doc doc;
    char *json = NULL;
    int check_rv, parse_rv, rv;

    check_rv = mp_check(data, size, &err);
    if (check_rv != 0) {
        check_error(check_rv, &err);
    }

    parse_rv = mp_doc_parse(&doc, data, size, &err);
    if (parse_rv == 0) {
        /* What the checker refuses, the decoder must refuse too: the
         * checker is what protects msgpack-c from hostile lengths. */
        CHECK(check_rv == 0);
        if (doc.root.type == MSGPACK_OBJECT_MAP) {
            read_fields(&doc.root);
        }
        mp_doc_close(&doc);
    } else {
        check_error(parse_rv, &err);
        CHECK(check_rv != 0 || parse_rv == CAIRN_RESOURCE_EXHAUSTED);
    }

    rv = mpjson_to_json(data, size, &json, 0, &err);
    if (rv == 0) {
        struct buf back;
        char *again = NULL;

        CHECK(parse_rv == 0);
        CHECK(json != NULL);
        /* JSON -> msgpack -> JSON must not crash; it need not round-trip
         * exactly (bin becomes a string, big integers become reals). */
        buf_init(&back);
        if (mpjson_from_json(json, &back, &err) == 0) {
            if (mpjson_to_json(back.data, back.len, &again, 2, &err) == 0) {
                free(again);
            }
        }
        buf_close(&back);
        free(json);
    } else {
        check_error(rv, &err);
        CHECK(json == NULL);
    }
    return 0;
}
