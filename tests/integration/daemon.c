#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static const char *cairnd_path(void)
{
    const char *p = getenv("CAIRND");
    if (p == NULL || p[0] == '\0') {
        fail_msg("CAIRND is not set (run through meson test)");
    }
    return p;
}

struct cairn_client *daemon_client(struct daemon *d)
{
    struct cairn_client_options o;
    struct cairn_client *c = NULL;
    struct cairn_error err;

    cairn_client_options_default(&o);
    o.endpoints = d->endpoint;
    o.timeout_ms = 10000;
    if (cairn_client_connect(&o, &c, &err) != 0) {
        fail_msg("connect %s: %s", d->endpoint, err.msg);
    }
    return c;
}

static bool ready(struct daemon *d)
{
    struct cairn_client_options o;
    struct cairn_client *c = NULL;
    struct cairn_error err;
    char *resp = NULL;
    int rv;

    cairn_client_options_default(&o);
    o.endpoints = d->endpoint;
    o.timeout_ms = 500;
    o.attempts = 1;
    if (cairn_client_connect(&o, &c, &err) != 0) {
        return false;
    }
    rv = cairn_call_json(c, "GetServiceSetting",
                         "{\"SettingId\":\"/ssm/parameter-store/"
                         "default-parameter-tier\"}",
                         &resp, &err);
    free(resp);
    cairn_client_close(c);
    return rv == 0;
}

void daemon_start(struct daemon *d)
{
    char api[64], raft[64];
    long long end;

    if (d->dir == NULL) {
        d->dir = test_mkdtemp();
        snprintf(d->data, sizeof(d->data), "%s/data", d->dir);
        snprintf(d->log, sizeof(d->log), "%s/cairnd.log", d->dir);
        d->api_port = proc_free_port();
        do {
            d->raft_port = proc_free_port();
        } while (d->raft_port == d->api_port);
        snprintf(d->endpoint, sizeof(d->endpoint), "127.0.0.1:%d", d->api_port);
    }
    snprintf(api, sizeof(api), "127.0.0.1:%d", d->api_port);
    snprintf(raft, sizeof(raft), "127.0.0.1:%d", d->raft_port);
    {
        char *argv[] = {(char *)cairnd_path(),
                        "--data-dir",
                        d->data,
                        "--api",
                        api,
                        "--raft",
                        raft,
                        NULL};
        proc_spawn(&d->proc, argv, d->log);
    }
    end = proc_now_ms() + 20000;
    while (!ready(d)) {
        if (proc_wait(&d->proc, 0)) {
            char *log = daemon_log(d);
            fail_msg("cairnd exited during start-up:\n%s", log);
        }
        if (proc_now_ms() > end) {
            char *log = daemon_log(d);
            fail_msg("cairnd not ready in 20 s:\n%s", log);
        }
        usleep(20 * 1000);
    }
}

void daemon_stop(struct daemon *d)
{
    proc_signal(&d->proc, SIGTERM);
    if (!proc_wait(&d->proc, 20000)) {
        proc_stop(&d->proc, 1000);
        fail_msg("cairnd did not stop within 20 s of SIGTERM");
    }
    if (!WIFEXITED(d->proc.status) || WEXITSTATUS(d->proc.status) != 0) {
        char *log = daemon_log(d);
        fail_msg("cairnd exited with status %#x:\n%s", d->proc.status, log);
    }
}

void daemon_kill9(struct daemon *d)
{
    proc_signal(&d->proc, SIGKILL);
    proc_wait(&d->proc, 10000);
}

void daemon_cleanup(struct daemon *d)
{
    proc_stop(&d->proc, 10000);
    test_rmdir(d->dir);
    d->dir = NULL;
}

char *daemon_log(struct daemon *d)
{
    FILE *f = fopen(d->log, "r");
    char *s;
    long n;

    if (f == NULL) {
        return strdup("");
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    if (s != NULL && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) {
        s[0] = '\0';
    }
    fclose(f);
    return s;
}
