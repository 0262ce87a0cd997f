/* The cairn CLI's pure parts: see cli_args.h. The behaviour mirrors the AWS
 * CLI v2 (argument forms, shorthand grammar, botocore's parameter
 * validation messages, the json/text/table formatters) so that scripts
 * written for `aws ssm` work against Cairn unchanged. */
#include "cli_args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mp.h"
#include "mpjson.h"

/******************************************************************************
 *
 * The command table
 *
 *****************************************************************************/

static const struct cli_member tag_members[] = {
    {"Key", CLI_MEMBER_STRING, true},
    {"Value", CLI_MEMBER_STRING, true},
};

static const struct cli_shape tag_shape = {
    "Tag", tag_members, 2, "Key=string,Value=string ...",
    "[\n  {\n    \"Key\": \"string\",\n    \"Value\": \"string\"\n  }\n"
    "  ...\n]"};

static const struct cli_member string_filter_members[] = {
    {"Key", CLI_MEMBER_STRING, true},
    {"Option", CLI_MEMBER_STRING, false},
    {"Values", CLI_MEMBER_LIST, false},
};

static const struct cli_shape string_filter_shape = {
    "ParameterStringFilter", string_filter_members, 3,
    "Key=string,Option=string,Values=string,string ...",
    "[\n  {\n    \"Key\": \"string\",\n    \"Option\": \"string\",\n"
    "    \"Values\": [\"string\", ...]\n  }\n  ...\n]"};

static const struct cli_member legacy_filter_members[] = {
    {"Key", CLI_MEMBER_STRING, true},
    {"Values", CLI_MEMBER_LIST, true},
};

static const struct cli_shape legacy_filter_shape = {
    "ParametersFilter", legacy_filter_members, 2,
    "Key=string,Values=string,string ...",
    "[\n  {\n    \"Key\": \"Name\"|\"Type\"|\"KeyId\",\n"
    "    \"Values\": [\"string\", ...]\n  }\n  ...\n]"};

/* Help texts shared by several commands. */
#define H_NAME                                                            \
    "The name of the parameter: a name such as /app/prod/db-url, a name " \
    "with a version or label selector (/app/prod/db-url:3, "              \
    "/app/prod/db-url:live), or the parameter's ARN."
#define H_WRITE_NAME                                                      \
    "The fully qualified name of the parameter (not an ARN). Names in a " \
    "hierarchy start with a slash, have at most 15 levels and use only "  \
    "a-zA-Z0-9_.- besides the slashes."
#define H_DECRYPT                                                          \
    "Return decrypted values for SecureString parameters. Without it, a "  \
    "SecureString value is its base64 ciphertext. Ignored for String and " \
    "StringList parameters."
#define H_NEXT_TOKEN                                                   \
    "A raw NextToken from a previous call. Giving it turns automatic " \
    "pagination off, as in the AWS CLI; prefer --starting-token."
#define H_PFILTERS_PATH                                                      \
    "Filters to limit the results. GetParametersByPath accepts the keys "    \
    "Type, KeyId and Label. Options are Equals and BeginsWith (Label: "      \
    "Equals only). Several filters are ANDed; the values of one filter are " \
    "ORed."
#define H_PFILTERS_DESCRIBE                                                 \
    "Filters to limit the results. Keys: Name, Type, KeyId, Path, Tier, "   \
    "DataType and tag:KEY. Options are Equals and BeginsWith, plus "        \
    "Contains for Name, and Recursive or OneLevel (the default) for Path. " \
    "Several filters are ANDed; the values of one filter are ORed."
#define H_RESOURCE_TYPE "The type of the resource. Cairn supports Parameter."
#define H_RESOURCE_ID "The resource's ID: for a Parameter, its name."

static const struct cli_flag put_parameter_flags[] = {
    {"name", "Name", CLI_STRING, NULL, true, H_WRITE_NAME},
    {"description", "Description", CLI_STRING, NULL, false,
     "Information about the parameter (up to 1024 characters)."},
    {"value", "Value", CLI_STRING, NULL, true,
     "The parameter's value: up to 4 KB for the Standard tier, 8 KB for "
     "Advanced. Use file://PATH to read it from a file. A StringList is one "
     "string of comma-separated items."},
    {"type", "Type", CLI_STRING, NULL, false,
     "String, StringList or SecureString. Required when the parameter is "
     "created, optional when it is overwritten."},
    {"key-id", "KeyId", CLI_STRING, NULL, false,
     "The key that encrypts a SecureString (default alias/aws/ssm)."},
    {"overwrite", "Overwrite", CLI_BOOL, NULL, false,
     "Overwrite an existing parameter, creating a new version. The default "
     "is --no-overwrite: putting an existing name fails with "
     "ParameterAlreadyExists."},
    {"allowed-pattern", "AllowedPattern", CLI_STRING, NULL, false,
     "A regular expression the value must match, for example ^\\d+$."},
    {"tags", "Tags", CLI_STRUCT_LIST, &tag_shape, false,
     "Tags for a new parameter, for example Key=env,Value=prod "
     "Key=team,Value=core. Tags cannot be combined with --overwrite; use "
     "add-tags-to-resource for an existing parameter."},
    {"tier", "Tier", CLI_STRING, NULL, false,
     "Standard, Advanced or Intelligent-Tiering. Without it the "
     "default-parameter-tier service setting applies."},
    {"policies", "Policies", CLI_STRING, NULL, false,
     "Parameter policies (Advanced tier only) as a JSON array string, for "
     "example [{\"Type\":\"Expiration\",\"Version\":\"1.0\",\"Attributes\":"
     "{\"Timestamp\":\"2030-01-01T00:00:00.000Z\"}}]. Use file://PATH to "
     "read them from a file."},
    {"data-type", "DataType", CLI_STRING, NULL, false,
     "text (the default), aws:ec2:image or aws:ssm:integration."},
};

static const struct cli_flag get_parameter_flags[] = {
    {"name", "Name", CLI_STRING, NULL, true, H_NAME},
    {"with-decryption", "WithDecryption", CLI_BOOL, NULL, false, H_DECRYPT},
};

static const struct cli_flag get_parameters_flags[] = {
    {"names", "Names", CLI_STRING_LIST, NULL, true,
     "Up to 10 names (with optional selectors, or ARNs), separated by "
     "spaces. Names that do not exist are returned in InvalidParameters."},
    {"with-decryption", "WithDecryption", CLI_BOOL, NULL, false, H_DECRYPT},
};

static const struct cli_flag get_parameters_by_path_flags[] = {
    {"path", "Path", CLI_STRING, NULL, true,
     "The hierarchy to list, starting with a slash, such as /app/prod. The "
     "path / lists the whole store."},
    {"recursive", "Recursive", CLI_BOOL, NULL, false,
     "List every level below the path, not only its direct children."},
    {"parameter-filters", "ParameterFilters", CLI_STRUCT_LIST,
     &string_filter_shape, false, H_PFILTERS_PATH},
    {"with-decryption", "WithDecryption", CLI_BOOL, NULL, false, H_DECRYPT},
    {"max-results", "MaxResults", CLI_INT, NULL, false,
     "Items per call (1 to 10), like --page-size."},
    {"next-token", "NextToken", CLI_STRING, NULL, false, H_NEXT_TOKEN},
};

static const struct cli_flag get_parameter_history_flags[] = {
    {"name", "Name", CLI_STRING, NULL, true,
     "The name of the parameter, or its ARN."},
    {"with-decryption", "WithDecryption", CLI_BOOL, NULL, false, H_DECRYPT},
    {"max-results", "MaxResults", CLI_INT, NULL, false,
     "Items per call (1 to 50), like --page-size."},
    {"next-token", "NextToken", CLI_STRING, NULL, false, H_NEXT_TOKEN},
};

static const struct cli_flag delete_parameter_flags[] = {
    {"name", "Name", CLI_STRING, NULL, true,
     "The name of the parameter to delete (not an ARN)."},
};

static const struct cli_flag delete_parameters_flags[] = {
    {"names", "Names", CLI_STRING_LIST, NULL, true,
     "Up to 10 names, separated by spaces. Names that do not exist are "
     "returned in InvalidParameters."},
};

static const struct cli_flag describe_parameters_flags[] = {
    {"filters", "Filters", CLI_STRUCT_LIST, &legacy_filter_shape, false,
     "Deprecated: use --parameter-filters. Keys Name, Type and KeyId."},
    {"parameter-filters", "ParameterFilters", CLI_STRUCT_LIST,
     &string_filter_shape, false, H_PFILTERS_DESCRIBE},
    {"max-results", "MaxResults", CLI_INT, NULL, false,
     "Items per call (1 to 50), like --page-size."},
    {"next-token", "NextToken", CLI_STRING, NULL, false, H_NEXT_TOKEN},
    {"shared", "Shared", CLI_BOOL, NULL, false,
     "List parameters shared with you."},
};

static const struct cli_flag label_flags[] = {
    {"name", "Name", CLI_STRING, NULL, true,
     "The name of the parameter (not an ARN)."},
    {"parameter-version", "ParameterVersion", CLI_INT, NULL, false,
     "The version to label; the latest version when omitted."},
    {"labels", "Labels", CLI_STRING_LIST, NULL, true,
     "Up to 10 labels, separated by spaces. A label already on another "
     "version moves to this one."},
};

static const struct cli_flag unlabel_flags[] = {
    {"name", "Name", CLI_STRING, NULL, true,
     "The name of the parameter (not an ARN)."},
    {"parameter-version", "ParameterVersion", CLI_INT, NULL, true,
     "The version to remove the labels from."},
    {"labels", "Labels", CLI_STRING_LIST, NULL, true,
     "Up to 10 labels to remove, separated by spaces."},
};

static const struct cli_flag add_tags_flags[] = {
    {"resource-type", "ResourceType", CLI_STRING, NULL, true, H_RESOURCE_TYPE},
    {"resource-id", "ResourceId", CLI_STRING, NULL, true, H_RESOURCE_ID},
    {"tags", "Tags", CLI_STRUCT_LIST, &tag_shape, true,
     "One or more tags, such as Key=env,Value=prod Key=team,Value=core. A "
     "key that exists gets the new value."},
};

static const struct cli_flag remove_tags_flags[] = {
    {"resource-type", "ResourceType", CLI_STRING, NULL, true, H_RESOURCE_TYPE},
    {"resource-id", "ResourceId", CLI_STRING, NULL, true, H_RESOURCE_ID},
    {"tag-keys", "TagKeys", CLI_STRING_LIST, NULL, true,
     "The keys of the tags to remove, separated by spaces."},
};

static const struct cli_flag list_tags_flags[] = {
    {"resource-type", "ResourceType", CLI_STRING, NULL, true, H_RESOURCE_TYPE},
    {"resource-id", "ResourceId", CLI_STRING, NULL, true, H_RESOURCE_ID},
};

#define H_SETTING_ID                                                         \
    "The setting's ID, such as /ssm/parameter-store/default-parameter-tier " \
    "or /ssm/parameter-store/high-throughput-enabled, or its ARN."

static const struct cli_flag setting_id_flags[] = {
    {"setting-id", "SettingId", CLI_STRING, NULL, true, H_SETTING_ID},
};

static const struct cli_flag update_setting_flags[] = {
    {"setting-id", "SettingId", CLI_STRING, NULL, true, H_SETTING_ID},
    {"setting-value", "SettingValue", CLI_STRING, NULL, true,
     "The new value: Standard, Advanced or Intelligent-Tiering for "
     "default-parameter-tier; true or false for high-throughput-enabled."},
};

/* The cluster group (docs/cluster.md). */
#define H_NODE_ID "The node's Raft id, an integer of at least 1."

static const struct cli_flag cluster_status_flags[] = {
    {"digest", "Digest", CLI_BOOL, NULL, false,
     "Also ask every member for the SHA-256 digest of its store at its "
     "applied index: members at the same StoreIndex must show the same "
     "digest. Reading the whole store takes time, so the per-member "
     "deadline grows from 2 to 10 seconds."},
};

static const struct cli_flag cluster_add_flags[] = {
    {"id", "Id", CLI_ID, NULL, true, H_NODE_ID " It must not be in use."},
    {"raft-address", "RaftAddress", CLI_ADDRESS, NULL, true,
     "The new node's Raft address, HOST:PORT (the cairnd --raft option)."},
    {"api-address", "ApiAddress", CLI_ADDRESS, NULL, false,
     "The new node's client API address, HOST:PORT (the cairnd --api "
     "option). The node registers it itself once it runs; give it to have "
     "`cluster status` reach the node at once."},
};

static const struct cli_flag cluster_remove_flags[] = {
    {"id", "Id", CLI_ID, NULL, true, H_NODE_ID},
};

static const struct cli_flag cluster_transfer_flags[] = {
    {"id", "Id", CLI_ID, NULL, false,
     H_NODE_ID " Without it the leader picks a voter."},
};

/* keygen runs locally: it writes a root key file (docs/encryption.md). */
static const struct cli_flag keygen_flags[] = {
    {"FILE", "File", CLI_PATH, NULL, true,
     "The root key file to create, with mode 0600. An existing file is "
     "never overwritten. Give it to cairnd with --root-key-file."},
};

/* The kms group (docs/encryption.md), with `aws kms`'s option names. */
#define H_KEY_ID                                                           \
    "The key: its id (1234abcd-12ab-34cd-56ef-1234567890ab), its ARN, an " \
    "alias name (alias/my-key) or an alias ARN. At most 2048 characters."
#define H_ALIAS_NAME                                                     \
    "The alias name, which starts with alias/, such as alias/app/prod. " \
    "Names starting with alias/aws/ are reserved."

static const struct cli_flag kms_create_key_flags[] = {
    {"description", "Description", CLI_STRING, NULL, false,
     "A description of the key, such as what it protects."},
};

static const struct cli_flag kms_key_id_flags[] = {
    {"key-id", "KeyId", CLI_KEY_ID, NULL, true, H_KEY_ID},
};

static const struct cli_flag kms_alias_target_flags[] = {
    {"alias-name", "AliasName", CLI_ALIAS_NAME, NULL, true, H_ALIAS_NAME},
    {"target-key-id", "TargetKeyId", CLI_KEY_ID, NULL, true,
     "The key the alias points to: its id or its ARN."},
};

static const struct cli_flag kms_delete_alias_flags[] = {
    {"alias-name", "AliasName", CLI_ALIAS_NAME, NULL, true, H_ALIAS_NAME},
};

static const struct cli_flag kms_list_aliases_flags[] = {
    {"key-id", "KeyId", CLI_KEY_ID, NULL, false,
     "List only the aliases of this key (its id or ARN). Without it every "
     "alias is listed."},
};

static const struct cli_flag kms_schedule_deletion_flags[] = {
    {"key-id", "KeyId", CLI_KEY_ID, NULL, true, H_KEY_ID},
    {"pending-window-in-days", "PendingWindowInDays", CLI_WINDOW_DAYS, NULL,
     false,
     "Days until the key is deleted, from 7 to 30 (the server's default is "
     "30). The key cannot be used meanwhile; cancel-key-deletion keeps it."},
};

#define FLAGS(a) a, sizeof(a) / sizeof((a)[0])
#define NO_FLAGS NULL, 0

static const struct cli_command commands[] = {
    {"put-parameter", "PutParameter",
     "Create a parameter, or a new version of one.", FLAGS(put_parameter_flags),
     NULL, 0},
    {"get-parameter", "GetParameter",
     "Get one parameter, a version or a label of it.",
     FLAGS(get_parameter_flags), NULL, 0},
    {"get-parameters", "GetParameters", "Get up to 10 parameters at once.",
     FLAGS(get_parameters_flags), NULL, 0},
    {"get-parameters-by-path", "GetParametersByPath",
     "List the parameters under a path.", FLAGS(get_parameters_by_path_flags),
     "Parameters", 10},
    {"get-parameter-history", "GetParameterHistory",
     "List every stored version of a parameter.",
     FLAGS(get_parameter_history_flags), "Parameters", 50},
    {"delete-parameter", "DeleteParameter", "Delete one parameter.",
     FLAGS(delete_parameter_flags), NULL, 0},
    {"delete-parameters", "DeleteParameters",
     "Delete up to 10 parameters at once.", FLAGS(delete_parameters_flags),
     NULL, 0},
    {"describe-parameters", "DescribeParameters",
     "List parameters' metadata, with filters.",
     FLAGS(describe_parameters_flags), "Parameters", 50},
    {"label-parameter-version", "LabelParameterVersion",
     "Attach labels to a version of a parameter.", FLAGS(label_flags), NULL, 0},
    {"unlabel-parameter-version", "UnlabelParameterVersion",
     "Remove labels from a version of a parameter.", FLAGS(unlabel_flags), NULL,
     0},
    {"add-tags-to-resource", "AddTagsToResource",
     "Add or overwrite tags of a parameter.", FLAGS(add_tags_flags), NULL, 0},
    {"remove-tags-from-resource", "RemoveTagsFromResource",
     "Remove tags from a parameter.", FLAGS(remove_tags_flags), NULL, 0},
    {"list-tags-for-resource", "ListTagsForResource",
     "List the tags of a parameter.", FLAGS(list_tags_flags), NULL, 0},
    {"get-service-setting", "GetServiceSetting", "Read a service setting.",
     FLAGS(setting_id_flags), NULL, 0},
    {"update-service-setting", "UpdateServiceSetting",
     "Change a service setting.", FLAGS(update_setting_flags), NULL, 0},
    {"reset-service-setting", "ResetServiceSetting",
     "Reset a service setting to its default.", FLAGS(setting_id_flags), NULL,
     0},
    /* "Keygen" is a title only: the command contacts no server. */
    {"keygen", "Keygen", "Write a new root key file (runs locally).",
     FLAGS(keygen_flags), NULL, 0},
    /* "ClusterStatus" is a title only: the command calls Cairn.Members,
     * then Cairn.NodeStatus on every member. */
    {CLI_CLUSTER_PREFIX "status", "ClusterStatus",
     "Show each member's role, state and indexes.", FLAGS(cluster_status_flags),
     NULL, 0},
    {CLI_CLUSTER_PREFIX "add", "Cairn.AddMember",
     "Add a node and wait until it is a voter.", FLAGS(cluster_add_flags), NULL,
     0},
    {CLI_CLUSTER_PREFIX "remove", "Cairn.RemoveMember",
     "Remove a node from the configuration.", FLAGS(cluster_remove_flags), NULL,
     0},
    {CLI_CLUSTER_PREFIX "transfer-leadership", "Cairn.TransferLeadership",
     "Hand leadership to another voter.", FLAGS(cluster_transfer_flags), NULL,
     0},
    {CLI_KMS_PREFIX "create-key", "Kms.CreateKey",
     "Create a key for SecureString parameters.", FLAGS(kms_create_key_flags),
     NULL, 0},
    {CLI_KMS_PREFIX "list-keys", "Kms.ListKeys", "List the keys' ids and ARNs.",
     NO_FLAGS, NULL, 0},
    {CLI_KMS_PREFIX "describe-key", "Kms.DescribeKey",
     "Show a key's metadata and state.", FLAGS(kms_key_id_flags), NULL, 0},
    {CLI_KMS_PREFIX "create-alias", "Kms.CreateAlias",
     "Give a key a new alias name.", FLAGS(kms_alias_target_flags), NULL, 0},
    {CLI_KMS_PREFIX "update-alias", "Kms.UpdateAlias",
     "Point an alias at another key.", FLAGS(kms_alias_target_flags), NULL, 0},
    {CLI_KMS_PREFIX "delete-alias", "Kms.DeleteAlias", "Delete an alias.",
     FLAGS(kms_delete_alias_flags), NULL, 0},
    {CLI_KMS_PREFIX "list-aliases", "Kms.ListAliases",
     "List the aliases, of every key or of one.", FLAGS(kms_list_aliases_flags),
     NULL, 0},
    {CLI_KMS_PREFIX "enable-key", "Kms.EnableKey",
     "Allow a disabled key to be used again.", FLAGS(kms_key_id_flags), NULL,
     0},
    {CLI_KMS_PREFIX "disable-key", "Kms.DisableKey",
     "Stop a key from encrypting and decrypting.", FLAGS(kms_key_id_flags),
     NULL, 0},
    {CLI_KMS_PREFIX "enable-key-rotation", "Kms.EnableKeyRotation",
     "Rotate a key's material every year.", FLAGS(kms_key_id_flags), NULL, 0},
    {CLI_KMS_PREFIX "disable-key-rotation", "Kms.DisableKeyRotation",
     "Stop the yearly rotation of a key.", FLAGS(kms_key_id_flags), NULL, 0},
    {CLI_KMS_PREFIX "rotate-key", "Kms.RotateKey",
     "Give a key new material; old versions decrypt.", FLAGS(kms_key_id_flags),
     NULL, 0},
    {CLI_KMS_PREFIX "schedule-key-deletion", "Kms.ScheduleKeyDeletion",
     "Delete a key after a wait of 7 to 30 days.",
     FLAGS(kms_schedule_deletion_flags), NULL, 0},
    {CLI_KMS_PREFIX "cancel-key-deletion", "Kms.CancelKeyDeletion",
     "Keep a key scheduled for deletion (disabled).", FLAGS(kms_key_id_flags),
     NULL, 0},
    {CLI_KMS_PREFIX "rotate-root-key", "Kms.RotateRootKey",
     "Re-wrap every key under the new root key.", NO_FLAGS, NULL, 0},
};

