/* Fetch every parameter under /my-app/dev/ at start-up, as an application
 * would, with libcairn. Build: cc fetch-config.c $(pkg-config --cflags
 * --libs cairn). Endpoints come from CAIRN_ENDPOINT (default
 * 127.0.0.1:7400). */
#include <cairn.h> /* pkg-config adds its directory */
#include <stdio.h>

static int print_parameter(void *ctx, const struct cairn_parameter *p)
{
    (void)ctx;
    printf("%s = %s (version %llu)\n", p->name, p->value,
           (unsigned long long)p->version);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/my-app/dev/";
    struct cairn_client *client;
    struct cairn_error err;

    if (cairn_client_connect(NULL, &client, &err) != 0) {
        fprintf(stderr, "connect: %s\n", err.msg);
        return 1;
    }
    /* Follows NextToken through every page; retries on UNAVAILABLE. */
    if (cairn_get_parameters_by_path(client, path, true, true, print_parameter,
                                     NULL, &err) != 0) {
        fprintf(stderr, "%s: %s\n", err.type, err.msg);
        cairn_client_close(client);
        return 1;
    }
    cairn_client_close(client);
    return 0;
}
