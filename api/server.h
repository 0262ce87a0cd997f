/* The network server: TCP connections carrying multiplexed request streams
 * (docs/protocol.md). It knows frames, streams, deadlines and back-pressure;
 * what a request means is the service's business. */
#ifndef CAIRN_API_SERVER_H
#define CAIRN_API_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "service.h"
#include "status.h"

struct server_options
{
    const char *host;            /* "127.0.0.1" */
    int port;                    /* 7400 */
    size_t max_frame;            /* largest frame accepted: 4 MiB */
    unsigned max_connections;    /* 10,000: more are accepted then closed */
    unsigned max_streams;        /* open streams per connection: 128 */
    size_t max_unsent;           /* response bytes queued per connection
                                    before the server stops reading from
                                    it: 8 MiB */
    unsigned idle_timeout_ms;    /* close a connection silent this long
                                    (no frames, no pings): 300,000 */
    unsigned default_timeout_ms; /* deadline of requests that set none:
                                    30,000 */
};

void server_options_default(struct server_options *o);

struct server;

/**
 * Listen on host:port and serve @p svc (borrowed) on @p loop. Errors:
 * UNAVAILABLE (address in use), INVALID_ARGUMENT (bad address),
 * RESOURCE_EXHAUSTED.
 */
int server_start(uv_loop_t *loop,
                 struct service *svc,
                 const struct server_options *o,
                 struct server **out,
                 struct cairn_error *err);

/** The port actually bound (useful with port 0). */
int server_port(const struct server *s);

typedef void (*server_close_cb)(void *data);

/** Stop listening, send GOAWAY and close every connection; in-flight calls
 * are cancelled. @p cb runs when every handle is closed and the server is
 * freed. */
void server_close(struct server *s, server_close_cb cb, void *data);

#endif