const struct cli_command *cli_commands(size_t *n)
{
    *n = sizeof(commands) / sizeof(commands[0]);
    return commands;
}

const struct cli_command *cli_command_find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

bool cli_command_is_cluster(const struct cli_command *cmd)
{
    return cmd != NULL && strncmp(cmd->name, CLI_CLUSTER_PREFIX,
                                  strlen(CLI_CLUSTER_PREFIX)) == 0;
}

bool cli_command_is_kms(const struct cli_command *cmd)
{
    return cmd != NULL &&
           strncmp(cmd->name, CLI_KMS_PREFIX, strlen(CLI_KMS_PREFIX)) == 0;
}

const char *cli_command_title(const struct cli_command *cmd)
{
    size_t n = strlen(CLI_KMS_OPERATION_PREFIX);

    if (cli_command_is_kms(cmd) &&
        strncmp(cmd->operation, CLI_KMS_OPERATION_PREFIX, n) == 0) {
        return cmd->operation + n;
    }
    return cmd->operation;
}

/* Whether @p cmd runs without a server (keygen). */
static bool is_local(const struct cli_command *cmd)
{
    return strcmp(cmd->name, "keygen") == 0;
}

/* The group of a command: its name's prefix ("cluster ", "kms "), or "" for
 * the top-level commands. */
static const char *command_group(const struct cli_command *cmd)
{
    if (cli_command_is_cluster(cmd)) {
        return CLI_CLUSTER_PREFIX;
    }
    if (cli_command_is_kms(cmd)) {
        return CLI_KMS_PREFIX;
    }
    return "";
}

/* The command named by the word @p word on the command line, in the group
 * @p group ("cluster ", "kms ", or "" for the top level). */
static const struct cli_command *command_word(const char *word,
                                              const char *group)
{
    size_t plen = strlen(group);

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const struct cli_command *c = &commands[i];
        if (strcmp(command_group(c), group) != 0) {
            continue;
        }
        if (strcmp(c->name + plen, word) == 0) {
            return c;
        }
    }
    return NULL;
}

/* Append the words of the commands of @p group, separated by @p sep:
 * "status | add | ..." for argparse's invalid choice message. */
static void group_words(struct buf *b, const char *group, const char *sep)
{
    bool first = true;

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const struct cli_command *c = &commands[i];
        if (strcmp(command_group(c), group) == 0) {
            buf_printf(b, "%s%s", first ? "" : sep, c->name + strlen(group));
            first = false;
        }
    }
}

/******************************************************************************
 *
 * Small helpers
 *
 *****************************************************************************/

static int diag_set(struct cli_diag *d, bool usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill @p d and return INVALID_ARGUMENT, the status of every user error. */
static int diag_set(struct cli_diag *d, bool usage, const char *fmt, ...)
{
    va_list ap;

    d->usage = usage;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    return CAIRN_INVALID_ARGUMENT;
}

static int diag_oom(struct cli_diag *d)
{
    d->usage = false;
    snprintf(d->msg, sizeof(d->msg), "out of memory");
    return CAIRN_RESOURCE_EXHAUSTED;
}

/* Copy a buffer's text into the diagnostic, truncating if needed. */
static int diag_from_buf(struct cli_diag *d, struct buf *b)
{
    if (b->oom) {
        return diag_oom(d);
    }
    d->usage = false;
    snprintf(d->msg, sizeof(d->msg), "%.*s", (int)b->len,
             b->data != NULL ? (const char *)b->data : "");
    return CAIRN_INVALID_ARGUMENT;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Python's string.whitespace. */
static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static const char *skip_space(const char *s)
{
    while (*s != '\0' && is_space((unsigned char)*s)) {
        s++;
    }
    return s;
}

static int append_repeat(struct buf *b, char c, long n)
{
    for (long i = 0; i < n; i++) {
        if (buf_append(b, &c, 1) != 0) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
    }
    return 0;
}

/* Strict UTF-8 check, as jansson applies it to strings. */
static bool utf8_valid(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);

    if (j == NULL) {
        return false;
    }
    json_decref(j);
    return true;
}

/* A JSON string that may hold bytes that are not UTF-8 (a server bug must
 * not stop the output); jansson stores them unchecked. */
static json_t *string_any(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);

    if (j == NULL) {
        j = json_stringn_nocheck(s, n);
    }
    return j;
}

/******************************************************************************
 *
 * file:// values
 *
 *****************************************************************************/

/* Read a whole file into a NUL-terminated heap string. 0 or an errno. */
static int read_file(const char *path, char **out, size_t *len)
{
    struct buf b;
    char chunk[8192];
    FILE *f;
    size_t n;
    int e = 0;

    f = fopen(path, "rb");
    if (f == NULL) {
        return errno;
    }
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) != 0) {
            e = ENOMEM;
            break;
        }
    }
    if (e == 0 && ferror(f)) {
        e = EIO;
    }
    fclose(f);
    if (e == 0 && buf_terminate(&b) != 0) {
        e = ENOMEM;
    }
    if (e != 0) {
        buf_close(&b);
        return e;
    }
    *out = (char *)buf_steal(&b, len);
    if (*out == NULL) {
        /* An empty file: buf_steal of a never-grown buffer. */
        *out = strdup("");
        *len = 0;
        if (*out == NULL) {
            return ENOMEM;
        }
    }
    return 0;
}

int cli_load_value(const char *flag,
                   const char *arg,
                   char **out,
                   size_t *len,
                   struct cli_diag *d)
{
    const char *path = NULL;
    char *expanded = NULL;
    size_t n = 0;
    int e;

    if (starts_with(arg, "file://")) {
        path = arg + strlen("file://");
    } else if (starts_with(arg, "fileb://")) {
        path = arg + strlen("fileb://");
    }
    if (path == NULL) {
        *out = strdup(arg);
        if (*out == NULL) {
            return diag_oom(d);
        }
        if (len != NULL) {
            *len = strlen(arg);
        }
        return 0;
    }
    /* The AWS CLI expands "~" in paramfile paths (os.path.expanduser). */
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0') &&
        getenv("HOME") != NULL) {
        if (asprintf(&expanded, "%s%s", getenv("HOME"), path + 1) < 0) {
            return diag_oom(d);
        }
        path = expanded;
    }
    e = read_file(path, out, &n);
    if (e == 0 && !utf8_valid(*out, n)) {
        free(*out);
        *out = NULL;
        e = EILSEQ;
    }
    if (e != 0) {
        int rv = e == ENOMEM ? diag_oom(d)
                             : diag_set(d, false,
                                        "Error parsing parameter '--%s': "
                                        "Unable to load paramfile %s: %s",
                                        flag, arg,
                                        e == EILSEQ ? "not valid UTF-8 text"
                                                    : strerror(e));
        free(expanded);
        return rv;
    }
    free(expanded);
    if (len != NULL) {
        *len = n;
    }
    return 0;
}

/******************************************************************************
 *
 * Shorthand syntax
 *
 * The grammar of the AWS CLI (awscli/shorthand.py), re-implemented:
 *
 *   parameter   = keyval *("," keyval)
 *   keyval      = key ["@"] "=" [values]       key = 1*[a-zA-Z0-9-_.#/:]
 *   values      = csv-list / "[" list "]" / "{" keyval-list "}"
 *   csv-list    = first-value *("," second-value)
 *
 * A second value ends the list when a "=" follows it: that is the next key,
 * so "Key=Type,Values=String,SecureString" gives two members. Values may be
 * quoted with ' or ", and "\," is a literal comma in unquoted values.
 * "Key@=file://x" reads the value from a file.
 *
 *****************************************************************************/

/* Character classes of the AWS CLI's value regexes; bytes >= 0x80 (UTF-8)
 * belong to all of them. */
static bool sh_start(unsigned char c)
{
    if (c >= 0x80) {
        return true;
    }
    return c > 0x20 && c != '"' && c != '\'' && c != ',' && c != '=' &&
           c != '[' && c != '{';
}

static bool sh_first_follow(unsigned char c)
{
    if (c >= 0x80 || is_space(c)) {
        return true;
    }
    return c > 0x20 && c != '"' && c != '\'' && c != ',' && c != ']' &&
           c != '}';
}

static bool sh_second_follow(unsigned char c)
{
    if (c >= 0x80 || is_space(c)) {
        return true;
    }
    return c > 0x20 && c != '"' && c != '\'' && c != ',' && c != '=';
}

enum sh_error {
    SH_OK,
    SH_SYNTAX,    /* expected/actual at err_index */
    SH_DUPLICATE, /* second instance of a key */
    SH_FATAL,     /* out of memory, or a paramfile error already in d */
};

struct sh
{
    const char *s;
    size_t len;
    size_t i;
    const char *flag;
    struct cli_diag *d;
    bool paramfile; /* the current key was written "key@=" */
    enum sh_error err;
    int fatal_rv;
    char expected[32];
    char actual[16];
    size_t err_index;
    char dup_key[128];
};

static bool sh_eof(const struct sh *p)
{
    return p->i >= p->len;
}

static int sh_cur(const struct sh *p)
{
    return sh_eof(p) ? -1 : (unsigned char)p->s[p->i];
}

static void sh_ws(struct sh *p)
{
    while (!sh_eof(p) && is_space((unsigned char)p->s[p->i])) {
        p->i++;
    }
}

static bool sh_syntax(struct sh *p, const char *expected, const char *actual)
{
    p->err = SH_SYNTAX;
    snprintf(p->expected, sizeof(p->expected), "%s", expected);
    snprintf(p->actual, sizeof(p->actual), "%s", actual);
    p->err_index = p->i;
    return false;
}

static bool sh_fatal(struct sh *p, int rv)
{
    p->err = SH_FATAL;
    p->fatal_rv = rv;
    return false;
}

/* Consume @p c, optionally with whitespace around it. */
static bool sh_expect(struct sh *p, char c, bool ws)
{
    char exp[2] = {c, '\0'};
    char act[2];

    if (ws) {
        sh_ws(p);
    }
    if (sh_eof(p)) {
        return sh_syntax(p, exp, "EOF");
    }
    if (p->s[p->i] != c) {
        act[0] = p->s[p->i];
        act[1] = '\0';
        return sh_syntax(p, exp, act);
    }
    p->i++;
    if (ws) {
        sh_ws(p);
    }
    return true;
}

/* Make a JSON string of a value, reading the file when the key was
 * written "key@=" and the value is a file:// reference. */
static json_t *sh_string(struct sh *p, const char *v, size_t n)
{
    json_t *j;

    if (!utf8_valid(v, n)) {
        diag_set(p->d, false,
                 "Error parsing parameter '--%s': value is not valid UTF-8",
                 p->flag);
        sh_fatal(p, CAIRN_INVALID_ARGUMENT);
        return NULL;
    }
    if (p->paramfile &&
        (starts_with(v, "file://") || starts_with(v, "fileb://"))) {
        char *arg = strndup(v, n);
        char *content = NULL;
        size_t clen = 0;
        int rv;
        if (arg == NULL) {
            sh_fatal(p, diag_oom(p->d));
            return NULL;
        }
        rv = cli_load_value(p->flag, arg, &content, &clen, p->d);
        free(arg);
        if (rv != 0) {
            sh_fatal(p, rv);
            return NULL;
        }
        j = json_stringn(content, clen);
        free(content);
    } else {
        j = json_stringn(v, n);
    }
    if (j == NULL) {
        sh_fatal(p, diag_oom(p->d));
    }
    return j;
}

/* An unquoted value: the matched run with "\," turned into "," and
 * trailing whitespace removed. @p second selects the stricter class used
 * after a comma. Returns NULL with SH_SYNTAX when nothing matches and
 * @p must is set; an empty string when nothing matches otherwise. */
static json_t *sh_bare(struct sh *p, bool second, bool must)
{
    size_t start = p->i;
    struct buf v;
    json_t *j;

    buf_init(&v);
    while (!sh_eof(p)) {
        unsigned char c = (unsigned char)p->s[p->i];
        bool first_char = p->i == start;
        if (c == '\\' && p->i + 1 < p->len && p->s[p->i + 1] == ',') {
            buf_append(&v, ",", 1);
            p->i += 2;
            continue;
        }
        if (first_char ? !sh_start(c)
                       : !(second ? sh_second_follow(c) : sh_first_follow(c))) {
            break;
        }
        buf_append(&v, &p->s[p->i], 1);
        p->i++;
    }
    if (p->i == start && must) {
        buf_close(&v);
        sh_syntax(p, second ? "<second>" : "<first>", "<none>");
        return NULL;
    }
    while (v.len > 0 && is_space(v.data[v.len - 1])) {
        v.len--;
    }
    if (v.oom) {
        buf_close(&v);
        sh_fatal(p, diag_oom(p->d));
        return NULL;
    }
    j = sh_string(p, v.data != NULL ? (const char *)v.data : "", v.len);
    buf_close(&v);
    return j;
}

/* A quoted value. As the AWS CLI's regex does, a backslash escapes the
 * quote character; when the quote is never closed, the last escaped quote
 * closes it instead (the regex backtracks to there). */
static json_t *sh_quoted(struct sh *p)
{
    char q = p->s[p->i];
    size_t j = p->i + 1;
    size_t last_escaped = 0;
    size_t end;
    struct buf v;
    json_t *out;

    while (j < p->len && p->s[j] != q) {
        if (p->s[j] == '\\' && j + 1 < p->len && p->s[j + 1] == q) {
            last_escaped = j + 1;
            j += 2;
        } else {
            j++;
        }
    }
    if (j < p->len) {
        end = j;
    } else if (last_escaped != 0) {
        end = last_escaped;
    } else {
        sh_syntax(p, q == '\'' ? "<singled quoted>" : "<double quoted>",
                  "<none>");
        return NULL;
    }
    /* Unescape \q then \\, in that order, as the AWS CLI does. */
    buf_init(&v);
    for (size_t k = p->i + 1; k < end; k++) {
        if (p->s[k] == '\\' && k + 1 < end &&
            (p->s[k + 1] == q || p->s[k + 1] == '\\')) {
            k++;
        }
        buf_append(&v, &p->s[k], 1);
    }
    p->i = end + 1;
    if (v.oom) {
        buf_close(&v);
        sh_fatal(p, diag_oom(p->d));
        return NULL;
    }
    out = sh_string(p, v.data != NULL ? (const char *)v.data : "", v.len);
    buf_close(&v);
    return out;
}

static json_t *sh_first_value(struct sh *p)
{
    int c = sh_cur(p);

    if (c == '\'' || c == '"') {
        return sh_quoted(p);
    }
    return sh_bare(p, false, false);
}

static json_t *sh_second_value(struct sh *p)
{
    int c = sh_cur(p);

    if (c == '\'' || c == '"') {
        return sh_quoted(p);
    }
    return sh_bare(p, true, true);
}

static json_t *sh_explicit_values(struct sh *p);

static bool sh_key(struct sh *p, size_t *start, size_t *n)
{
    *start = p->i;
    while (!sh_eof(p)) {
        char c = p->s[p->i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("-_.#/:", c) != NULL)) {
            break;
        }
        p->i++;
    }
    *n = p->i - *start;
    return true;
}

/* The optional "@" of "key@=value". */
static void sh_at(struct sh *p)
{
    p->paramfile = false;
    sh_ws(p);
    if (sh_cur(p) == '@') {
        p->i++;
        sh_ws(p);
        p->paramfile = true;
    }
}

static json_t *sh_explicit_list(struct sh *p)
{
    json_t *list = json_array();

    if (list == NULL) {
        sh_fatal(p, diag_oom(p->d));
        return NULL;
    }
    if (!sh_expect(p, '[', true)) {
        goto err;
    }
    while (sh_cur(p) != ']') {
        json_t *v = sh_explicit_values(p);
        if (v == NULL) {
            goto err;
        }
        if (json_array_append_new(list, v) != 0) {
            sh_fatal(p, diag_oom(p->d));
            goto err;
        }
        sh_ws(p);
        if (sh_cur(p) != ']') {
            if (!sh_expect(p, ',', false)) {
                goto err;
            }
            sh_ws(p);
        }
    }
    if (!sh_expect(p, ']', false)) {
        goto err;
    }
    return list;
err:
    json_decref(list);
    return NULL;
}

