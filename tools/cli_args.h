/* The cairn CLI's pure parts: the command table, argument parsing (AWS CLI
 * shorthand, JSON and file:// values), pagination merging, the AWS CLI's
 * output formats (json, text, table), the `cairn cluster status` view and
 * the checks of the `kms` group's values. Nothing here touches the
 * network, so all of it is unit-tested without a server. */
#ifndef CAIRN_TOOLS_CLI_ARGS_H
#define CAIRN_TOOLS_CLI_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "status.h"

/* Exit statuses of the AWS CLI v2, which scripts test for. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_USAGE 252   /* bad arguments or parameter validation */
#define CLI_EXIT_SERVICE 254 /* the service answered with an error */
#define CLI_EXIT_FAILURE 255 /* no connection, timeout, anything else */

/* Where a message for the user goes when parsing fails. Large enough for a
 * shorthand error, which echoes the flag's value with a caret under it. */
#define CLI_DIAG_MAX 8192

struct cli_diag
{
    bool usage;             /* print the usage banner before msg */
    char msg[CLI_DIAG_MAX]; /* what went wrong, without a final newline */
};

/* ---- the command table ---------------------------------------------- */

/* How a flag's values become a request member. */
enum cli_kind {
    CLI_STRING,      /* one value, a JSON string */
    CLI_INT,         /* one value, a JSON integer */
    CLI_BOOL,        /* --flag (true) or --no-flag (false), no value */
    CLI_STRING_LIST, /* one or more values, or one JSON array */
    CLI_STRUCT_LIST, /* shorthand or JSON structures (see cli_shape) */
    CLI_ID,          /* one value, a Raft node id: an integer >= 1 */
    CLI_ADDRESS,     /* one value, "host:port" or "[v6]:port", a string */
    CLI_KEY_ID,      /* one value, a KMS key id, ARN or alias: a string of
                        1 to CLI_KEY_ID_MAX characters */
    CLI_ALIAS_NAME,  /* one value, a KMS alias name: "alias/" and more */
    CLI_WINDOW_DAYS, /* one value, an integer from CLI_WINDOW_MIN to
                        CLI_WINDOW_MAX (a key's pending deletion window) */
    CLI_PATH,        /* a positional word, not a --flag: a local file's
                        path, a non-empty string; the flag's name is the
                        word help shows ("FILE") */
};

/* KMS's limits on the values it checks (KeyId, PendingWindowInDays). */
#define CLI_KEY_ID_MAX 2048
#define CLI_WINDOW_MIN 7
#define CLI_WINDOW_MAX 30
#define CLI_ALIAS_PREFIX "alias/"

enum cli_member_kind {
    CLI_MEMBER_STRING,
    CLI_MEMBER_LIST, /* a list of strings */
};

/* A member of a structure that a CLI_STRUCT_LIST flag carries. */
struct cli_member
{
    const char *name; /* AWS member name: "Key" */
    enum cli_member_kind kind;
    bool required;
};

/* The structure of each item of a CLI_STRUCT_LIST flag, such as Tag or
 * ParameterStringFilter. Only these members are accepted. */
struct cli_shape
{
    const char *name; /* "Tag", for help */
    const struct cli_member *members;
    size_t n_members;
    const char *shorthand; /* the shorthand syntax line, for help */
    const char *json;      /* the JSON syntax, for help */
};

/* One flag of a command. Parsing and help both read this table, so they
 * cannot disagree. */
struct cli_flag
{
    const char *name;  /* without the leading "--": "with-decryption" */
    const char *field; /* request member: "WithDecryption" */
    enum cli_kind kind;
    const struct cli_shape *shape; /* CLI_STRUCT_LIST only */
    bool required;
    const char *help; /* one paragraph */
};

/* A command of the `cluster` group is named "cluster <word>" and calls
 * Cairn's internal methods (docs/cluster.md) instead of an SSM operation. */
#define CLI_CLUSTER_PREFIX "cluster "

/* A command of the `kms` group is named "kms <word>", mirrors `aws kms` and
 * calls the Kms.* methods (docs/encryption.md), whose bodies use KMS's
 * member names. */
#define CLI_KMS_PREFIX "kms "
#define CLI_KMS_OPERATION_PREFIX "Kms."

