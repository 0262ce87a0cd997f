/* A cairnd process for integration tests, on free loopback ports in a
 * temporary directory, always stopped by its PID. */
#ifndef CAIRN_TESTS_DAEMON_H
#define CAIRN_TESTS_DAEMON_H

#include "cairn.h"
#include "proc.h"

struct daemon
{
    struct proc proc;
    char *dir; /* temporary directory holding data/ and cairnd.log */
    char data[4096];
    char log[4096];
    int api_port;
    int raft_port;
    char endpoint[64];
};

/** Start cairnd (CAIRND names the binary) and wait until it serves a
 * linearizable read. A fresh directory and ports the first time; the same
 * ones on later starts. Fails the test if it is not ready in 20 s. */
void daemon_start(struct daemon *d);
/** SIGTERM and wait; asserts a clean exit (status 0). */
void daemon_stop(struct daemon *d);
/** SIGKILL and reap. */
void daemon_kill9(struct daemon *d);
/** Stop if running and remove the directory. */
void daemon_cleanup(struct daemon *d);
/** A client connected to the daemon (caller closes). */
struct cairn_client *daemon_client(struct daemon *d);
/** The whole log so far (caller frees). */
char *daemon_log(struct daemon *d);

#endif