static json_t *sh_hash_literal(struct sh *p)
{
    json_t *obj = json_object();

    if (obj == NULL) {
        sh_fatal(p, diag_oom(p->d));
        return NULL;
    }
    if (!sh_expect(p, '{', true)) {
        goto err;
    }
    while (sh_cur(p) != '}') {
        size_t ks, kn;
        char *key;
        json_t *v;
        sh_key(p, &ks, &kn);
        sh_at(p);
        if (!sh_expect(p, '=', true)) {
            goto err;
        }
        v = sh_explicit_values(p);
        if (v == NULL) {
            goto err;
        }
        sh_ws(p);
        if (sh_cur(p) != '}') {
            if (!sh_expect(p, ',', false)) {
                json_decref(v);
                goto err;
            }
            sh_ws(p);
        }
        key = strndup(p->s + ks, kn);
        if (key == NULL || json_object_set_new(obj, key, v) != 0) {
            free(key);
            sh_fatal(p, diag_oom(p->d));
            goto err;
        }
        free(key);
    }
    if (!sh_expect(p, '}', false)) {
        goto err;
    }
    return obj;
err:
    json_decref(obj);
    return NULL;
}

static json_t *sh_explicit_values(struct sh *p)
{
    int c = sh_cur(p);

    if (c == '[') {
        return sh_explicit_list(p);
    }
    if (c == '{') {
        return sh_hash_literal(p);
    }
    return sh_first_value(p);
}

static json_t *sh_csv_value(struct sh *p)
{
    json_t *first = sh_first_value(p);
    json_t *list;

    if (first == NULL) {
        return NULL;
    }
    sh_ws(p);
    if (sh_eof(p) || p->s[p->i] != ',') {
        return first;
    }
    if (!sh_expect(p, ',', true)) {
        json_decref(first);
        return NULL;
    }
    list = json_array();
    if (list == NULL || json_array_append_new(list, first) != 0) {
        json_decref(list);
        sh_fatal(p, diag_oom(p->d));
        return NULL;
    }
    for (;;) {
        json_t *cur = sh_second_value(p);
        bool ok = cur != NULL;
        if (ok) {
            sh_ws(p);
            if (sh_eof(p)) {
                if (json_array_append_new(list, cur) != 0) {
                    sh_fatal(p, diag_oom(p->d));
                    goto err;
                }
                break;
            }
            ok = sh_expect(p, ',', true);
            if (ok && json_array_append_new(list, cur) != 0) {
                sh_fatal(p, diag_oom(p->d));
                goto err;
            }
            if (!ok) {
                json_decref(cur);
            }
        }
        if (!ok) {
            /* A value not followed by a comma is the next key: give it
             * back and end the list there. At the end of the input it is
             * a real error (a trailing comma). */
            if (p->err != SH_SYNTAX || sh_eof(p)) {
                goto err;
            }
            p->err = SH_OK;
            while (p->i > 0 && p->s[p->i] != ',') {
                p->i--;
            }
            break;
        }
    }
    if (json_array_size(list) == 1) {
        json_t *only = json_incref(json_array_get(list, 0));
        json_decref(list);
        return only;
    }
    return list;
err:
    json_decref(list);
    return NULL;
}

static json_t *sh_values(struct sh *p)
{
    int c = sh_cur(p);

    if (c < 0) {
        return sh_string(p, "", 0);
    }
    if (c == '[') {
        return sh_explicit_list(p);
    }
    if (c == '{') {
        return sh_hash_literal(p);
    }
    return sh_csv_value(p);
}

/* The AWS CLI's error location: the input, then a caret under the failing
 * character (on the failing line when the input has several). */
static void sh_location(struct buf *b, const char *s, size_t len, size_t at)
{
    const char *nl_before = NULL;
    const char *nl_after;
    size_t spaces = at;

    if (at > len) {
        at = len;
    }
    for (size_t k = 0; k < at; k++) {
        if (s[k] == '\n') {
            nl_before = s + k;
        }
    }
    if (nl_before != NULL) {
        spaces = (size_t)(s + at - nl_before) - 1;
    }
    nl_after = memchr(s + at, '\n', len - at);
    if (nl_after != NULL) {
        buf_append(b, s, (size_t)(nl_after - s));
    } else {
        buf_append(b, s, len);
    }
    buf_append_str(b, "\n");
    append_repeat(b, ' ', (long)spaces);
    buf_append_str(b, "^");
    if (nl_after != NULL) {
        buf_append(b, nl_after, len - (size_t)(nl_after - s));
    }
}

static int sh_report(struct sh *p)
{
    struct buf b;
    int rv;

    if (p->err == SH_FATAL) {
        return p->fatal_rv;
    }
    buf_init(&b);
    buf_printf(&b, "Error parsing parameter '--%s': ", p->flag);
    if (p->err == SH_DUPLICATE) {
        buf_printf(&b, "Second instance of key \"%s\" encountered for input:\n",
                   p->dup_key);
        sh_location(&b, p->s, p->len, p->err_index);
        buf_append_str(&b,
                       "\nThis is often because there is a preceding \",\" "
                       "instead of a space.");
    } else {
        buf_printf(&b, "Expected: '%s', received: '%s' for input:\n",
                   p->expected, p->actual);
        sh_location(&b, p->s, p->len, p->err_index);
    }
    rv = diag_from_buf(p->d, &b);
    buf_close(&b);
    return rv;
}

int cli_shorthand_parse(const char *flag,
                        const char *text,
                        json_t **out,
                        struct cli_diag *d)
{
    struct sh p;
    json_t *obj;

    memset(&p, 0, sizeof(p));
    p.s = text;
    p.len = strlen(text);
    p.flag = flag;
    p.d = d;
    *out = NULL;
    obj = json_object();
    if (obj == NULL) {
        return diag_oom(d);
    }
    for (bool first = true;; first = false) {
        size_t ks, kn, last = p.i;
        char *key;
        json_t *v;
        if (!first) {
            if (sh_eof(&p)) {
                break;
            }
            if (!sh_expect(&p, ',', true)) {
                goto err;
            }
        }
        sh_key(&p, &ks, &kn);
        sh_at(&p);
        if (!sh_expect(&p, '=', true)) {
            goto err;
        }
        v = sh_values(&p);
        if (v == NULL) {
            goto err;
        }
        key = strndup(text + ks, kn);
        if (key == NULL) {
            json_decref(v);
            sh_fatal(&p, diag_oom(d));
            goto err;
        }
        if (json_object_get(obj, key) != NULL) {
            p.err = SH_DUPLICATE;
            p.err_index = last + 1;
            snprintf(p.dup_key, sizeof(p.dup_key), "%s", key);
            free(key);
            json_decref(v);
            goto err;
        }
        if (json_object_set_new(obj, key, v) != 0) {
            free(key);
            sh_fatal(&p, diag_oom(d));
            goto err;
        }
        free(key);
    }
    *out = obj;
    return 0;
err:
    json_decref(obj);
    return sh_report(&p);
}

/******************************************************************************
 *
 * Python renderings: str() and repr() of values, float repr
 *
 * botocore's validation messages and the AWS text and table formats print
 * values with Python's str(); matching it keeps output identical.
 *
 *****************************************************************************/

/* Python's repr(float): the shortest digits that round-trip, in fixed
 * notation for exponents -4..15, otherwise as 1.5e+16. */
static int py_float(struct buf *b, double v, bool json)
{
    char tmp[40];
    char digits[24];
    size_t nd = 0;
    int exp10;
    const char *e;

    if (isnan(v)) {
        return buf_append_str(b, json ? "NaN" : "nan");
    }
    if (isinf(v)) {
        return buf_append_str(b, v > 0 ? (json ? "Infinity" : "inf")
                                       : (json ? "-Infinity" : "-inf"));
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    /* tmp is [-]d[.ddd]e[+-]XX */
    const char *s = tmp;
    if (*s == '-') {
        buf_append_str(b, "-");
        s++;
    }
    for (; *s != 'e'; s++) {
        if (*s != '.') {
            digits[nd++] = *s;
        }
    }
    e = s + 1;
    exp10 = atoi(e);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            buf_append_str(b, "0.");
            append_repeat(b, '0', -exp10 - 1);
            buf_append(b, digits, nd);
        } else {
            size_t int_len = (size_t)exp10 + 1;
            if (nd <= int_len) {
                buf_append(b, digits, nd);
                append_repeat(b, '0', (long)(int_len - nd));
                buf_append_str(b, ".0");
            } else {
                buf_append(b, digits, int_len);
                buf_append_str(b, ".");
                buf_append(b, digits + int_len, nd - int_len);
            }
        }
    } else {
        buf_append(b, digits, 1);
        if (nd > 1) {
            buf_append_str(b, ".");
            buf_append(b, digits + 1, nd - 1);
        }
        buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    return b->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

static void py_repr(struct buf *b, const json_t *v);

/* Python's repr(str): single quotes unless the text has a single quote and
 * no double quote. */
static void py_repr_str(struct buf *b, const char *s, size_t n)
{
    char q = '\'';

    if (memchr(s, '\'', n) != NULL && memchr(s, '"', n) == NULL) {
        q = '"';
    }
    buf_append(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q) {
            buf_append(b, "\\", 1);
            buf_append(b, &s[i], 1);
        } else if (c == '\n') {
            buf_append_str(b, "\\n");
        } else if (c == '\r') {
            buf_append_str(b, "\\r");
        } else if (c == '\t') {
            buf_append_str(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(b, "\\x%02x", c);
        } else {
            buf_append(b, &s[i], 1);
        }
    }
    buf_append(b, &q, 1);
}

/* Python's str(): strings bare, containers as their repr. */
static void py_str(struct buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
        case JSON_STRING:
            buf_append(b, json_string_value(v), json_string_length(v));
            return;
        case JSON_INTEGER:
            buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            return;
        case JSON_REAL:
            py_float(b, json_real_value(v), false);
            return;
        case JSON_TRUE:
            buf_append_str(b, "True");
            return;
        case JSON_FALSE:
            buf_append_str(b, "False");
            return;
        case JSON_NULL:
            buf_append_str(b, "None");
            return;
        default:
            py_repr(b, v);
            return;
    }
}

static void py_repr(struct buf *b, const json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;
    bool first = true;

    switch (json_typeof(v)) {
        case JSON_STRING:
            py_repr_str(b, json_string_value(v), json_string_length(v));
            return;
        case JSON_ARRAY:
            buf_append_str(b, "[");
            json_array_foreach(v, i, item)
            {
                if (i > 0) {
                    buf_append_str(b, ", ");
                }
                py_repr(b, item);
            }
            buf_append_str(b, "]");
            return;
        case JSON_OBJECT:
            buf_append_str(b, "{");
            json_object_foreach((json_t *)v, key, item)
            {
                if (!first) {
                    buf_append_str(b, ", ");
                }
                first = false;
                py_repr_str(b, key, strlen(key));
                buf_append_str(b, ": ");
                py_repr(b, item);
            }
            buf_append_str(b, "}");
            return;
        default:
            py_str(b, v);
            return;
    }
}

static const char *py_type(const json_t *v)
{
    switch (json_typeof(v)) {
        case JSON_OBJECT:
            return "<class 'dict'>";
        case JSON_ARRAY:
            return "<class 'list'>";
        case JSON_STRING:
            return "<class 'str'>";
        case JSON_INTEGER:
            return "<class 'int'>";
        case JSON_REAL:
            return "<class 'float'>";
        case JSON_TRUE:
        case JSON_FALSE:
            return "<class 'bool'>";
        default:
            return "<class 'NoneType'>";
    }
}

#define PY_VALID_STR "<class 'str'>"
#define PY_VALID_LIST "<class 'list'>, <class 'tuple'>"
#define PY_VALID_DICT "<class 'dict'>"

/* One botocore "Invalid type" line. */
static void invalid_type(struct buf *b,
                         const char *path,
                         const json_t *v,
                         const char *valid)
{
    buf_printf(b, "\nInvalid type for parameter %s, value: ", path);
    py_str(b, v);
    buf_printf(b, ", type: %s, valid types: %s", py_type(v), valid);
}

/******************************************************************************
 *
 * Structure lists: shorthand or JSON, checked against the shape
 *
 *****************************************************************************/

static const struct cli_member *shape_member(const struct cli_shape *s,
                                             const char *name)
{
    for (size_t i = 0; i < s->n_members; i++) {
        if (strcmp(s->members[i].name, name) == 0) {
            return &s->members[i];
        }
    }
    return NULL;
}

/* Check one item as botocore's validator does, appending one line per
 * problem to @p errs: missing required members, then unknown members,
 * then wrong types. A shorthand string given to a list member becomes a
 * one-item list first (the AWS CLI's back-compat rule). */
static int check_item(const struct cli_shape *s,
                      const char *field,
                      size_t idx,
                      json_t *item,
                      bool shorthand,
                      struct buf *errs)
{
    char path[256];
    const char *key;
    json_t *v;

    snprintf(path, sizeof(path), "%s[%zu]", field, idx);
    if (!json_is_object(item)) {
        invalid_type(errs, path, item, PY_VALID_DICT);
        return 0;
    }
    for (size_t i = 0; i < s->n_members; i++) {
        if (s->members[i].required &&
            json_object_get(item, s->members[i].name) == NULL) {
            buf_printf(errs, "\nMissing required parameter in %s: \"%s\"", path,
                       s->members[i].name);
        }
    }
    json_object_foreach(item, key, v)
    {
        if (shape_member(s, key) == NULL) {
            buf_printf(errs,
                       "\nUnknown parameter in %s: \"%s\", must be one "
                       "of: ",
                       path, key);
            for (size_t i = 0; i < s->n_members; i++) {
                buf_printf(errs, "%s%s", i > 0 ? ", " : "", s->members[i].name);
            }
        }
    }
    json_object_foreach(item, key, v)
    {
        const struct cli_member *m = shape_member(s, key);
        char mpath[512];
        size_t i;
        json_t *e;
        if (m == NULL) {
            continue;
        }
        snprintf(mpath, sizeof(mpath), "%s.%s", path, key);
        if (m->kind == CLI_MEMBER_STRING) {
            if (!json_is_string(v)) {
                invalid_type(errs, mpath, v, PY_VALID_STR);
            }
            continue;
        }
        if (shorthand && json_is_string(v)) {
            json_t *list = json_array();
            if (list == NULL || json_array_append(list, v) != 0 ||
                json_object_set_new(item, key, list) != 0) {
                return CAIRN_RESOURCE_EXHAUSTED;
            }
            continue;
        }
        if (!json_is_array(v)) {
            invalid_type(errs, mpath, v, PY_VALID_LIST);
            continue;
        }
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                char epath[560];
                snprintf(epath, sizeof(epath), "%s[%zu]", mpath, i);
                invalid_type(errs, epath, e, PY_VALID_STR);
            }
        }
    }
    return errs->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

/* Parse JSON text given to a flag, with the AWS CLI's message on error. */
static int parse_json_arg(const char *flag,
                          const char *text,
                          json_t **out,
                          struct cli_diag *d)
{
    json_error_t jerr;

    *out = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (*out == NULL) {
        return diag_set(d, false,
                        "Error parsing parameter '--%s': Invalid JSON: %s "
                        "(line %d column %d)\nJSON received: %s",
                        flag, jerr.text, jerr.line, jerr.column, text);
    }
    return 0;
}

int cli_struct_list(const struct cli_flag *f,
                    char *const *vals,
                    size_t n,
                    json_t **out,
                    struct cli_diag *d)
{
    json_t *list = NULL;
    struct buf errs;
    int rv = 0;
    size_t i;
    json_t *item;

    *out = NULL;
    buf_init(&errs);
    if (n == 1 && *skip_space(vals[0]) == '[') {
        rv = parse_json_arg(f->name, vals[0], &list, d);
        if (rv != 0) {
            return rv;
        }
        if (!json_is_array(list)) {
            invalid_type(&errs, f->field, list, PY_VALID_LIST);
        } else {
            json_array_foreach(list, i, item)
            {
                rv = check_item(f->shape, f->field, i, item, false, &errs);
                if (rv != 0) {
                    goto out;
                }
            }
        }
    } else {
        list = json_array();
        if (list == NULL) {
            rv = diag_oom(d);
            goto out;
        }
        for (i = 0; i < n; i++) {
            bool shorthand = *skip_space(vals[i]) != '{';
            rv = shorthand ? cli_shorthand_parse(f->name, vals[i], &item, d)
                           : parse_json_arg(f->name, vals[i], &item, d);
            if (rv != 0) {
                goto out;
            }
            if (json_array_append_new(list, item) != 0) {
                rv = diag_oom(d);
                goto out;
            }
            rv = check_item(f->shape, f->field, i, item, shorthand, &errs);
            if (rv != 0) {
                goto out;
            }
        }
    }
    if (errs.oom) {
        rv = diag_oom(d);
    } else if (errs.len > 0) {
        struct buf msg;
        buf_init(&msg);
        buf_printf(&msg, "Parameter validation failed:%.*s", (int)errs.len,
                   (const char *)errs.data);
        rv = diag_from_buf(d, &msg);
        buf_close(&msg);
    }
out:
    if (rv == CAIRN_RESOURCE_EXHAUSTED) {
        diag_oom(d);
    }
    buf_close(&errs);
    if (rv != 0) {
        json_decref(list);
        return rv;
    }
    *out = list;
    return 0;
}

/******************************************************************************
 *
 * Command lines
 *
 *****************************************************************************/

enum gopt_id {
    G_ENDPOINT,
    G_OUTPUT,
    G_CONSISTENCY,
    G_TIMEOUT,
    G_HELP,
    G_MAX_ITEMS,
    G_PAGE_SIZE,
    G_STARTING_TOKEN,
    G_NO_PAGINATE,
    G_CLI_INPUT_JSON,
    G_IGNORED, /* AWS options that mean nothing to Cairn */
};

struct gopt
{
    const char *name;
    enum gopt_id id;
    bool takes_value;
};

static const struct gopt gopts[] = {
    {"endpoint", G_ENDPOINT, true},
    {"endpoint-url", G_ENDPOINT, true},
    {"output", G_OUTPUT, true},
    {"consistency", G_CONSISTENCY, true},
    {"cli-read-timeout", G_TIMEOUT, true},
    {"timeout", G_TIMEOUT, true},
    {"help", G_HELP, false},
    {"max-items", G_MAX_ITEMS, true},
    {"page-size", G_PAGE_SIZE, true},
    {"starting-token", G_STARTING_TOKEN, true},
    {"no-paginate", G_NO_PAGINATE, false},
    {"cli-input-json", G_CLI_INPUT_JSON, true},
    /* Accepted so that `aws ssm` command lines run unchanged. */
    {"region", G_IGNORED, true},
    {"profile", G_IGNORED, true},
    {"no-verify-ssl", G_IGNORED, false},
    {"no-sign-request", G_IGNORED, false},
};

static const struct gopt *gopt_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(gopts) / sizeof(gopts[0]); i++) {
        if (strlen(gopts[i].name) == n &&
            strncmp(gopts[i].name, name, n) == 0) {
            return &gopts[i];
        }
    }
    return NULL;
}