struct cli_command
{
    const char *name;      /* "get-parameter", "cluster add", "kms list-keys" */
    const char *operation; /* "GetParameter", "Kms.ListKeys"; a title only
                              for commands that make no such call */
    const char *summary;   /* one sentence for the command list */
    const struct cli_flag *flags;
    size_t n_flags;
    /* Paged commands: the list merged across pages ("Parameters") and the
     * largest MaxResults the operation accepts. NULL and 0 otherwise. */
    const char *result_key;
    long long max_page;
};

/** Every command, in the order `cairn --help` lists them: the SSM
 * commands and keygen, then the cluster group, then the kms group. */
const struct cli_command *cli_commands(size_t *n);

/** The command called @p name ("get-parameter", "cluster status"), or
 * NULL. */
const struct cli_command *cli_command_find(const char *name);

/** Whether @p cmd belongs to the `cluster` group. */
bool cli_command_is_cluster(const struct cli_command *cmd);

/** Whether @p cmd belongs to the `kms` group. */
bool cli_command_is_kms(const struct cli_command *cmd);

/** The operation's name as the AWS CLI shows it, in table titles and in
 * "when calling the X operation": the operation without the "Kms." of the
 * kms group's methods ("DescribeKey"). Borrowed from the command table. */
const char *cli_command_title(const struct cli_command *cmd);

/* ---- parsing -------------------------------------------------------- */

enum cli_output {
    CLI_OUTPUT_JSON,
    CLI_OUTPUT_TEXT,
    CLI_OUTPUT_TABLE,
};

/* Options that are not request members. Strings are borrowed from argv. */
struct cli_options
{
    const char *endpoint; /* NULL: CAIRN_ENDPOINT, else the library's */
    enum cli_output output;
    bool stale;          /* --consistency stale */
    unsigned timeout_ms; /* 0: the library's default */
    bool help;           /* --help or `help` anywhere */
    /* Pagination, for commands with a result_key. */
    bool paginate;              /* follow NextToken (off: --no-paginate) */
    long long max_items;        /* stop after this many items; 0: all */
    long long page_size;        /* MaxResults of each call; 0: default */
    const char *starting_token; /* NextToken of the first call */
};

struct cli_invocation
{
    struct cli_options opt;
    const struct cli_command *cmd; /* NULL when only help was asked */
    json_t *request; /* the request object; NULL when cmd is NULL */
    bool cluster;    /* the `cluster` group was named (for its help) */
    bool kms;        /* the `kms` group was named (for its help) */
};

/**
 * Parse a command line (argv[0] is the program name). Global options may
 * come before or after the command. On success, @p inv holds the options,
 * the command and the request; the caller releases it with
 * cli_invocation_close. `cairn --help` and `cairn CMD --help` succeed with
 * opt.help set and skip the required-flag check.
 * Errors: INVALID_ARGUMENT with the message in @p d (exit with
 * CLI_EXIT_USAGE; print the usage banner first when d->usage),
 * RESOURCE_EXHAUSTED.
 */
int cli_parse(int argc,
              char *const argv[],
              struct cli_invocation *inv,
              struct cli_diag *d);

/** Release what cli_parse allocated. Safe on a zeroed invocation. */
void cli_invocation_close(struct cli_invocation *inv);

/**
 * The value of a flag as the AWS CLI reads it: "file://PATH" and
 * "fileb://PATH" are replaced by the file's contents (a leading "~/" means
 * $HOME), anything else is copied. On success *out is NUL-terminated and
 * the caller frees it with free(); *len (may be NULL) excludes the NUL.
 * Errors: INVALID_ARGUMENT ("Error parsing parameter '--value': Unable to
 * load paramfile ..." in @p d), RESOURCE_EXHAUSTED.
 */
int cli_load_value(const char *flag,
                   const char *arg,
                   char **out,
                   size_t *len,
                   struct cli_diag *d);

/**
 * Parse one AWS CLI shorthand structure ("Key=Type,Values=String,Secure")
 * into a JSON object whose values are strings, lists (a csv list or
 * "[a,b]") or objects ("{k=v}"), keeping the input's key order. @p flag
 * names the flag in messages ("tags"). On success the caller owns *out.
 * Errors: INVALID_ARGUMENT with AWS's "Error parsing parameter" text in
 * @p d, RESOURCE_EXHAUSTED.
 */
