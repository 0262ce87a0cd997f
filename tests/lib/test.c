#include "test.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpjson.h"

char *test_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *path;

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    if (asprintf(&path, "%s/cairn-test-XXXXXX", base) < 0) {
        fail_msg("asprintf failed");
    }
    if (mkdtemp(path) == NULL) {
        fail_msg("mkdtemp %s failed", path);
    }
    return path;
}

static int rm_one(const char *p,
                  const struct stat *st,
                  int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void test_rmdir(char *path)
{
    if (path == NULL) {
        return;
    }
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

void test_json_to_mp(const char *json, struct buf *out)
{
    struct cairn_error err;
    buf_reset(out);
    if (mpjson_from_json(json, out, &err) != 0) {
        fail_msg("bad test JSON %s: %s", json, err.msg);
    }
}

char *test_mp_to_json(const void *mp, size_t len)
{
    struct cairn_error err;
    char *json = NULL;
    if (mpjson_to_json(mp, len, &json, 0, &err) != 0) {
        fail_msg("msgpack to JSON failed: %s", err.msg);
    }
    return json;
}