/* Where a command flag appeared. The last occurrence wins, as in argparse. */
struct occ
{
    bool set;
    bool negated;             /* --no-FLAG */
    const char *inline_value; /* --flag=value */
    int first;                /* index of the first value in argv */
    int count;                /* number of values in argv */
};

/* argparse's idea of an option: "-x" or "--x", but not "-" or "-5". */
static bool looks_like_option(const char *a)
{
    if (a[0] != '-' || a[1] == '\0') {
        return false;
    }
    if (a[1] != '-') {
        char *end;
        errno = 0;
        strtod(a, &end);
        if (*end == '\0') {
            return false;
        }
    }
    return true;
}

static const struct cli_flag *flag_find(const struct cli_command *cmd,
                                        const char *name,
                                        size_t n,
                                        bool *negated,
                                        size_t *index)
{
    *negated = false;
    if (n > 3 && strncmp(name, "no-", 3) == 0) {
        for (size_t i = 0; i < cmd->n_flags; i++) {
            const struct cli_flag *f = &cmd->flags[i];
            if (f->kind == CLI_BOOL && strlen(f->name) == n - 3 &&
                strncmp(f->name, name + 3, n - 3) == 0) {
                *negated = true;
                *index = i;
                return f;
            }
        }
    }
    for (size_t i = 0; i < cmd->n_flags; i++) {
        if (cmd->flags[i].kind != CLI_PATH && strlen(cmd->flags[i].name) == n &&
            strncmp(cmd->flags[i].name, name, n) == 0) {
            *index = i;
            return &cmd->flags[i];
        }
    }
    return NULL;
}

static int parse_ll(const char *flag,
                    const char *s,
                    long long *out,
                    bool positive,
                    struct cli_diag *d)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    if (s[0] == '\0' || *skip_space(end) != '\0' || errno != 0) {
        return diag_set(d, true, "argument --%s: invalid int value: '%s'", flag,
                        s);
    }
    if (positive && *out < 1) {
        return diag_set(d, true, "argument --%s: must be at least 1, got %s",
                        flag, s);
    }
    return 0;
}

/* Whether @p s is an address libcairn and cairnd accept: "host:port" or
 * "[v6]:port" with a port from 1 to 65535. Commas and blanks are refused:
 * the address ends up in endpoint lists. */
static bool address_ok(const char *s)
{
    const char *port;
    const char *host_end;
    char *end;
    long p;

    if (s[0] == '[') {
        host_end = strchr(s, ']');
        if (host_end == NULL || host_end == s + 1 || host_end[1] != ':') {
            return false;
        }
        port = host_end + 2;
    } else {
        host_end = strchr(s, ':');
        if (host_end == NULL || host_end == s ||
            strchr(host_end + 1, ':') != NULL) {
            return false;
        }
        port = host_end + 1;
    }
    for (const char *c = s; c < host_end; c++) {
        unsigned char u = (unsigned char)*c;
        if (u <= 0x20 || u >= 0x7f || u == ',') {
            return false;
        }
    }
    if (port[0] < '0' || port[0] > '9') {
        return false;
    }
    errno = 0;
    p = strtol(port, &end, 10);
    return *end == '\0' && errno == 0 && p >= 1 && p <= 65535;
}

static int address_error(const char *flag,
                         const char *value,
                         struct cli_diag *d)
{
    return diag_set(d, true,
                    "argument --%s: invalid address '%s': expected HOST:PORT "
                    "(or [IPv6]:PORT) with a port from 1 to 65535",
                    flag, value);
}

/* The number of characters (code points) of the valid UTF-8 @p s, as
 * KMS and botocore count a string's length. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

/* Whether @p s is an alias name the CLI lets through: "alias/" and a
 * name. The server checks the rest (characters, length, alias/aws/). */
static bool alias_name_ok(const char *s)
{
    return starts_with(s, CLI_ALIAS_PREFIX) &&
           s[strlen(CLI_ALIAS_PREFIX)] != '\0';
}

/* Check the value @p s of the kms flag @p f (CLI_KEY_ID, CLI_ALIAS_NAME,
 * CLI_WINDOW_DAYS); on success a window's value is in *days. */
static int kms_value(const struct cli_flag *f,
                     const char *s,
                     long long *days,
                     struct cli_diag *d)
{
    size_t n;
    int rv;

    switch (f->kind) {
        case CLI_KEY_ID:
            n = utf8_chars(s);
            if (n < 1 || n > CLI_KEY_ID_MAX) {
                return diag_set(d, true,
                                "argument --%s: must be 1 to %d characters "
                                "long, got %zu",
                                f->name, CLI_KEY_ID_MAX, n);
            }
            return 0;
        case CLI_ALIAS_NAME:
            if (!alias_name_ok(s)) {
                return diag_set(d, true,
                                "argument --%s: must start with "
                                "\"" CLI_ALIAS_PREFIX
                                "\" followed by the "
                                "alias, got '%s'",
                                f->name, s);
            }
            return 0;
        case CLI_WINDOW_DAYS:
            rv = parse_ll(f->name, s, days, false, d);
            if (rv == 0 && (*days < CLI_WINDOW_MIN || *days > CLI_WINDOW_MAX)) {
                rv = diag_set(d, true,
                              "argument --%s: must be from %d to %d (days), "
                              "got %s",
                              f->name, CLI_WINDOW_MIN, CLI_WINDOW_MAX, s);
            }
            return rv;
        default:
            return 0;
    }
}

/* Apply one global option with its value (NULL for flags). */
static int apply_gopt(const struct gopt *g,
                      const char *value,
                      struct cli_options *o,
                      const char **cli_input_json,
                      struct cli_diag *d)
{
    double secs;
    char *end;

    switch (g->id) {
        case G_ENDPOINT:
            o->endpoint = value;
            return 0;
        case G_OUTPUT:
            if (strcmp(value, "json") == 0) {
                o->output = CLI_OUTPUT_JSON;
            } else if (strcmp(value, "text") == 0) {
                o->output = CLI_OUTPUT_TEXT;
            } else if (strcmp(value, "table") == 0) {
                o->output = CLI_OUTPUT_TABLE;
            } else {
                return diag_set(d, true,
                                "argument --output: Invalid choice '%s', "
                                "valid choices are: json | text | table",
                                value);
            }
            return 0;
        case G_CONSISTENCY:
            if (strcmp(value, "linearizable") == 0) {
                o->stale = false;
            } else if (strcmp(value, "stale") == 0) {
                o->stale = true;
            } else {
                return diag_set(d, true,
                                "argument --consistency: Invalid choice "
                                "'%s', valid choices are: linearizable | "
                                "stale",
                                value);
            }
            return 0;
        case G_TIMEOUT:
            errno = 0;
            secs = strtod(value, &end);
            if (value[0] == '\0' || *end != '\0' || errno != 0 ||
                !(secs >= 0) || secs > 86400.0 * 365) {
                return diag_set(d, true,
                                "argument --%s: invalid number of seconds: "
                                "'%s'",
                                g->name, value);
            }
            /* 0 means no limit in the AWS CLI; a day stands in for it. */
            o->timeout_ms =
                secs == 0 ? 86400000u : (unsigned)ceil(secs * 1000.0);
            return 0;
        case G_HELP:
            o->help = true;
            return 0;
        case G_MAX_ITEMS:
            return parse_ll(g->name, value, &o->max_items, true, d);
        case G_PAGE_SIZE:
            return parse_ll(g->name, value, &o->page_size, true, d);
        case G_STARTING_TOKEN:
            o->starting_token = value;
            return 0;
        case G_NO_PAGINATE:
            o->paginate = false;
            return 0;
        case G_CLI_INPUT_JSON:
            *cli_input_json = value;
            return 0;
        case G_IGNORED:
            return 0;
    }
    return 0;
}

/* Turn a flag's values into its request member. */
static int flag_value(const struct cli_flag *f,
                      const struct occ *oc,
                      char *const argv[],
                      json_t **out,
                      struct cli_diag *d)
{
    size_t n = oc->inline_value != NULL ? 1 : (size_t)oc->count;
    char **vals;
    int rv = 0;
    json_t *j = NULL;
    long long ll;

    *out = NULL;
    if (f->kind == CLI_BOOL) {
        *out = json_boolean(!oc->negated);
        return *out == NULL ? diag_oom(d) : 0;
    }
    if (f->kind == CLI_PATH) {
        /* A path names a file to create: file:// has no meaning here. */
        const char *path = argv[oc->first];
        if (path[0] == '\0') {
            return diag_set(d, true, "argument %s: must not be empty", f->name);
        }
        if (!utf8_valid(path, strlen(path))) {
            return diag_set(d, true, "argument %s: the path is not valid UTF-8",
                            f->name);
        }
        *out = json_string(path);
        return *out == NULL ? diag_oom(d) : 0;
    }
    vals = calloc(n, sizeof(*vals));
    if (vals == NULL) {
        return diag_oom(d);
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        const char *arg = oc->inline_value != NULL ? oc->inline_value
                                                   : argv[oc->first + (int)i];
        rv = cli_load_value(f->name, arg, &vals[i], NULL, d);
    }
    if (rv != 0) {
        goto out;
    }
    switch (f->kind) {
        case CLI_STRING:
        case CLI_KEY_ID:
        case CLI_ALIAS_NAME:
            if (!utf8_valid(vals[0], strlen(vals[0]))) {
                rv = diag_set(d, false,
                              "Error parsing parameter '--%s': value is not "
                              "valid UTF-8",
                              f->name);
                break;
            }
            rv = kms_value(f, vals[0], &ll, d);
            if (rv != 0) {
                break;
            }
            j = json_string(vals[0]);
            rv = j == NULL ? diag_oom(d) : 0;
            break;
        case CLI_WINDOW_DAYS:
            rv = kms_value(f, vals[0], &ll, d);
            if (rv == 0) {
                j = json_integer((json_int_t)ll);
                rv = j == NULL ? diag_oom(d) : 0;
            }
            break;
        case CLI_INT:
        case CLI_ID:
            rv = parse_ll(f->name, vals[0], &ll, f->kind == CLI_ID, d);
            if (rv == 0) {
                j = json_integer((json_int_t)ll);
                rv = j == NULL ? diag_oom(d) : 0;
            }
            break;
        case CLI_ADDRESS:
            if (!address_ok(vals[0])) {
                rv = address_error(f->name, vals[0], d);
                break;
            }
            j = json_string(vals[0]);
            rv = j == NULL ? diag_oom(d) : 0;
            break;
        case CLI_STRING_LIST:
            if (n == 1 && *skip_space(vals[0]) == '[') {
                struct buf errs;
                size_t i;
                json_t *e;
                rv = parse_json_arg(f->name, vals[0], &j, d);
                if (rv != 0) {
                    break;
                }
                buf_init(&errs);
                if (!json_is_array(j)) {
                    invalid_type(&errs, f->field, j, PY_VALID_LIST);
                } else {
                    json_array_foreach(j, i, e)
                    {
                        if (!json_is_string(e)) {
                            char path[160];
                            snprintf(path, sizeof(path), "%s[%zu]", f->field,
                                     i);
                            invalid_type(&errs, path, e, PY_VALID_STR);
                        }
                    }
                }
                if (errs.len > 0 || errs.oom) {
                    struct buf msg;
                    buf_init(&msg);
                    buf_printf(&msg, "Parameter validation failed:%.*s",
                               (int)errs.len, (const char *)errs.data);
                    rv = errs.oom ? diag_oom(d) : diag_from_buf(d, &msg);
                    buf_close(&msg);
                }
                buf_close(&errs);
                break;
            }
            j = json_array();
            if (j == NULL) {
                rv = diag_oom(d);
                break;
            }
            for (size_t i = 0; i < n && rv == 0; i++) {
                json_t *s;
                if (!utf8_valid(vals[i], strlen(vals[i]))) {
                    rv = diag_set(d, false,
                                  "Error parsing parameter '--%s': value is "
                                  "not valid UTF-8",
                                  f->name);
                    break;
                }
                s = json_string(vals[i]);
                if (s == NULL || json_array_append_new(j, s) != 0) {
                    rv = diag_oom(d);
                }
            }
            break;
        case CLI_STRUCT_LIST:
            rv = cli_struct_list(f, vals, n, &j, d);
            break;
        case CLI_BOOL:
        case CLI_PATH:
            break;
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(vals[i]);
    }
    free(vals);
    if (rv != 0) {
        json_decref(j);
        return rv;
    }
    *out = j;
    return 0;
}

/* State of one cli_parse run. */
struct scan
{
    struct cli_invocation *inv;
    struct cli_diag *d;
    struct occ *occ;    /* one per flag of inv->cmd */
    struct buf unknown; /* "Unknown options" list */
    const char *cli_input_json;
    const char *paging_used[3]; /* --starting-token, --page-size, ... */
};

static void note_unknown(struct scan *s, const char *a)
{
    buf_printf(&s->unknown, "%s%s", s->unknown.len > 0 ? ", " : "", a);
}

/* Give the word argv[@p i] to the first positional argument of the
 * command that has none yet. False when there is no such argument: the
 * word is then an unknown option. */
static bool take_positional(struct scan *s, int i)
{
    const struct cli_command *cmd = s->inv->cmd;

    for (size_t k = 0; k < cmd->n_flags; k++) {
        struct occ *oc = &s->occ[k];
        if (cmd->flags[k].kind == CLI_PATH && !oc->set) {
            oc->set = true;
            oc->first = i;
            oc->count = 1;
            return true;
        }
    }
    return false;
}

/* The request: --cli-input-json first, then the flags over it. */
static int build_request(struct scan *s, char *const argv[])
{
    struct cli_invocation *inv = s->inv;
    const struct cli_command *cmd = inv->cmd;
    struct buf missing;
    int rv;

    inv->request = NULL;
    if (s->cli_input_json != NULL) {
        char *text = NULL;
        rv = cli_load_value("cli-input-json", s->cli_input_json, &text, NULL,
                            s->d);
        if (rv != 0) {
            return rv;
        }
        rv = parse_json_arg("cli-input-json", text, &inv->request, s->d);
        free(text);
        if (rv != 0) {
            return rv;
        }
        if (!json_is_object(inv->request)) {
            return diag_set(s->d, false,
                            "Error parsing parameter '--cli-input-json': "
                            "expected a JSON object");
        }
    } else {
        inv->request = json_object();
        if (inv->request == NULL) {
            return diag_oom(s->d);
        }
    }
    for (size_t i = 0; i < cmd->n_flags; i++) {
        json_t *v;
        if (!s->occ[i].set) {
            continue;
        }
        rv = flag_value(&cmd->flags[i], &s->occ[i], argv, &v, s->d);
        if (rv != 0) {
            return rv;
        }
        if (json_object_set_new(inv->request, cmd->flags[i].field, v) != 0) {
            return diag_oom(s->d);
        }
    }
    buf_init(&missing);
    for (size_t i = 0; i < cmd->n_flags; i++) {
        if (cmd->flags[i].required &&
            json_object_get(inv->request, cmd->flags[i].field) == NULL) {
            buf_printf(&missing, "%s%s%s", missing.len > 0 ? ", " : "",
                       cmd->flags[i].kind == CLI_PATH ? "" : "--",
                       cmd->flags[i].name);
        }
    }
    if (missing.len > 0 || missing.oom) {
        rv = missing.oom
                 ? diag_oom(s->d)
                 : diag_set(s->d, true,
                            "the following arguments are required: "
                            "%.*s",
                            (int)missing.len, (const char *)missing.data);
        buf_close(&missing);
        return rv;
    }
    buf_close(&missing);
    return 0;
}

/* Append botocore's message for a string member @p field whose length is
 * outside @p min..@p max, if it is. */
static void check_length(struct buf *errs,
                         const char *field,
                         const char *s,
                         size_t min,
                         size_t max)
{
    size_t n = utf8_chars(s);

    if (n < min) {
        buf_printf(errs,
                   "\nInvalid length for parameter %s, value: %zu, valid "
                   "min length: %zu",
                   field, n, min);
    } else if (n > max) {
        buf_printf(errs,
                   "\nInvalid length for parameter %s, value: %zu, valid "
                   "max length: %zu",
                   field, n, max);
    }
}

/* The kms group's members and keygen's path, checked in the request. */
static void check_member(struct buf *errs,
                         const struct cli_flag *f,
                         const json_t *v)
{
    json_int_t days;

    switch (f->kind) {
        case CLI_KEY_ID:
        case CLI_ALIAS_NAME:
        case CLI_PATH:
            if (!json_is_string(v)) {
                invalid_type(errs, f->field, v, PY_VALID_STR);
            } else if (f->kind == CLI_KEY_ID) {
                check_length(errs, f->field, json_string_value(v), 1,
                             CLI_KEY_ID_MAX);
            } else if (f->kind == CLI_PATH) {
                check_length(errs, f->field, json_string_value(v), 1, SIZE_MAX);
            } else if (!alias_name_ok(json_string_value(v))) {
                buf_printf(errs,
                           "\nInvalid value for parameter %s, value: %s, "
                           "must start with " CLI_ALIAS_PREFIX
                           " followed by the alias",
                           f->field, json_string_value(v));
            }
            break;
        case CLI_WINDOW_DAYS:
            if (!json_is_integer(v)) {
                invalid_type(errs, f->field, v, "<class 'int'>");
                break;
            }
            days = json_integer_value(v);
            if (days < CLI_WINDOW_MIN || days > CLI_WINDOW_MAX) {
                buf_printf(
                    errs,
                    "\nInvalid value for parameter %s, value: "
                    "%" JSON_INTEGER_FORMAT ", valid %s value: %d",
                    f->field, days, days < CLI_WINDOW_MIN ? "min" : "max",
                    days < CLI_WINDOW_MIN ? CLI_WINDOW_MIN : CLI_WINDOW_MAX);
            }
            break;
        default:
            break;
    }
}

/* Node ids, addresses, the kms group's values and paths are checked in
 * the request too, since --cli-input-json bypasses the flags' own
 * checks. */
static int check_members(struct scan *s)
{
    const struct cli_command *cmd = s->inv->cmd;
    struct buf errs;
    int rv = 0;

    buf_init(&errs);
    for (size_t i = 0; i < cmd->n_flags; i++) {
        const struct cli_flag *f = &cmd->flags[i];
        const json_t *v = json_object_get(s->inv->request, f->field);
        if (v == NULL) {
            continue;
        }
        if (f->kind == CLI_ID && !json_is_integer(v)) {
            invalid_type(&errs, f->field, v, "<class 'int'>");
        } else if (f->kind == CLI_ID && json_integer_value(v) < 1) {
            buf_printf(
                &errs,
                "\nInvalid value for parameter %s, value: %" JSON_INTEGER_FORMAT
                ", valid min value: 1",
                f->field, json_integer_value(v));
        } else if (f->kind == CLI_ADDRESS && !json_is_string(v)) {
            invalid_type(&errs, f->field, v, PY_VALID_STR);
        } else if (f->kind == CLI_ADDRESS &&
                   !address_ok(json_string_value(v))) {
            buf_printf(&errs,
                       "\nInvalid value for parameter %s, value: %s, "
                       "expected HOST:PORT",
                       f->field, json_string_value(v));
        } else {
            check_member(&errs, f, v);
        }
    }
    if (errs.oom) {
        rv = diag_oom(s->d);
    } else if (errs.len > 0) {
        rv = diag_set(s->d, false, "Parameter validation failed:%.*s",
                      (int)errs.len, (const char *)errs.data);
    }
    buf_close(&errs);
    return rv;
}