int cli_shorthand_parse(const char *flag,
                        const char *text,
                        json_t **out,
                        struct cli_diag *d);

/**
 * Build the list value of a CLI_STRUCT_LIST flag from its @p n arguments:
 * one JSON array, or one shorthand structure or JSON object per argument.
 * Every item is checked against f->shape as botocore does (unknown members,
 * missing required members, wrong types), and a single shorthand value
 * given to a list member becomes a one-item list. On success the caller
 * owns *out. Errors: INVALID_ARGUMENT ("Parameter validation failed:..."),
 * RESOURCE_EXHAUSTED.
 */
int cli_struct_list(const struct cli_flag *f,
                    char *const *vals,
                    size_t n,
                    json_t **out,
                    struct cli_diag *d);

/* ---- pagination ----------------------------------------------------- */

/* Follows NextToken across calls and merges the result lists, as the AWS
 * CLI does. With max_items it stops after that many items and reports the
 * server's NextToken as the token to resume from; each call asks for no
 * more than the items still wanted, so no item is skipped on resume. */
struct cli_pager
{
    const char *result_key; /* borrowed */
    long long max_page;     /* the operation's largest MaxResults */
    long long page_size;    /* 0: the server's default */
    long long remaining;    /* items still wanted; -1: all */
    json_t *merged;         /* the output being built */
    char *token;            /* NextToken for the next call, or NULL */
    bool done;              /* no more calls */
    bool truncated;         /* stopped by max_items with more to come */
};

/** Start paging. @p starting_token may be NULL. RESOURCE_EXHAUSTED. */
int cli_pager_init(struct cli_pager *p,
                   const struct cli_command *cmd,
                   const struct cli_options *opt,
                   long long request_max_results);

/** Set NextToken and MaxResults of @p req for the next call. */
int cli_pager_prepare(struct cli_pager *p, json_t *req);

/**
 * Merge one response (borrowed). Sets p->done when the listing ended, the
 * item budget is spent, or the server repeated a token (it would loop).
 * Errors: INVALID_ARGUMENT (the page has no list under result_key),
 * RESOURCE_EXHAUSTED.
 */
int cli_pager_add(struct cli_pager *p, const json_t *page);

/** The merged output, with "NextToken" last when truncated. The caller owns
 * the reference; NULL when out of memory. */
json_t *cli_pager_result(struct cli_pager *p);

void cli_pager_close(struct cli_pager *p);

/* ---- output --------------------------------------------------------- */

/**
 * Format epoch seconds as the AWS CLI v2 prints timestamps (Python's
 * isoformat in UTC): "2023-01-01T12:34:56.789000+00:00", without the
 * fraction when it rounds to whole seconds. @p n must be at least 40.
 * 0, or INVALID_ARGUMENT for a value out of range.
 */
int cli_iso8601(double epoch, char *out, size_t n);

/**
 * Convert a msgpack response map into JSON, keeping the server's member
 * order (the AWS model's order), rendering bin values as base64 and
 * timestamps (numbers under keys ending in "Date" or "Time") with
 * cli_iso8601. On success the caller owns *out. Errors: INVALID_ARGUMENT
 * (malformed msgpack), RESOURCE_EXHAUSTED.
 */
int cli_response_from_mp(const void *mp,
                         size_t len,
                         json_t **out,
                         struct cairn_error *err);

/**
 * Append @p resp in format @p fmt to @p out, as the AWS CLI v2 prints it:
 * json is Python's json.dumps(indent=4, ensure_ascii=False) plus a newline
 * (nothing for an empty object); text is the AWS tab-separated format;
 * table is the AWS box table titled @p title and fitted to @p width
 * columns. @p paged: the response was merged by a cli_pager, so text
 * prints its NextToken as a final "NEXTTOKEN" line as the AWS CLI does.
 * 0 or RESOURCE_EXHAUSTED.
 */
int cli_render(const json_t *resp,
               enum cli_output fmt,
               const char *title,
               bool paged,
               unsigned width,
               struct buf *out);

/** Append AWS's service error text:
 * "\nAn error occurred (TYPE) when calling the OP operation: MSG\n".
 * A missing error type is named after the status code. */
