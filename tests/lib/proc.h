/* Child processes for integration tests: spawn with output to a log file,
 * wait with a deadline, kill by the stored PID (never by name). */
#ifndef CAIRN_TESTS_PROC_H
#define CAIRN_TESTS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

struct proc
{
    pid_t pid;  /* 0 when not running */
    int status; /* wait status once reaped */
};

/** Start argv[0] with @p argv (NULL-terminated), stdout and stderr
 * appended to @p log_path (or inherited when NULL). Fails the test on
 * error. */
void proc_spawn(struct proc *p, char *const argv[], const char *log_path);

/** Wait up to @p timeout_ms for the child to exit. True if it did (status
 * in p->status). */
bool proc_wait(struct proc *p, int timeout_ms);

/** Send @p sig to the child (no-op if not running). */
void proc_signal(struct proc *p, int sig);

/** SIGTERM, wait up to @p timeout_ms, then SIGKILL and reap. */
void proc_stop(struct proc *p, int timeout_ms);

/** Run a command to completion, capturing stdout and stderr (each freed by
 * the caller, may be NULL). Returns the exit status, or -1 on a signal. */
int proc_run(char *const argv[], char **out, char **err, int timeout_ms);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
int proc_free_port(void);

/** Milliseconds on a monotonic clock. */
long long proc_now_ms(void);

#endif