/* Paging options belong to paged commands only, and a raw NextToken turns
 * automatic pagination off, as in the AWS CLI. */
static int check_paging(struct scan *s)
{
    struct cli_options *o = &s->inv->opt;
    const struct cli_command *cmd = s->inv->cmd;
    struct buf used;
    int rv = 0;

    buf_init(&used);
    if (o->starting_token != NULL) {
        buf_printf(&used, "%s--starting-token", used.len > 0 ? ", " : "");
    }
    if (o->page_size != 0) {
        buf_printf(&used, "%s--page-size", used.len > 0 ? ", " : "");
    }
    if (o->max_items != 0) {
        buf_printf(&used, "%s--max-items", used.len > 0 ? ", " : "");
    }
    if (used.oom) {
        rv = diag_oom(s->d);
    } else if (cmd->result_key == NULL) {
        if (used.len > 0 || !o->paginate) {
            rv =
                diag_set(s->d, true, "Unknown options: %.*s%s%s", (int)used.len,
                         used.data != NULL ? (const char *)used.data : "",
                         used.len > 0 && !o->paginate ? ", " : "",
                         o->paginate ? "" : "--no-paginate");
        }
    } else {
        if (json_object_get(s->inv->request, "NextToken") != NULL) {
            o->paginate = false;
        }
        if (!o->paginate && used.len > 0) {
            rv = diag_set(s->d, false,
                          "Cannot specify --no-paginate along with "
                          "pagination arguments: %.*s",
                          (int)used.len, (const char *)used.data);
        }
    }
    buf_close(&used);
    return rv;
}

int cli_parse(int argc,
              char *const argv[],
              struct cli_invocation *inv,
              struct cli_diag *d)
{
    struct scan s;
    bool seen_ssm = false;
    int rv = 0;
    int i = 1;

    memset(inv, 0, sizeof(*inv));
    inv->opt.output = CLI_OUTPUT_JSON;
    inv->opt.paginate = true;
    d->usage = false;
    d->msg[0] = '\0';
    memset(&s, 0, sizeof(s));
    s.inv = inv;
    s.d = d;
    buf_init(&s.unknown);

    while (i < argc && rv == 0) {
        const char *a = argv[i];
        const char *name, *eq;
        size_t n;
        const struct gopt *g;
        const struct cli_flag *f;
        bool negated;
        size_t fi;

        if (!starts_with(a, "--") || a[2] == '\0') {
            /* A positional word: `ssm`, a group, the command, `help`, or
             * the command's positional argument (keygen's FILE). */
            bool top =
                inv->cmd == NULL && !seen_ssm && !inv->cluster && !inv->kms;
            if (strcmp(a, "help") == 0 || strcmp(a, "-h") == 0) {
                inv->opt.help = true;
            } else if (top && strcmp(a, "ssm") == 0) {
                seen_ssm = true;
            } else if (top && strcmp(a, "cluster") == 0) {
                inv->cluster = true;
            } else if (top && strcmp(a, "kms") == 0) {
                inv->kms = true;
            } else if (inv->cmd == NULL) {
                const char *group = inv->cluster ? CLI_CLUSTER_PREFIX
                                    : inv->kms   ? CLI_KMS_PREFIX
                                                 : "";
                inv->cmd = command_word(a, group);
                /* `aws ssm` has no keygen: only `cairn keygen` names it. */
                if (inv->cmd != NULL && seen_ssm && is_local(inv->cmd)) {
                    inv->cmd = NULL;
                }
                if (inv->cmd == NULL && group[0] != '\0') {
                    struct buf words;
                    buf_init(&words);
                    group_words(&words, group, " | ");
                    rv = words.oom ? diag_oom(d)
                                   : diag_set(d, true,
                                              "argument %.*s command: Invalid "
                                              "choice: '%s', valid choices "
                                              "are: %.*s",
                                              (int)strlen(group) - 1, group, a,
                                              (int)words.len,
                                              (const char *)words.data);
                    buf_close(&words);
                    break;
                }
                if (inv->cmd == NULL) {
                    rv = diag_set(d, true,
                                  "argument command: Invalid choice: '%s' "
                                  "(run `cairn --help` for the list)",
                                  a);
                    break;
                }
                /* One slot even for a command without flags: calloc(0)
                 * may answer NULL. */
                s.occ = calloc(inv->cmd->n_flags > 0 ? inv->cmd->n_flags : 1,
                               sizeof(*s.occ));
                if (s.occ == NULL) {
                    rv = diag_oom(d);
                    break;
                }
            } else if (!take_positional(&s, i)) {
                note_unknown(&s, a);
            }
            i++;
            continue;
        }
        name = a + 2;
        eq = strchr(name, '=');
        n = eq != NULL ? (size_t)(eq - name) : strlen(name);

        g = gopt_find(name, n);
        if (g != NULL) {
            const char *value = NULL;
            if (g->takes_value) {
                if (eq != NULL) {
                    value = eq + 1;
                } else if (i + 1 < argc && !looks_like_option(argv[i + 1])) {
                    value = argv[++i];
                } else {
                    rv = diag_set(d, true,
                                  "argument --%s: expected one argument",
                                  g->name);
                    break;
                }
            } else if (eq != NULL) {
                rv = diag_set(d, true,
                              "argument --%s: ignored explicit argument '%s'",
                              g->name, eq + 1);
                break;
            }
            rv = apply_gopt(g, value, &inv->opt, &s.cli_input_json, d);
            i++;
            continue;
        }

        f = inv->cmd != NULL ? flag_find(inv->cmd, name, n, &negated, &fi)
                             : NULL;
        if (f == NULL) {
            /* argparse leaves an unknown option and the words after it as
             * extras; the AWS CLI lists them all. */
            note_unknown(&s, a);
            for (i++; i < argc && !looks_like_option(argv[i]); i++) {
                note_unknown(&s, argv[i]);
            }
            continue;
        }
        struct occ *oc = &s.occ[fi];
        memset(oc, 0, sizeof(*oc));
        oc->set = true;
        oc->negated = negated;
        if (f->kind == CLI_BOOL) {
            if (eq != NULL) {
                rv = diag_set(d, true,
                              "argument %.*s: ignored explicit argument '%s'",
                              (int)(eq - a), a, eq + 1);
            }
            i++;
            continue;
        }
        if (eq != NULL) {
            oc->inline_value = eq + 1;
            i++;
            continue;
        }
        oc->first = ++i;
        if (f->kind == CLI_STRING_LIST || f->kind == CLI_STRUCT_LIST) {
            while (i < argc && !looks_like_option(argv[i])) {
                i++;
            }
        } else if (i < argc && !looks_like_option(argv[i])) {
            i++;
        }
        oc->count = i - oc->first;
        if (oc->count == 0) {
            rv = diag_set(
                d, true, "argument --%s: expected %s argument", f->name,
                f->kind == CLI_STRING_LIST || f->kind == CLI_STRUCT_LIST
                    ? "at least one"
                    : "one");
        }
    }

    if (rv == 0 && s.unknown.oom) {
        rv = diag_oom(d);
    }
    if (rv == 0 && inv->opt.help) {
        goto out;
    }
    if (rv == 0 && s.unknown.len > 0) {
        rv = diag_set(d, true, "Unknown options: %.*s", (int)s.unknown.len,
                      (const char *)s.unknown.data);
    }
    if (rv == 0 && inv->cluster && inv->cmd == NULL) {
        rv = diag_set(d, true,
                      "the following arguments are required: cluster "
                      "command (status, add, remove or transfer-leadership)");
    }
    if (rv == 0 && inv->kms && inv->cmd == NULL) {
        rv = diag_set(d, true,
                      "the following arguments are required: kms command "
                      "(run `cairn kms help` for the list)");
    }
    if (rv == 0 && inv->cmd == NULL) {
        rv = diag_set(d, true, "the following arguments are required: command");
    }
    if (rv == 0) {
        rv = build_request(&s, argv);
    }
    if (rv == 0) {
        rv = check_members(&s);
    }
    if (rv == 0) {
        rv = check_paging(&s);
    }
out:
    free(s.occ);
    buf_close(&s.unknown);
    if (rv != 0) {
        cli_invocation_close(inv);
    }
    return rv;
}

void cli_invocation_close(struct cli_invocation *inv)
{
    if (inv == NULL) {
        return;
    }
    json_decref(inv->request);
    inv->request = NULL;
}

/******************************************************************************
 *
 * Pagination
 *
 *****************************************************************************/

int cli_pager_init(struct cli_pager *p,
                   const struct cli_command *cmd,
                   const struct cli_options *opt,
                   long long request_max_results)
{
    memset(p, 0, sizeof(*p));
    p->result_key = cmd->result_key;
    p->max_page = cmd->max_page;
    p->page_size = opt->page_size > 0 ? opt->page_size : request_max_results;
    p->remaining = opt->max_items > 0 ? opt->max_items : -1;
    if (opt->starting_token != NULL) {
        p->token = strdup(opt->starting_token);
        if (p->token == NULL) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
    }
    return 0;
}

int cli_pager_prepare(struct cli_pager *p, json_t *req)
{
    long long size = p->page_size;

    if (p->token != NULL) {
        if (json_object_set_new(req, "NextToken", json_string(p->token)) != 0) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
    } else {
        json_object_del(req, "NextToken");
    }
    /* Never ask for more than is still wanted: the resume token then
     * points exactly after the last item printed. */
    if (p->remaining > 0) {
        long long cap = size > 0 ? size : p->max_page;
        if (cap <= 0 || p->remaining < cap) {
            size = p->remaining;
        }
    }
    if (size > 0) {
        if (json_object_set_new(req, "MaxResults", json_integer(size)) != 0) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
    }
    return 0;
}

/* The first page gives the output its members and their order; the result
 * list starts empty and NextToken is left out. */
static json_t *pager_skeleton(const struct cli_pager *p, const json_t *page)
{
    json_t *m = json_object();
    const char *key;
    json_t *v;

    if (m == NULL) {
        return NULL;
    }
    json_object_foreach((json_t *)page, key, v)
    {
        json_t *copy;
        if (strcmp(key, "NextToken") == 0) {
            continue;
        }
        copy =
            strcmp(key, p->result_key) == 0 ? json_array() : json_deep_copy(v);
        if (copy == NULL || json_object_set_new(m, key, copy) != 0) {
            json_decref(m);
            return NULL;
        }
    }
    if (json_object_get(m, p->result_key) == NULL &&
        json_object_set_new(m, p->result_key, json_array()) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

int cli_pager_add(struct cli_pager *p, const json_t *page)
{
    const json_t *items = json_object_get(page, p->result_key);
    const json_t *next = json_object_get(page, "NextToken");
    json_t *dest;
    size_t i;
    json_t *item;

    if (items != NULL && !json_is_array(items)) {
        return CAIRN_INVALID_ARGUMENT;
    }
    if (p->merged == NULL) {
        p->merged = pager_skeleton(p, page);
        if (p->merged == NULL) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
    }
    dest = json_object_get(p->merged, p->result_key);
    json_array_foreach(items, i, item)
    {
        if (p->remaining == 0) {
            break;
        }
        if (json_array_append(dest, item) != 0) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
        if (p->remaining > 0) {
            p->remaining--;
        }
    }
    if (!json_is_string(next) || json_string_length(next) == 0) {
        p->done = true;
        p->truncated = false;
        return 0;
    }
    if (p->token != NULL && strcmp(p->token, json_string_value(next)) == 0) {
        /* The same token again would loop forever; hand it to the user. */
        p->done = true;
        p->truncated = true;
        return 0;
    }
    free(p->token);
    p->token = strdup(json_string_value(next));
    if (p->token == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (p->remaining == 0) {
        p->done = true;
        p->truncated = true;
    }
    return 0;
}

json_t *cli_pager_result(struct cli_pager *p)
{
    json_t *out;

    if (p->merged == NULL) {
        p->merged = json_object();
        if (p->merged == NULL ||
            json_object_set_new(p->merged, p->result_key, json_array()) != 0) {
            return NULL;
        }
    }
    out = json_incref(p->merged);
    if (p->truncated && p->token != NULL &&
        json_object_set_new(out, "NextToken", json_string(p->token)) != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

void cli_pager_close(struct cli_pager *p)
{
    json_decref(p->merged);
    free(p->token);
    memset(p, 0, sizeof(*p));
}

/******************************************************************************
 *
 * Responses: msgpack to ordered JSON, with timestamps
 *
 *****************************************************************************/

int cli_iso8601(double epoch, char *out, size_t n)
{
    double whole;
    double frac;
    long long sec, usec;
    time_t t;
    struct tm tm;

    /* Python's datetime covers years 1..9999. */
    if (!isfinite(epoch) || epoch < -62135596800.0 || epoch >= 253402300800.0 ||
        n < 40) {
        return CAIRN_INVALID_ARGUMENT;
    }
    /* As datetime.fromtimestamp: round the fraction to microseconds, half
     * to even, carrying into the seconds. */
    frac = modf(epoch, &whole);
    sec = (long long)whole;
    usec = (long long)nearbyint(frac * 1e6);
    if (usec >= 1000000) {
        sec++;
        usec -= 1000000;
    } else if (usec < 0) {
        sec--;
        usec += 1000000;
    }
    t = (time_t)sec;
    if (gmtime_r(&t, &tm) == NULL) {
        return CAIRN_INVALID_ARGUMENT;
    }
    if (usec != 0) {
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, usec);
    } else {
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d+00:00",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    }
    return 0;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Timestamps in the SSM model are named *Date, *Time or *DateTime
 * (LastModifiedDate, ExecutionTime); the server sends epoch seconds. */
static bool is_timestamp_key(const char *k, size_t n)
{
    return ends_with(k, n, "Date") || ends_with(k, n, "Time");
}

static json_t *mp_to_json(const msgpack_object *o, bool timestamp, int depth)
{
    json_t *j;
    char iso[48];
    double num;

    if (depth > MP_MAX_DEPTH) {
        return NULL;
    }
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean(o->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                num = (double)o->via.u64;
            } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                num = (double)o->via.i64;
            } else {
                num = o->via.f64;
            }
            if (timestamp && cli_iso8601(num, iso, sizeof(iso)) == 0) {
                return json_string(iso);
            }
            if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                return o->via.u64 > (uint64_t)LLONG_MAX
                           ? json_real(num)
                           : json_integer((json_int_t)o->via.u64);
            }
            if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                return json_integer((json_int_t)o->via.i64);
            }
            return json_real(num);
        case MSGPACK_OBJECT_STR:
            return string_any(o->via.str.ptr != NULL ? o->via.str.ptr : "",
                              o->via.str.size);
        case MSGPACK_OBJECT_BIN: {
            char *b64 = mpjson_base64(o->via.bin.ptr, o->via.bin.size);
            if (b64 == NULL) {
                return NULL;
            }
            j = json_string(b64);
            free(b64);
            return j;
        }
        case MSGPACK_OBJECT_ARRAY:
            j = json_array();
            for (uint32_t i = 0; j != NULL && i < o->via.array.size; i++) {
                json_t *v =
                    mp_to_json(&o->via.array.ptr[i], timestamp, depth + 1);
                if (v == NULL || json_array_append_new(j, v) != 0) {
                    json_decref(j);
                    j = NULL;
                }
            }
            return j;
        case MSGPACK_OBJECT_MAP:
            j = json_object();
            for (uint32_t i = 0; j != NULL && i < o->via.map.size; i++) {
                const msgpack_object_kv *kv = &o->via.map.ptr[i];
                const char *kp = kv->key.via.str.ptr;
                size_t kn = kv->key.via.str.size;
                json_t *v;
                if (kv->key.type != MSGPACK_OBJECT_STR ||
                    (kn > 0 && memchr(kp, '\0', kn) != NULL)) {
                    json_decref(j);
                    return NULL;
                }
                v = mp_to_json(&kv->val, is_timestamp_key(kp, kn), depth + 1);
                if (v == NULL || json_object_setn_new_nocheck(
                                     j, kp != NULL ? kp : "", kn, v) != 0) {
                    json_decref(j);
                    j = NULL;
                }
            }
            return j;
        default:
            return NULL;
    }
}

int cli_response_from_mp(const void *mp,
                         size_t len,
                         json_t **out,
                         struct cairn_error *err)
{
    struct mp_doc doc;
    int rv;

    *out = NULL;
    if (len == 0) {
        /* An empty body is an empty output shape. */
        *out = json_object();
        return *out == NULL ? cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED,
                                              NULL, "out of memory")
                            : 0;
    }
    rv = mp_doc_parse(&doc, mp, len, err);
    if (rv != 0) {
        return rv;
    }
    if (doc.root.type != MSGPACK_OBJECT_MAP) {
        mp_doc_close(&doc);
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "the response is not a map");
    }
    *out = mp_to_json(&doc.root, false, 0);
    mp_doc_close(&doc);
    if (*out == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "the response has no JSON form");
    }
    return 0;
}

/******************************************************************************
 *
 * Output: json
 *
 * Python's json.dump(indent=4, ensure_ascii=False): members in order, ",\n"
 * between items, ": " after keys, "[]" and "{}" when empty, only control
 * characters, '"' and '\' escaped.
 *
 *****************************************************************************/

static void json_str(struct buf *b, const char *s, size_t n)
{
    buf_append_str(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
            case '"':
                buf_append_str(b, "\\\"");
                break;
            case '\\':
                buf_append_str(b, "\\\\");
                break;
            case '\n':
                buf_append_str(b, "\\n");
                break;
            case '\r':
                buf_append_str(b, "\\r");
                break;
            case '\t':
                buf_append_str(b, "\\t");
                break;
            case '\b':
                buf_append_str(b, "\\b");
                break;
            case '\f':
                buf_append_str(b, "\\f");
                break;
            default:
                if (c < 0x20) {
                    buf_printf(b, "\\u%04x", c);
                } else {
                    buf_append(b, &s[i], 1);
                }
        }
    }
    buf_append_str(b, "\"");
}