int cli_render_error(struct buf *out,
                     const char *operation,
                     const struct cairn_error *e);

/** Append the usage banner printed before usage errors. */
int cli_render_usage(struct buf *out);

/** Append the help of @p cmd, or the command list when @p cmd is NULL. */
int cli_render_help(struct buf *out, const struct cli_command *cmd);

/** Append the help of the `cluster` group: its commands. */
int cli_render_cluster_help(struct buf *out);

/** Append the help of the `kms` group: its commands. */
int cli_render_kms_help(struct buf *out);

/* ---- keygen --------------------------------------------------------- */

/**
 * The exit status of `cairn keygen` after env_root_key_create returned
 * @p status: CLI_EXIT_OK; CLI_EXIT_USAGE when FILE cannot be used as
 * given (it exists: ALREADY_EXISTS; its directory is missing: NOT_FOUND;
 * no access: PERMISSION_DENIED; INVALID_ARGUMENT), as the AWS CLI treats a
 * bad local file argument; CLI_EXIT_FAILURE for anything else (I/O, no
 * randomness).
 */
int cli_keygen_exit(int status);

/**
 * Append the message of a failed `cairn keygen FILE` (@p path) whose
 * env_root_key_create failed with @p e, and return the exit status
 * (cli_keygen_exit of e->code).
 */
int cli_render_keygen_error(struct buf *out,
                            const char *path,
                            const struct cairn_error *e);

/**
 * The output of `cairn keygen`: {"File": @p path, "Fingerprint":
 * @p fingerprint_hex}, to print with cli_render. The caller owns the
 * result; NULL when out of memory (or @p path is not UTF-8).
 */
json_t *cli_keygen_result(const char *path, const char *fingerprint_hex);

/* ---- cluster status ------------------------------------------------- */

/* `cairn cluster status` asks the contacted node for the members
 * (Cairn.Members), then each member for its own view (Cairn.NodeStatus).
 * The output is built here so that it is tested without a cluster:
 *
 *   {"Leader": id, "Term": n, "Members": [{"Id", "RaftAddress",
 *    "ApiAddress", "Role", then either "State", "Term", "CommitIndex",
 *    "AppliedIndex", "LeaderId", "StoreIndex", "Digest"? from the node, or
 *    "State": "unreachable" (no answer) or "error" (an error answer) and
 *    "Error": message}]}
 *
 * Members are in id order. */

/**
 * Start the status output from a Cairn.Members response @p members
 * (borrowed). On success the caller owns *out; the items of its "Members"
 * array are what cli_status_set_node and cli_status_set_error fill in.
 * Errors: INVALID_ARGUMENT (SerializationException in @p err: no Members
 * list, or a member without an integer Id), RESOURCE_EXHAUSTED.
 */
int cli_status_from_members(const json_t *members,
                            json_t **out,
                            struct cairn_error *err);

/**
 * Fill the member @p m (an item of the status' "Members") from that node's
 * Cairn.NodeStatus response @p node (borrowed). A node that answers with
 * another Id than the member's also gets an "Error" saying so: its API
 * address belongs to another node. 0 or RESOURCE_EXHAUSTED.
 */
int cli_status_set_node(json_t *m, const json_t *node);

/**
 * Mark the member @p m as not answering: "State" is "unreachable" when the
 * call got no answer (a transport error: UNAVAILABLE or DEADLINE_EXCEEDED
 * without an error name), "error" when the node answered with an error;
 * "Error" is "ErrorName: message" or the message. 0 or RESOURCE_EXHAUSTED.
 */
int cli_status_set_error(json_t *m, const struct cairn_error *e);

/**
 * Append the status @p status in format @p fmt: json as cli_render does;
 * table as a line naming the leader and term, then one aligned row per
 * member (id, role, state, raft address, api address, term, commit and
 * applied index, the first 12 characters of the digest when any member has
 * one), then one line per member error; text as one tab-separated line per
 * member, no header: id, role, state, raft address, api address, term,
 * commit index, applied index, digest, error (empty when absent).
 * 0 or RESOURCE_EXHAUSTED.
 */
int cli_render_status(const json_t *status,
                      enum cli_output fmt,
                      struct buf *out);

#endif
