#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

long long proc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void proc_spawn(struct proc *p, char *const argv[], const char *log_path)
{
    pid_t pid;
    int fd = -1;

    if (log_path != NULL) {
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
            fail_msg("open %s: %s", log_path, strerror(errno));
        }
    }
    pid = fork();
    if (pid < 0) {
        fail_msg("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (fd >= 0) {
        close(fd);
    }
    p->pid = pid;
    p->status = 0;
}

bool proc_wait(struct proc *p, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    if (p->pid == 0) {
        return true;
    }
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->status = st;
            p->pid = 0;
            return true;
        }
        if (r < 0 && errno != EINTR) {
            p->pid = 0;
            return true;
        }
        if (proc_now_ms() >= end) {
            return false;
        }
        usleep(10 * 1000);
    }
}

void proc_signal(struct proc *p, int sig)
{
    if (p->pid > 0) {
        kill(p->pid, sig);
    }
}

void proc_stop(struct proc *p, int timeout_ms)
{
    if (p->pid == 0) {
        return;
    }
    proc_signal(p, SIGTERM);
    if (!proc_wait(p, timeout_ms)) {
        proc_signal(p, SIGKILL);
        proc_wait(p, 10000);
    }
}

static char *slurp(int fd)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            char *t = realloc(s, cap * 2);
            if (t == NULL) {
                break;
            }
            s = t;
            cap *= 2;
        }
        n = read(fd, s + len, cap - len - 1);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        len += (size_t)n;
    }
    s[len] = '\0';
    return s;
}

int proc_run(char *const argv[], char **out, char **err, int timeout_ms)
{
    char tmpl_out[] = "/tmp/cairn-proc-out-XXXXXX";
    char tmpl_err[] = "/tmp/cairn-proc-err-XXXXXX";
    int fo = mkstemp(tmpl_out);
    int fe = mkstemp(tmpl_err);
    struct proc p;
    pid_t pid;

    if (fo < 0 || fe < 0) {
        fail_msg("mkstemp: %s", strerror(errno));
    }
    unlink(tmpl_out);
    unlink(tmpl_err);
    pid = fork();
    if (pid < 0) {
        fail_msg("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fo, STDOUT_FILENO);
        dup2(fe, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    p.pid = pid;
    if (!proc_wait(&p, timeout_ms)) {
        proc_signal(&p, SIGKILL);
        proc_wait(&p, 5000);
        fail_msg("%s did not finish in %d ms", argv[0], timeout_ms);
    }
    lseek(fo, 0, SEEK_SET);
    lseek(fe, 0, SEEK_SET);
    if (out != NULL) {
        *out = slurp(fo);
    }
    if (err != NULL) {
        *err = slurp(fe);
    }
    close(fo);
    close(fe);
    return WIFEXITED(p.status) ? WEXITSTATUS(p.status) : -1;
}

int proc_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        fail_msg("no free port: %s", strerror(errno));
    }
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}