static void json_emit(struct buf *b, const json_t *v, int level)
{
    const char *key;
    json_t *item;
    size_t i;
    bool first = true;

    switch (json_typeof(v)) {
        case JSON_OBJECT:
            if (json_object_size(v) == 0) {
                buf_append_str(b, "{}");
                return;
            }
            buf_append_str(b, "{\n");
            json_object_foreach((json_t *)v, key, item)
            {
                if (!first) {
                    buf_append_str(b, ",\n");
                }
                first = false;
                append_repeat(b, ' ', 4L * (level + 1));
                json_str(b, key, strlen(key));
                buf_append_str(b, ": ");
                json_emit(b, item, level + 1);
            }
            buf_append_str(b, "\n");
            append_repeat(b, ' ', 4L * level);
            buf_append_str(b, "}");
            return;
        case JSON_ARRAY:
            if (json_array_size(v) == 0) {
                buf_append_str(b, "[]");
                return;
            }
            buf_append_str(b, "[\n");
            json_array_foreach(v, i, item)
            {
                if (i > 0) {
                    buf_append_str(b, ",\n");
                }
                append_repeat(b, ' ', 4L * (level + 1));
                json_emit(b, item, level + 1);
            }
            buf_append_str(b, "\n");
            append_repeat(b, ' ', 4L * level);
            buf_append_str(b, "]");
            return;
        case JSON_STRING:
            json_str(b, json_string_value(v), json_string_length(v));
            return;
        case JSON_INTEGER:
            buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            return;
        case JSON_REAL:
            py_float(b, json_real_value(v), true);
            return;
        case JSON_TRUE:
            buf_append_str(b, "true");
            return;
        case JSON_FALSE:
            buf_append_str(b, "false");
            return;
        case JSON_NULL:
            buf_append_str(b, "null");
            return;
    }
}

/******************************************************************************
 *
 * Output: text
 *
 * The AWS CLI's text format (awscli/text.py), re-implemented: a dict prints
 * its scalar values sorted by key on one tab-separated line, prefixed with
 * the upper-cased key it was found under; lists of dicts share one sorted
 * column set; nested lists and dicts follow on their own lines.
 *
 *****************************************************************************/

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of @p obj, sorted. The caller frees the array (not the keys). */
static const char **sorted_keys(const json_t *obj, size_t *n)
{
    const char **keys;
    const char *key;
    json_t *v;
    size_t i = 0;

    *n = json_object_size(obj);
    keys = calloc(*n > 0 ? *n : 1, sizeof(*keys));
    if (keys == NULL) {
        return NULL;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        keys[i++] = key;
    }
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

/* A sorted set of strings (borrowed). */
struct strset
{
    const char **v;
    size_t n;
    size_t cap;
};

static bool strset_has(const struct strset *s, const char *k)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i], k) == 0) {
            return true;
        }
    }
    return false;
}

static int strset_add(struct strset *s, const char *k)
{
    if (strset_has(s, k)) {
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap > 0 ? 2 * s->cap : 8;
        const char **v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = k;
    return 0;
}

static void strset_sort(struct strset *s)
{
    if (s->n < 2) {
        return;
    }
    qsort(s->v, s->n, sizeof(*s->v), cmp_str);
}

static void upper(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        char c = *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
        buf_append(b, &c, 1);
    }
}

static int text_item(struct buf *b,
                     const json_t *v,
                     const char *ident,
                     const struct strset *scalar_keys);

static int text_dict(struct buf *b,
                     const json_t *obj,
                     const char *ident,
                     const struct strset *scalar_keys)
{
    size_t n;
    const char **keys = sorted_keys(obj, &n);
    bool any = false;
    int rv = 0;

    if (keys == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    /* The scalars line. */
    if (scalar_keys == NULL) {
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_object_get(obj, keys[i]);
            if (!is_scalar(v)) {
                continue;
            }
            if (!any && ident != NULL) {
                upper(b, ident);
                buf_append_str(b, "\t");
            } else if (any) {
                buf_append_str(b, "\t");
            }
            py_str(b, v);
            any = true;
        }
    } else {
        for (size_t i = 0; i < scalar_keys->n; i++) {
            const json_t *v = json_object_get(obj, scalar_keys->v[i]);
            if (i == 0 && ident != NULL) {
                upper(b, ident);
                buf_append_str(b, "\t");
            } else if (i > 0) {
                buf_append_str(b, "\t");
            }
            if (v != NULL) {
                py_str(b, v);
            }
            any = true;
        }
    }
    if (any) {
        buf_append_str(b, "\n");
    }
    /* Then what is not on that line, by key. */
    for (size_t i = 0; i < n && rv == 0; i++) {
        const json_t *v = json_object_get(obj, keys[i]);
        bool nested = scalar_keys == NULL ? !is_scalar(v)
                                          : !strset_has(scalar_keys, keys[i]);
        if (nested) {
            rv = text_item(b, v, keys[i], NULL);
        }
    }
    free(keys);
    return rv;
}

static void text_scalar_list(struct buf *b,
                             const json_t *arr,
                             const char *ident,
                             bool only_scalars)
{
    size_t i;
    json_t *v;
    bool first = true;

    json_array_foreach(arr, i, v)
    {
        if (only_scalars && !is_scalar(v)) {
            continue;
        }
        if (ident != NULL) {
            upper(b, ident);
            buf_append_str(b, "\t");
            py_str(b, v);
            buf_append_str(b, "\n");
        } else {
            if (!first) {
                buf_append_str(b, "\t");
            }
            py_str(b, v);
        }
        first = false;
    }
    if (ident == NULL && !first) {
        buf_append_str(b, "\n");
    }
}

static int text_list(struct buf *b, const json_t *arr, const char *ident)
{
    size_t i;
    json_t *v;
    bool has_dict = false, has_list = false, has_scalar = false;
    int rv = 0;

    if (json_array_size(arr) == 0) {
        return 0;
    }
    json_array_foreach(arr, i, v)
    {
        has_dict |= json_is_object(v);
        has_list |= json_is_array(v);
        has_scalar |= is_scalar(v);
    }
    if (has_dict) {
        struct strset keys = {NULL, 0, 0};
        json_array_foreach(arr, i, v)
        {
            const char *key;
            json_t *m;
            if (!json_is_object(v)) {
                continue;
            }
            json_object_foreach(v, key, m)
            {
                if (is_scalar(m) && strset_add(&keys, key) != 0) {
                    free(keys.v);
                    return CAIRN_RESOURCE_EXHAUSTED;
                }
            }
        }
        strset_sort(&keys);
        json_array_foreach(arr, i, v)
        {
            rv = text_item(b, v, ident, &keys);
            if (rv != 0) {
                break;
            }
        }
        free(keys.v);
        return rv;
    }
    if (has_list) {
        if (has_scalar) {
            text_scalar_list(b, arr, ident, true);
        }
        json_array_foreach(arr, i, v)
        {
            if (!is_scalar(v)) {
                rv = text_item(b, v, ident, NULL);
                if (rv != 0) {
                    return rv;
                }
            }
        }
        return 0;
    }
    text_scalar_list(b, arr, ident, false);
    return 0;
}

static int text_item(struct buf *b,
                     const json_t *v,
                     const char *ident,
                     const struct strset *scalar_keys)
{
    if (json_is_object(v)) {
        return text_dict(b, v, ident, scalar_keys);
    }
    if (json_is_array(v)) {
        return text_list(b, v, ident);
    }
    py_str(b, v);
    buf_append_str(b, "\n");
    return 0;
}

/******************************************************************************
 *
 * Output: table
 *
 * The AWS CLI's table format (awscli/formatter.py and table.py),
 * re-implemented: one section per dict or list, titled with its key, with
 * sorted scalar keys as column headers; nested sections are indented with
 * '|'. Columns are scaled to the widest section; when that is wider than
 * the terminal, single-row sections turn into key/value rows.
 *
 *****************************************************************************/

struct tsec
{
    const char *title; /* borrowed from the response, or the operation */
    int indent;
    char **headers; /* n_cols strings, or NULL */
    char **cells;   /* n_rows * n_cols strings */
    size_t n_rows;
    size_t n_cols;
    bool cols_known;
    size_t *maxw; /* widest text of each column */
};

struct table
{
    struct tsec *secs;
    size_t n;
    size_t cap;
    bool oom;
};

/* Display width: code points, with East Asian wide and full-width ranges
 * counting two columns, close to Python's unicodedata.east_asian_width. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        uint32_t cp;
        int len;
        if (*p < 0x80) {
            cp = *p;
            len = 1;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            len = 2;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            len = 3;
        } else {
            cp = *p & 0x07;
            len = 4;
        }
        for (int k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80) {
                len = k;
                break;
            }
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        p += len;
        w += (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                     (cp >= 0xac00 && cp <= 0xd7a3) ||
                     (cp >= 0xf900 && cp <= 0xfaff) ||
                     (cp >= 0xfe30 && cp <= 0xfe4f) ||
                     (cp >= 0xff00 && cp <= 0xff60) ||
                     (cp >= 0xffe0 && cp <= 0xffe6) ||
                     (cp >= 0x20000 && cp <= 0x3fffd)
                 ? 2
                 : 1;
    }
    return w;
}

static void tsec_free(struct tsec *s)
{
    if (s->headers != NULL) {
        for (size_t i = 0; i < s->n_cols; i++) {
            free(s->headers[i]);
        }
    }
    for (size_t i = 0; i < s->n_rows * s->n_cols; i++) {
        free(s->cells[i]);
    }
    free(s->headers);
    free(s->cells);
    free(s->maxw);
}

static void table_close(struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        tsec_free(&t->secs[i]);
    }
    free(t->secs);
}

static struct tsec *table_new_section(struct table *t,
                                      const char *title,
                                      int indent)
{
    struct tsec *s;

    if (t->n == t->cap) {
        size_t cap = t->cap > 0 ? 2 * t->cap : 8;
        struct tsec *v = realloc(t->secs, cap * sizeof(*v));
        if (v == NULL) {
            t->oom = true;
            return NULL;
        }
        t->secs = v;
        t->cap = cap;
    }
    s = &t->secs[t->n++];
    memset(s, 0, sizeof(*s));
    s->title = title;
    s->indent = indent;
    return s;
}

static struct tsec *table_cur(struct table *t)
{
    return t->n > 0 ? &t->secs[t->n - 1] : NULL;
}

/* Fix the column count on first use; later rows must match it (the AWS CLI
 * raises an error otherwise; here extra cells are dropped, missing ones
 * are empty). */
static bool tsec_cols(struct tsec *s, size_t n)
{
    if (!s->cols_known) {
        s->n_cols = n;
        s->cols_known = true;
        s->maxw = calloc(n > 0 ? n : 1, sizeof(*s->maxw));
        return s->maxw != NULL;
    }
    return true;
}

static void tsec_width(struct tsec *s, size_t col, const char *text)
{
    size_t w = text_width(text);
    if (w > s->maxw[col]) {
        s->maxw[col] = w;
    }
}

/* Add a header row; @p texts are borrowed and copied. */
static void table_header(struct table *t, const char *const *texts, size_t n)
{
    struct tsec *s = table_cur(t);

    if (s == NULL || !tsec_cols(s, n)) {
        t->oom = true;
        return;
    }
    if (s->headers == NULL) {
        s->headers = calloc(s->n_cols > 0 ? s->n_cols : 1, sizeof(char *));
        if (s->headers == NULL) {
            t->oom = true;
            return;
        }
    }
    for (size_t i = 0; i < s->n_cols; i++) {
        free(s->headers[i]);
        s->headers[i] = strdup(i < n ? texts[i] : "");
        if (s->headers[i] == NULL) {
            t->oom = true;
            return;
        }
        tsec_width(s, i, s->headers[i]);
    }
}

/* Add a row of values rendered with Python's str(); NULL is an empty
 * cell. */
static void table_row(struct table *t, const json_t *const *vals, size_t n)
{
    struct tsec *s = table_cur(t);
    char **cells;

    if (s == NULL || !tsec_cols(s, n)) {
        t->oom = true;
        return;
    }
    cells =
        realloc(s->cells, ((s->n_rows + 1) * s->n_cols + 1) * sizeof(*cells));
    if (cells == NULL) {
        t->oom = true;
        return;
    }
    s->cells = cells;
    for (size_t i = 0; i < s->n_cols; i++) {
        struct buf b;
        buf_init(&b);
        if (i < n && vals[i] != NULL) {
            py_str(&b, vals[i]);
        }
        if (buf_terminate(&b) != 0) {
            t->oom = true;
            buf_close(&b);
            cells[s->n_rows * s->n_cols + i] = NULL;
            continue;
        }
        cells[s->n_rows * s->n_cols + i] =
            b.data != NULL ? (char *)buf_steal(&b, NULL) : strdup("");
        if (cells[s->n_rows * s->n_cols + i] == NULL) {
            t->oom = true;
            continue;
        }
        tsec_width(s, i, cells[s->n_rows * s->n_cols + i]);
    }
    s->n_rows++;
}

/* The scalar and the other keys of a dict, each sorted. */
static int group_keys(const json_t *obj,
                      struct strset *scalars,
                      struct strset *more)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        if (strset_add(is_scalar(v) ? scalars : more, key) != 0) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
    }
    strset_sort(scalars);
    strset_sort(more);
    return 0;
}

static bool table_build(struct table *t,
                        const char *title,
                        const json_t *cur,
                        int indent);

static void table_from_dict(struct table *t, const json_t *cur, int indent)
{
    struct strset headers = {NULL, 0, 0}, more = {NULL, 0, 0};

    if (group_keys(cur, &headers, &more) != 0) {
        t->oom = true;
        goto out;
    }
    if (headers.n == 1) {
        /* A single scalar: a key/value row. */
        json_t *k = json_string(headers.v[0]);
        const json_t *row[2] = {k, json_object_get(cur, headers.v[0])};
        if (k == NULL) {
            t->oom = true;
            goto out;
        }
        table_row(t, row, 2);
        json_decref(k);
    } else if (headers.n > 0) {
        const json_t **row = calloc(headers.n, sizeof(*row));
        if (row == NULL) {
            t->oom = true;
            goto out;
        }
        table_header(t, headers.v, headers.n);
        for (size_t i = 0; i < headers.n; i++) {
            row[i] = json_object_get(cur, headers.v[i]);
        }
        table_row(t, row, headers.n);
        free(row);
    }
    for (size_t i = 0; i < more.n; i++) {
        table_build(t, more.v[i], json_object_get(cur, more.v[i]), indent + 1);
    }
out:
    free(headers.v);
    free(more.v);
}

static void table_from_list(struct table *t,
                            const json_t *cur,
                            int indent,
                            const char *title)
{
    struct strset headers = {NULL, 0, 0}, more = {NULL, 0, 0};
    const json_t **row = NULL;
    size_t i;
    json_t *el;

    json_array_foreach(cur, i, el)
    {
        if (json_is_object(el) && group_keys(el, &headers, &more) != 0) {
            t->oom = true;
            goto out;
        }
    }
    row = calloc(headers.n > 0 ? headers.n : 1, sizeof(*row));
    if (row == NULL) {
        t->oom = true;
        goto out;
    }
    table_header(t, headers.v, headers.n);
    json_array_foreach(cur, i, el)
    {
        if (i > 0 && more.n > 0) {
            table_new_section(t, title, indent);
            table_header(t, headers.v, headers.n);
        }
        for (size_t k = 0; k < headers.n; k++) {
            row[k] =
                json_is_object(el) ? json_object_get(el, headers.v[k]) : NULL;
        }
        table_row(t, row, headers.n);
        for (size_t k = 0; k < more.n; k++) {
            const json_t *v =
                json_is_object(el) ? json_object_get(el, more.v[k]) : NULL;
            if (v != NULL) {
                table_build(t, more.v[k], v, indent + 1);
            }
        }
    }
out:
    free(row);
    free(headers.v);
    free(more.v);
}

/* Python truthiness of a container: empty ones print nothing. */
static bool truthy(const json_t *v)
{
    if (json_is_object(v)) {
        return json_object_size(v) > 0;
    }
    if (json_is_array(v)) {
        return json_array_size(v) > 0;
    }
    if (json_is_string(v)) {
        return json_string_length(v) > 0;
    }
    return !json_is_null(v) && !json_is_false(v);
}

static bool table_build(struct table *t,
                        const char *title,
                        const json_t *cur,
                        int indent)
{
    if (!truthy(cur)) {
        return false;
    }
    if (title != NULL) {
        table_new_section(t, title, indent);
    }
    if (t->oom || table_cur(t) == NULL) {
        t->oom = true;
        return false;
    }
    if (json_is_array(cur)) {
        if (json_is_object(json_array_get(cur, 0))) {
            table_from_list(t, cur, indent, title);
        } else {
            size_t i;
            json_t *item;
            json_array_foreach(cur, i, item)
            {
                if (is_scalar(item)) {
                    const json_t *row[1] = {item};
                    table_row(t, row, 1);
                } else if (json_is_array(item)) {
                    /* A list of scalars is one row; anything deeper nests. */
                    bool flat = true;
                    size_t k;
                    json_t *e;
                    json_array_foreach(item, k, e)
                    {
                        flat &= is_scalar(e);
                    }
                    if (flat) {
                        const json_t **row =
                            calloc(json_array_size(item) + 1, sizeof(*row));
                        if (row == NULL) {
                            t->oom = true;
                            return false;
                        }
                        json_array_foreach(item, k, e)
                        {
                            row[k] = e;
                        }
                        table_row(t, row, json_array_size(item));
                        free(row);
                    } else {
                        table_build(t, NULL, item, indent);
                    }
                } else {
                    /* A dict among scalars: Python iterates its keys, so
                     * the AWS CLI prints them as one row. */
                    size_t n = json_object_size(item), k = 0;
                    const json_t **row = calloc(n + 1, sizeof(*row));
                    json_t **keys = calloc(n + 1, sizeof(*keys));
                    const char *key;
                    json_t *m;
                    if (row == NULL || keys == NULL) {
                        free(row);
                        free(keys);
                        t->oom = true;
                        return false;
                    }
                    json_object_foreach(item, key, m)
                    {
                        keys[k] = json_string(key);
                        row[k] = keys[k];
                        t->oom |= keys[k] == NULL;
                        k++;
                    }
                    if (!t->oom) {
                        table_row(t, row, n);
                    }
                    for (k = 0; k < n; k++) {
                        json_decref(keys[k]);
                    }
                    free(row);
                    free(keys);
                }
            }
        }
    }
    if (json_is_object(cur)) {
        table_from_dict(t, cur, indent);
    }
    return true;
}

static size_t tsec_total_width(const struct tsec *s)
{
    size_t total = 2 + 2 * (size_t)s->indent;
    size_t title = text_width(s->title != NULL ? s->title : "") + 2 +
                   2 * (size_t)s->indent;

    for (size_t i = 0; i < s->n_cols && s->maxw != NULL; i++) {
        total += s->maxw[i] + 4;
    }
    return total > title ? total : title;
}

/* Column widths scaled so that they fill @p width exactly, rounding half
 * to even and then correcting from the left (too wide) or the right (too
 * narrow), as the AWS CLI does. NULL when out of memory. */
static long *tsec_widths(const struct tsec *s, size_t width)
{
    long *w = calloc(s->n_cols > 0 ? s->n_cols : 1, sizeof(*w));
    double sum = 0;
    long total = 0;
    long off;

    if (w == NULL || s->n_cols == 0) {
        return w;
    }
    for (size_t i = 0; i < s->n_cols; i++) {
        sum += (double)(s->maxw[i] + 4);
    }
    for (size_t i = 0; i < s->n_cols; i++) {
        w[i] = (long)nearbyint((double)width / sum * (double)(s->maxw[i] + 4));
        total += w[i];
    }
    off = total - (long)width;
    while (off != 0) {
        for (size_t k = 0; k < s->n_cols && off != 0; k++) {
            if (off > 0) {
                w[k]--;
                off--;
            } else {
                w[s->n_cols - 1 - k]++;
                off++;
            }
        }
    }
    return w;
}

/* One output line inside the section's indentation. */
static void line_begin(struct buf *b, const struct tsec *s)
{
    append_repeat(b, '|', s->indent);
}

static void line_end(struct buf *b, const struct tsec *s)
{
    append_repeat(b, '|', s->indent);
    buf_append_str(b, "\n");
}

static void center(struct buf *b,
                   const char *text,
                   long length,
                   const char *left,
                   const char *right)
{
    long tl = (long)text_width(text);
    long start = length / 2 - tl / 2 - 1;
    long so_far = (long)strlen(left) + start + tl;

    buf_append_str(b, left);
    append_repeat(b, ' ', start);
    buf_append_str(b, text);
    append_repeat(b, ' ', length - (long)strlen(right) - so_far);
    buf_append_str(b, right);
}

static void align_left(struct buf *b,
                       const char *text,
                       long length,
                       const char *left,
                       const char *right)
{
    long tl = (long)text_width(text);
    long pad = length - (tl + 2 + (long)strlen(left) + (long)strlen(right)) >= 0
                   ? 2
                   : 0;

    buf_append_str(b, left);
    append_repeat(b, ' ', pad);
    buf_append_str(b, text);
    append_repeat(
        b, ' ', length - ((long)strlen(left) + pad + tl) - (long)strlen(right));
    buf_append_str(b, right);
}

static void rule(struct buf *b, const struct tsec *s, const long *w)
{
    line_begin(b, s);
    for (size_t i = 0; i < s->n_cols; i++) {
        if (i == 0) {
            buf_append_str(b, "+");
            append_repeat(b, '-', w[i] - 2);
        } else {
            append_repeat(b, '-', w[i] - 1);
        }
        buf_append_str(b, "+");
    }
    line_end(b, s);
}

static int render_section(struct buf *b, const struct tsec *s, size_t max_w)
{
    long width = (long)max_w - 2L * s->indent;
    long *w;

    if (s->title != NULL && s->title[0] != '\0') {
        line_begin(b, s);
        center(b, s->title, width, "|", "|");
        line_end(b, s);
        if ((s->headers == NULL || s->n_cols == 0) && s->n_rows == 0) {
            line_begin(b, s);
            buf_append_str(b, "+");
            append_repeat(b, '-', width - 2);
            buf_append_str(b, "+");
            line_end(b, s);
        }
    }
    w = tsec_widths(s, (size_t)(width > 0 ? width : 0));
    if (w == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (s->headers != NULL && s->n_cols > 0) {
        rule(b, s, w);
        line_begin(b, s);
        for (size_t i = 0; i < s->n_cols; i++) {
            center(b, s->headers[i], w[i], i == 0 ? "|" : "", "|");
        }
        line_end(b, s);
    }
    if (s->n_rows > 0 && s->n_cols > 0) {
        rule(b, s, w);
        for (size_t r = 0; r < s->n_rows; r++) {
            line_begin(b, s);
            for (size_t i = 0; i < s->n_cols; i++) {
                align_left(b, s->cells[r * s->n_cols + i], w[i],
                           i == 0 ? "|" : "", "|");
            }
            line_end(b, s);
        }
        rule(b, s, w);
    }
    free(w);
    return 0;
}

/* Turn single-row sections into key/value rows (too wide otherwise). */
static void table_verticalize(struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct tsec *s = &t->secs[i];
        struct tsec v;
        if (s->n_rows != 1 || s->headers == NULL || s->n_cols == 0) {
            continue;
        }
        memset(&v, 0, sizeof(v));
        v.title = s->title;
        v.indent = s->indent;
        if (!tsec_cols(&v, 2)) {
            t->oom = true;
            return;
        }
        v.cells = calloc(2 * s->n_cols + 1, sizeof(char *));
        if (v.cells == NULL) {
            free(v.maxw);
            t->oom = true;
            return;
        }
        for (size_t c = 0; c < s->n_cols; c++) {
            v.cells[2 * c] = s->headers[c];
            v.cells[2 * c + 1] = s->cells[c];
            s->headers[c] = NULL;
            s->cells[c] = NULL;
            tsec_width(&v, 0, v.cells[2 * c]);
            tsec_width(&v, 1, v.cells[2 * c + 1]);
        }
        v.n_rows = s->n_cols;
        tsec_free(s);
        *s = v;
    }
}

static int render_table(struct buf *b,
                        const json_t *resp,
                        const char *title,
                        unsigned term_width)
{
    struct table t;
    size_t max_w = 0;
    int rv = 0;

    memset(&t, 0, sizeof(t));
    if (!table_build(&t, title, resp, 0)) {
        table_close(&t);
        return t.oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
    }
    for (size_t i = 0; i < t.n; i++) {
        size_t w = tsec_total_width(&t.secs[i]);
        max_w = w > max_w ? w : max_w;
    }
    if (max_w > term_width) {
        table_verticalize(&t);
        max_w = 0;
        for (size_t i = 0; i < t.n; i++) {
            size_t w = tsec_total_width(&t.secs[i]);
            max_w = w > max_w ? w : max_w;
        }
    }
    if (t.oom) {
        table_close(&t);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    append_repeat(b, '-', (long)max_w);
    buf_append_str(b, "\n");
    for (size_t i = 0; i < t.n && rv == 0; i++) {
        rv = render_section(b, &t.secs[i], max_w);
    }
    table_close(&t);
    return rv;
}

/******************************************************************************
 *
 * Output: entry points
 *
 *****************************************************************************/

int cli_render(const json_t *resp,
               enum cli_output fmt,
               const char *title,
               bool paged,
               unsigned width,
               struct buf *out)
{
    int rv = 0;

    switch (fmt) {
        case CLI_OUTPUT_JSON:
            /* The AWS CLI prints nothing for an empty response. */
            if (json_is_object(resp) && json_object_size(resp) == 0) {
                break;
            }
            json_emit(out, resp, 0);
            buf_append_str(out, "\n");
            break;
        case CLI_OUTPUT_TEXT:
            if (paged && json_is_object(resp) &&
                json_object_get(resp, "NextToken") != NULL) {
                /* Pages print without their token; the token to resume
                 * from comes last, as {"NextToken": {"NextToken": T}}. */
                json_t *copy = json_copy((json_t *)resp);
                const json_t *tok = json_object_get(resp, "NextToken");
                if (copy == NULL) {
                    return CAIRN_RESOURCE_EXHAUSTED;
                }
                json_object_del(copy, "NextToken");
                rv = text_item(out, copy, NULL, NULL);
                json_decref(copy);
                buf_append_str(out, "NEXTTOKEN\t");
                py_str(out, tok);
                buf_append_str(out, "\n");
            } else {
                rv = text_item(out, resp, NULL, NULL);
            }
            break;
        case CLI_OUTPUT_TABLE:
            rv = render_table(out, resp, title, width);
            break;
    }
    if (rv == 0 && out->oom) {
        rv = CAIRN_RESOURCE_EXHAUSTED;
    }
    return rv;
}

/* AWS-style names for statuses that arrive without an error name. */
static const char *fallback_type(int code)
{
    switch (code) {
        case CAIRN_INVALID_ARGUMENT:
        case CAIRN_OUT_OF_RANGE:
            return "ValidationException";
        case CAIRN_NOT_FOUND:
            return "ResourceNotFoundException";
        case CAIRN_PERMISSION_DENIED:
        case CAIRN_UNAUTHENTICATED:
            return "AccessDeniedException";
        case CAIRN_RESOURCE_EXHAUSTED:
            return "ThrottlingException";
        case CAIRN_ABORTED:
            return "TooManyUpdates";
        case CAIRN_UNAVAILABLE:
            return "ServiceUnavailable";
        case CAIRN_UNIMPLEMENTED:
            return "UnknownOperationException";
        default:
            return "InternalServerError";
    }
}

int cli_render_error(struct buf *out,
                     const char *operation,
                     const struct cairn_error *e)
{
    const char *type = e->type[0] != '\0' ? e->type : fallback_type(e->code);

    buf_printf(out,
               "\nAn error occurred (%s) when calling the %s operation: %s\n",
               type, operation,
               e->msg[0] != '\0' ? e->msg : cairn_status_name(e->code));
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

int cli_render_usage(struct buf *out)
{
    buf_append_str(out,
                   "usage: cairn [options] <command> [parameters]\n"
                   "To see help text, you can run:\n"
                   "\n"
                   "  cairn --help\n"
                   "  cairn <command> --help\n"
                   "\n");
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

/******************************************************************************
 *
 * Cluster status
 *
 *****************************************************************************/

/* The number of digest characters the table shows: enough to tell
 * replicas apart at a glance, short enough for one line. */
#define STATUS_DIGEST_PREFIX 12

/* Copy @p key of @p from into @p to, if present. 0 or RESOURCE_EXHAUSTED. */
static int copy_member(json_t *to, const json_t *from, const char *key)
{
    json_t *v = json_object_get(from, key);

    if (v == NULL) {
        return 0;
    }
    return json_object_set(to, key, v) != 0 ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

/* Set @p to_key of @p to to @p key of @p from, or to @p dflt (a new
 * reference, consumed) when that is absent or null. 0 or
 * RESOURCE_EXHAUSTED. */
static int set_or(json_t *to,
                  const char *to_key,
                  const json_t *from,
                  const char *key,
                  json_t *dflt)
{
    json_t *v = json_object_get(from, key);

    if (v != NULL && !json_is_null(v)) {
        json_decref(dflt);
        dflt = json_incref(v);
    }
    return json_object_set_new(to, to_key, dflt) != 0 ? CAIRN_RESOURCE_EXHAUSTED
                                                      : 0;
}

static int cmp_member_id(const void *a, const void *b)
{
    const json_t *ma = *(json_t *const *)a;
    const json_t *mb = *(json_t *const *)b;
    json_int_t x = json_integer_value(json_object_get(ma, "Id"));
    json_int_t y = json_integer_value(json_object_get(mb, "Id"));

    return x < y ? -1 : x > y;
}

/* The status' item for one member of a Cairn.Members response, or NULL
 * when out of memory. */
static json_t *status_member(const json_t *m)
{
    json_t *o = json_object();

    if (o == NULL || copy_member(o, m, "Id") != 0 ||
        set_or(o, "RaftAddress", m, "RaftAddress", json_string("")) != 0 ||
        set_or(o, "ApiAddress", m, "ApiAddress", json_string("")) != 0 ||
        set_or(o, "Role", m, "Role", json_string("")) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cli_status_from_members(const json_t *members,
                            json_t **out,
                            struct cairn_error *err)
{
    const json_t *list = json_object_get(members, "Members");
    json_t *st = NULL;
    json_t *arr = NULL;
    json_t **items = NULL;
    size_t n;
    int rv = 0;

    *out = NULL;
    if (!json_is_array(list)) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "the Cairn.Members response has no Members "
                               "list");
    }
    n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        if (!json_is_integer(json_object_get(json_array_get(list, i), "Id"))) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "member %zu of the Cairn.Members response "
                                   "has no integer Id",
                                   i);
        }
    }
    /* Sort copies, so that the response is left as it is. */
    items = calloc(n > 0 ? n : 1, sizeof(*items));
    st = json_object();
    arr = json_array();
    if (items == NULL || st == NULL || arr == NULL ||
        set_or(st, "Leader", members, "LeaderId", json_integer(0)) != 0 ||
        set_or(st, "Term", members, "Term", json_integer(0)) != 0) {
        rv = CAIRN_RESOURCE_EXHAUSTED;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        items[i] = status_member(json_array_get(list, i));
        if (items[i] == NULL) {
            rv = CAIRN_RESOURCE_EXHAUSTED;
            goto out;
        }
    }
    qsort(items, n, sizeof(*items), cmp_member_id);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append(arr, items[i]) != 0) {
            rv = CAIRN_RESOURCE_EXHAUSTED;
            goto out;
        }
    }
    if (json_object_set(st, "Members", arr) != 0) {
        rv = CAIRN_RESOURCE_EXHAUSTED;
    }

out:
    if (items != NULL) {
        for (size_t i = 0; i < n; i++) {
            json_decref(items[i]);
        }
    }
    free(items);
    json_decref(arr);
    if (rv != 0) {
        json_decref(st);
        return cairn_error_set(err, rv, NULL, "out of memory");
    }
    *out = st;
    return 0;
}

int cli_status_set_node(json_t *m, const json_t *node)
{
    static const char *const keys[] = {
        "State",    "Term",       "CommitIndex", "AppliedIndex",
        "LeaderId", "StoreIndex", "Digest",
    };
    const json_t *id = json_object_get(node, "Id");
    int rv = 0;

    for (size_t i = 0; rv == 0 && i < sizeof(keys) / sizeof(keys[0]); i++) {
        rv = copy_member(m, node, keys[i]);
    }
    if (rv == 0 && json_is_integer(id) &&
        !json_equal((json_t *)id, json_object_get(m, "Id"))) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the node at this API address is node %" JSON_INTEGER_FORMAT,
                 json_integer_value(id));
        rv = json_object_set_new(m, "Error", json_string(msg)) != 0
                 ? CAIRN_RESOURCE_EXHAUSTED
                 : 0;
    }
    return rv;
}

int cli_status_set_error(json_t *m, const struct cairn_error *e)
{
    bool no_answer = e->type[0] == '\0' && (e->code == CAIRN_UNAVAILABLE ||
                                            e->code == CAIRN_DEADLINE_EXCEEDED);
    const char *msg = e->msg[0] != '\0' ? e->msg : cairn_status_name(e->code);
    char text[sizeof(e->type) + sizeof(e->msg) + 4];

    if (e->type[0] != '\0') {
        snprintf(text, sizeof(text), "%s: %s", e->type, msg);
    } else {
        snprintf(text, sizeof(text), "%s", msg);
    }
    if (json_object_set_new(m, "State",
                            json_string(no_answer ? "unreachable" : "error")) !=
            0 ||
        json_object_set_new(m, "Error", string_any(text, strlen(text))) != 0) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    return 0;
}

/* The text of one cell: strings as they are, numbers in decimal, "" when
 * absent. Tabs and line breaks become spaces, so that a cell cannot break
 * the row. */
static void status_cell(struct buf *b, const json_t *v)
{
    if (json_is_string(v)) {
        const char *p = json_string_value(v);
        for (size_t i = 0; i < json_string_length(v); i++) {
            char c = p[i] == '\t' || p[i] == '\n' || p[i] == '\r' ? ' ' : p[i];
            buf_append(b, &c, 1);
        }
    } else if (v != NULL && !json_is_null(v)) {
        py_str(b, v);
    }
}

/* Columns of the text and table views. The table leaves out the digest
 * when no member has one, and shows errors below the rows, where a long
 * message does not widen the table. */
enum {
    COL_ID,
    COL_ROLE,
    COL_STATE,
    COL_RAFT,
    COL_API,
    COL_TERM,
    COL_COMMIT,
    COL_APPLIED,
    COL_DIGEST,
    COL_ERROR,
    STATUS_COLS,
};

static const char *const status_keys[STATUS_COLS] = {
    "Id",   "Role",        "State",        "RaftAddress", "ApiAddress",
    "Term", "CommitIndex", "AppliedIndex", "Digest",      "Error",
};

static const char *const status_heads[STATUS_COLS] = {
    "ID",   "ROLE",   "STATE",   "RAFT ADDRESS", "API ADDRESS",
    "TERM", "COMMIT", "APPLIED", "DIGEST",       "ERROR",
};

/* The cells of member @p m, each NUL-terminated; the caller closes them
 * with status_cells_close, also after a failure. 0 or RESOURCE_EXHAUSTED. */
static int status_cells(const json_t *m, struct buf cells[STATUS_COLS])
{
    int rv = 0;

    for (int c = 0; c < STATUS_COLS; c++) {
        buf_init(&cells[c]);
    }
    for (int c = 0; rv == 0 && c < STATUS_COLS; c++) {
        status_cell(&cells[c], json_object_get(m, status_keys[c]));
        rv = buf_terminate(&cells[c]);
    }
    return rv;
}

static void status_cells_close(struct buf cells[STATUS_COLS])
{
    for (int c = 0; c < STATUS_COLS; c++) {
        buf_close(&cells[c]);
    }
}

static const char *cell_str(const struct buf *b)
{
    return b->data != NULL ? (const char *)b->data : "";
}

static int status_text(const json_t *members, struct buf *out)
{
    size_t i;
    const json_t *m;
    int rv = 0;

    json_array_foreach(members, i, m)
    {
        struct buf cells[STATUS_COLS];
        rv = status_cells(m, cells);
        for (int c = 0; rv == 0 && c < STATUS_COLS; c++) {
            buf_printf(out, "%s%s", c > 0 ? "\t" : "", cell_str(&cells[c]));
        }
        buf_append_str(out, "\n");
        status_cells_close(cells);
        if (rv != 0) {
            break;
        }
    }
    return rv;
}

/* Append @p text padded to @p width columns, or ended by a newline when it
 * is the last of the row. */
static void table_cell(struct buf *out,
                       const char *text,
                       size_t width,
                       bool last)
{
    buf_append_str(out, text);
    if (last) {
        buf_append_str(out, "\n");
    } else {
        append_repeat(out, ' ', (long)(width - text_width(text)) + 2);
    }
}

static int status_table(const json_t *st,
                        const json_t *members,
                        struct buf *out)
{
    size_t n = json_array_size(members);
    int ncols = COL_DIGEST;
    size_t width[STATUS_COLS];
    struct buf *cells;
    const json_t *leader = json_object_get(st, "Leader");
    size_t i;
    const json_t *m;
    int rv = 0;

    json_array_foreach(members, i, m)
    {
        if (json_object_get(m, "Digest") != NULL) {
            ncols = COL_DIGEST + 1;
        }
    }
    cells = calloc(n > 0 ? n * STATUS_COLS : 1, sizeof(*cells));
    if (cells == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    for (int c = 0; c < ncols; c++) {
        width[c] = text_width(status_heads[c]);
    }
    for (i = 0; rv == 0 && i < n; i++) {
        struct buf *row = &cells[i * STATUS_COLS];
        rv = status_cells(json_array_get(members, i), row);
        if (rv == 0 && row[COL_DIGEST].len > STATUS_DIGEST_PREFIX) {
            row[COL_DIGEST].len = STATUS_DIGEST_PREFIX;
            rv = buf_terminate(&row[COL_DIGEST]);
        }
        for (int c = 0; rv == 0 && c < ncols; c++) {
            size_t w;
            if (row[c].len == 0) {
                /* Show that a value is missing rather than a gap. */
                buf_append_str(&row[c], "-");
                rv = buf_terminate(&row[c]);
            }
            w = text_width(cell_str(&row[c]));
            width[c] = w > width[c] ? w : width[c];
        }
    }
    if (rv == 0) {
        if (json_is_integer(leader) && json_integer_value(leader) > 0) {
            buf_printf(out, "Leader: %" JSON_INTEGER_FORMAT,
                       json_integer_value(leader));
        } else {
            buf_append_str(out, "Leader: none known");
        }
        buf_append_str(out, ", term ");
        status_cell(out, json_object_get(st, "Term"));
        buf_append_str(out, "\n");
        for (int c = 0; c < ncols; c++) {
            table_cell(out, status_heads[c], width[c], c + 1 == ncols);
        }
        for (i = 0; i < n; i++) {
            for (int c = 0; c < ncols; c++) {
                table_cell(out, cell_str(&cells[i * STATUS_COLS + c]), width[c],
                           c + 1 == ncols);
            }
        }
        for (i = 0; i < n; i++) {
            const struct buf *row = &cells[i * STATUS_COLS];
            if (row[COL_ERROR].len > 0) {
                buf_printf(out, "member %s: %s\n", cell_str(&row[COL_ID]),
                           cell_str(&row[COL_ERROR]));
            }
        }
    }
    /* Rows never reached are zeroed, which buf_close accepts. */
    for (i = 0; i < n; i++) {
        status_cells_close(&cells[i * STATUS_COLS]);
    }
    free(cells);
    return rv;
}

int cli_render_status(const json_t *status,
                      enum cli_output fmt,
                      struct buf *out)
{
    const json_t *members = json_object_get(status, "Members");
    int rv;

    switch (fmt) {
        case CLI_OUTPUT_TEXT:
            rv = status_text(members, out);
            break;
        case CLI_OUTPUT_TABLE:
            rv = status_table(status, members, out);
            break;
        default:
            return cli_render(status, CLI_OUTPUT_JSON, "ClusterStatus", false,
                              80, out);
    }
    if (rv == 0 && out->oom) {
        rv = CAIRN_RESOURCE_EXHAUSTED;
    }
    return rv;
}

/******************************************************************************
 *
 * keygen
 *
 *****************************************************************************/

int cli_keygen_exit(int status)
{
    switch (status) {
        case 0:
            return CLI_EXIT_OK;
        case CAIRN_ALREADY_EXISTS:
        case CAIRN_NOT_FOUND:
        case CAIRN_PERMISSION_DENIED:
        case CAIRN_INVALID_ARGUMENT:
            return CLI_EXIT_USAGE;
        default:
            return CLI_EXIT_FAILURE;
    }
}

int cli_render_keygen_error(struct buf *out,
                            const char *path,
                            const struct cairn_error *e)
{
    const char *why = e->msg[0] != '\0' ? e->msg : cairn_status_name(e->code);

    if (e->code == CAIRN_ALREADY_EXISTS) {
        buf_printf(out,
                   "\n%s already exists: cairn keygen never overwrites a "
                   "file (a root key in use would be lost). Choose another "
                   "path.\n",
                   path);
    } else {
        buf_printf(out, "\nCould not create the root key file %s: %s\n", path,
                   why);
    }
    return cli_keygen_exit(e->code);
}

json_t *cli_keygen_result(const char *path, const char *fingerprint_hex)
{
    return json_pack("{s:s, s:s}", "File", path, "Fingerprint",
                     fingerprint_hex);
}

/******************************************************************************
 *
 * Help
 *
 *****************************************************************************/

#define HELP_WIDTH 79

/* Append @p text word-wrapped at HELP_WIDTH, each line indented by
 * @p indent spaces. */
static void wrap(struct buf *b, const char *text, int indent)
{
    const char *p = text;
    long col = 0;

    while (*p != '\0') {
        const char *end = p;
        long len;
        while (*end != '\0' && *end != ' ') {
            end++;
        }
        len = (long)(end - p);
        if (col > 0 && col + 1 + len > HELP_WIDTH) {
            buf_append_str(b, "\n");
            col = 0;
        }
        if (col == 0) {
            append_repeat(b, ' ', indent);
            col = indent;
        } else {
            buf_append_str(b, " ");
            col++;
        }
        buf_append(b, p, (size_t)len);
        col += len;
        p = end;
        while (*p == ' ') {
            p++;
        }
    }
    buf_append_str(b, "\n");
}

/* Append @p text line by line, each indented by @p indent spaces. */
static void indent_lines(struct buf *b, const char *text, int indent)
{
    while (*text != '\0') {
        const char *nl = strchr(text, '\n');
        size_t n = nl != NULL ? (size_t)(nl - text) : strlen(text);
        append_repeat(b, ' ', indent);
        buf_append(b, text, n);
        buf_append_str(b, "\n");
        text += n + (nl != NULL ? 1 : 0);
    }
}

static const char *kind_name(enum cli_kind k)
{
    switch (k) {
        case CLI_ADDRESS:
            return "HOST:PORT";
        case CLI_INT:
        case CLI_ID:
        case CLI_WINDOW_DAYS:
            return "integer";
        case CLI_PATH:
            return "path";
        case CLI_STRING:
        case CLI_KEY_ID:
        case CLI_ALIAS_NAME:
            return "string";
        case CLI_BOOL:
            return "boolean";
        default:
            return "list";
    }
}

static void help_globals(struct buf *b)
{
    buf_append_str(b, "GLOBAL OPTIONS\n");
    buf_append_str(b, "    --endpoint <host:port[,host:port...] | URL>\n");
    wrap(b,
         "The servers to contact, tried in order until one answers (alias "
         "--endpoint-url; a URL such as http://10.0.0.5:7400 is reduced to "
         "its host and port). Default: the CAIRN_ENDPOINT variable, else "
         "127.0.0.1:7400.",
         8);
    buf_append_str(b, "\n    --output json | text | table\n");
    wrap(b,
         "The output format, as in the AWS CLI: JSON (the default), "
         "tab-separated text, or a box table.",
         8);
    buf_append_str(b, "\n    --consistency linearizable | stale\n");
    wrap(b,
         "linearizable (the default) reads through the leader and sees every "
         "completed write; stale reads the contacted node's copy, which may "
         "lag behind.",
         8);
    buf_append_str(b, "\n    --cli-read-timeout <seconds>\n");
    wrap(b,
         "The deadline of each call, retries included (alias --timeout). 0 "
         "means no limit. Default: 10 seconds.",
         8);
    buf_append_str(b, "\n    --cli-input-json <JSON | file://PATH>\n");
    wrap(b,
         "The request as a JSON object with the AWS member names; flags "
         "given on the command line override its members.",
         8);
    buf_append_str(b, "\n    --help\n");
    wrap(b,
         "Print help and exit. `cairn help` and `cairn COMMAND help` "
         "work too.",
         8);
    buf_append_str(b, "\n");
    wrap(b,
         "Any value may be written file://PATH (or fileb://PATH) to use the "
         "contents of a file. --region, --profile, --no-verify-ssl and "
         "--no-sign-request are accepted and ignored, so that `aws ssm` "
         "command lines run unchanged.",
         4);
}

static void help_top(struct buf *b)
{
    size_t n;
    const struct cli_command *cmds = cli_commands(&n);

    buf_append_str(b, "usage: cairn [options] <command> [parameters]\n\n");
    wrap(b,
         "cairn is the command line client of Cairn, a replicated parameter "
         "store with the API of AWS Systems Manager Parameter Store. Its "
         "commands, flags, output and exit codes follow `aws ssm`: 0 on "
         "success, 252 for a bad command line, 254 when the service "
         "returns an error, 255 when no server can be reached.",
         0);
    buf_append_str(b, "\nCOMMANDS\n");
    for (size_t i = 0; i < n; i++) {
        if (command_group(&cmds[i])[0] == '\0') {
            buf_printf(b, "    %-28s %s\n", cmds[i].name, cmds[i].summary);
        }
    }
    buf_append_str(b, "\nCLUSTER COMMANDS (`cairn cluster help`)\n");
    for (size_t i = 0; i < n; i++) {
        if (cli_command_is_cluster(&cmds[i])) {
            buf_printf(b, "    %-28s %s\n", cmds[i].name, cmds[i].summary);
        }
    }
    buf_append_str(b, "\nKMS COMMANDS (`cairn kms help`)\n");
    for (size_t i = 0; i < n; i++) {
        if (cli_command_is_kms(&cmds[i])) {
            buf_printf(b, "    %-28s %s\n", cmds[i].name, cmds[i].summary);
        }
    }
    buf_append_str(b, "\n");
    help_globals(b);
    buf_append_str(b,
                   "\nRun `cairn <command> --help` for the parameters of "
                   "a command.\n");
}

/* What a cluster command calls, for its help. */
static void help_cluster_about(struct buf *b, const struct cli_command *c)
{
    if (strcmp(c->operation, "ClusterStatus") == 0) {
        wrap(b,
             "Calls Cairn.Members on the endpoint for the members and the "
             "leader, then Cairn.NodeStatus on every member's API address "
             "(one attempt, a 2 second deadline unless --cli-read-timeout is "
             "given). A member that does not answer is shown with State "
             "unreachable, one that answers with an error with State error, "
             "both with the Error message. --output table prints one "
             "row per member, text one tab-separated line per member: id, "
             "role, state, raft address, api address, term, commit index, "
             "applied index, digest, error. The exit status is 0 when the "
             "member list was read, even if some members did not answer.",
             4);
    } else {
        buf_printf(b, "    Calls the internal method %s (docs/cluster.md).\n",
                   c->operation);
        if (strcmp(c->operation, "Cairn.AddMember") == 0) {
            wrap(b,
                 "The contacted node forwards it to the leader, which adds "
                 "the node as a spare, catches it up and makes it a voter; "
                 "the call returns then, so its deadline is 60 seconds "
                 "unless --cli-read-timeout is given.",
                 4);
        }
    }
    buf_append_str(b, "\n");
}

/* What a kms command calls, for its help. */
static void help_kms_about(struct buf *b, const struct cli_command *c)
{
    char about[160];

    if (strcmp(c->operation, "Kms.RotateRootKey") == 0) {
        wrap(b,
             "Calls Kms.RotateRootKey, Cairn's own (KMS has no root key; "
             "docs/encryption.md): the receiving node re-wraps every key "
             "version under its current root key (cairnd --root-key-file), "
             "unwrapping with --previous-root-key-file. Restart every node "
             "with both files first.",
             4);
    } else {
        snprintf(about, sizeof(about),
                 "Calls %s, the %s operation of the KMS API "
                 "(docs/encryption.md).",
                 c->operation, cli_command_title(c));
        wrap(b, about, 4);
    }
    buf_append_str(b, "\n");
}

static void help_command(struct buf *b, const struct cli_command *c)
{
    buf_append_str(b, "NAME\n");
    buf_printf(b, "    %s - ", c->name);
    buf_append_str(b, c->summary);
    if (cli_command_is_cluster(c)) {
        buf_append_str(b, "\n\n");
        help_cluster_about(b, c);
    } else if (cli_command_is_kms(c)) {
        buf_append_str(b, "\n\n");
        help_kms_about(b, c);
    } else if (is_local(c)) {
        buf_append_str(b, "\n\n");
        wrap(b,
             "Writes a new Cairn root key (docs/encryption.md): the line "
             "cairn-root-key-v1 and 64 hex digits, mode 0600, refusing to "
             "overwrite a file. Prints the file and the key's fingerprint. "
             "Contacts no server. Copy the file to every node and start "
             "cairnd with --root-key-file FILE.",
             4);
        buf_append_str(b, "\n");
    } else {
        buf_printf(b, "\n\n    The %s operation of the SSM API.\n\n",
                   c->operation);
    }
    buf_append_str(b, "SYNOPSIS\n");
    buf_printf(b, "    cairn %s", c->name);
    for (size_t i = 0; i < c->n_flags; i++) {
        const struct cli_flag *f = &c->flags[i];
        if (f->kind == CLI_PATH) {
            buf_printf(b, f->required ? " %s" : " [%s]", f->name);
        }
    }
    buf_append_str(b, "\n");
    for (size_t i = 0; i < c->n_flags; i++) {
        const struct cli_flag *f = &c->flags[i];
        const char *open = f->required ? "" : "[";
        const char *close = f->required ? "" : "]";
        if (f->kind == CLI_PATH) {
            continue;
        } else if (f->kind == CLI_BOOL) {
            buf_printf(b, "        [--%s | --no-%s]\n", f->name, f->name);
        } else if (f->kind == CLI_STRING_LIST || f->kind == CLI_STRUCT_LIST) {
            buf_printf(b, "        %s--%s <value> [<value> ...]%s\n", open,
                       f->name, close);
        } else {
            buf_printf(b, "        %s--%s <value>%s\n", open, f->name, close);
        }
    }
    if (c->result_key != NULL) {
        buf_append_str(b,
                       "        [--starting-token <value>]\n"
                       "        [--page-size <value>]\n"
                       "        [--max-items <value>]\n"
                       "        [--no-paginate]\n");
    }
    buf_append_str(b, "        [--cli-input-json <value>]\n");
    buf_append_str(b, "\nOPTIONS\n");
    for (size_t i = 0; i < c->n_flags; i++) {
        const struct cli_flag *f = &c->flags[i];
        if (f->kind == CLI_BOOL) {
            buf_printf(b, "    --%s | --no-%s (boolean)\n", f->name, f->name);
        } else if (f->kind == CLI_PATH) {
            buf_printf(b, "    %s (%s)%s\n", f->name, kind_name(f->kind),
                       f->required ? " [required]" : "");
        } else {
            buf_printf(b, "    --%s (%s)%s\n", f->name, kind_name(f->kind),
                       f->required ? " [required]" : "");
        }
        wrap(b, f->help, 8);
        if (!is_local(c)) {
            buf_printf(b, "        Request member: %s.\n", f->field);
        }
        if (f->kind == CLI_STRING_LIST) {
            buf_append_str(b, "        Syntax:\n");
            buf_append_str(b, "            \"string\" \"string\" ...\n");
            buf_append_str(b, "        or a JSON array: [\"string\", ...]\n");
        }
        if (f->kind == CLI_STRUCT_LIST) {
            buf_append_str(b, "        Shorthand Syntax:\n");
            buf_printf(b, "            %s\n", f->shape->shorthand);
            buf_append_str(b, "        JSON Syntax:\n");
            indent_lines(b, f->shape->json, 12);
        }
        buf_append_str(b, "\n");
    }
    if (c->result_key != NULL) {
        buf_append_str(b, "PAGINATION\n");
        wrap(b,
             "This command is paginated: without the options below, cairn "
             "follows NextToken until the listing ends and prints one merged "
             "list, as the AWS CLI does.",
             4);
        buf_append_str(b, "\n    --starting-token (string)\n");
        wrap(b,
             "Where to start: the NextToken printed by an earlier command "
             "that stopped at --max-items.",
             8);
        buf_append_str(b, "\n    --page-size (integer)\n");
        buf_printf(b,
                   "        Items per call (1 to %lld). It does not change "
                   "what is printed.\n",
                   c->max_page);
        buf_append_str(b, "\n    --max-items (integer)\n");
        wrap(b,
             "Print at most this many items. When more remain, the output "
             "ends with a NextToken to pass to --starting-token.",
             8);
        buf_append_str(b, "\n    --no-paginate\n");
        wrap(b,
             "Make one call and print its response as is, NextToken "
             "included.",
             8);
        buf_append_str(b, "\n");
    }
    help_globals(b);
}

/* The placeholder of a flag's value in a group's synopsis. */
static const char *synopsis_value(const struct cli_flag *f)
{
    switch (f->kind) {
        case CLI_ID:
        case CLI_WINDOW_DAYS:
            return "N";
        case CLI_ADDRESS:
            return "HOST:PORT";
        case CLI_KEY_ID:
            return "KEY";
        case CLI_ALIAS_NAME:
            return "alias/NAME";
        default:
            return "<value>";
    }
}

/* The help of the group @p group ("cluster "): its commands, then one
 * synopsis line each. */
static void help_group(struct buf *out, const char *group, const char *about)
{
    size_t n;
    const struct cli_command *cmds = cli_commands(&n);

    buf_printf(out, "usage: cairn [options] %.*s <command> [parameters]\n\n",
               (int)strlen(group) - 1, group);
    wrap(out, about, 0);
    buf_append_str(out, "\nCOMMANDS\n");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(command_group(&cmds[i]), group) == 0) {
            buf_printf(out, "    %-28s %s\n", cmds[i].name + strlen(group),
                       cmds[i].summary);
        }
    }
    buf_append_str(out, "\nSYNOPSIS\n");
    for (size_t i = 0; i < n; i++) {
        const struct cli_command *c = &cmds[i];
        if (strcmp(command_group(c), group) != 0) {
            continue;
        }
        buf_printf(out, "    cairn %s", c->name);
        for (size_t k = 0; k < c->n_flags; k++) {
            const struct cli_flag *f = &c->flags[k];
            if (f->kind == CLI_BOOL) {
                buf_printf(out, " [--%s]", f->name);
            } else {
                buf_printf(out, " %s--%s %s%s", f->required ? "" : "[", f->name,
                           synopsis_value(f), f->required ? "" : "]");
            }
        }
        buf_append_str(out, "\n");
    }
    buf_printf(out,
               "\nRun `cairn %.*s <command> --help` for the parameters of a "
               "command.\n",
               (int)strlen(group) - 1, group);
}

int cli_render_cluster_help(struct buf *out)
{
    help_group(out, CLI_CLUSTER_PREFIX,
               "Inspect and change the Raft membership of a Cairn cluster "
               "through any of its nodes (docs/cluster.md). Changes are "
               "forwarded to the leader.");
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

int cli_render_kms_help(struct buf *out)
{
    help_group(out, CLI_KMS_PREFIX,
               "Manage the master keys that encrypt SecureString parameters "
               "and their aliases, as `aws kms` does (docs/encryption.md). "
               "Key material never leaves the cluster: it is generated by the "
               "node that receives the call and stored wrapped by the nodes' "
               "root key (see `cairn keygen`).");
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

int cli_render_help(struct buf *out, const struct cli_command *cmd)
{
    if (cmd == NULL) {
        help_top(out);
    } else {
        help_command(out, cmd);
    }
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}
