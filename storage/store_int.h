/* Internals shared by store.c, sm.c and query.c: the LMDB handles, the
 * record layout and small meta helpers. Not part of the storage API. */
#ifndef CAIRN_STORAGE_STORE_INT_H
#define CAIRN_STORAGE_STORE_INT_H

#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdbool.h>

#include "buf.h"
#include "mp.h"
#include "sm.h"
#include "store.h"
#include "token.h"

#define STORE_FORMAT 1
#define STORE_MAX_TAGS 200   /* hard cap on limits.tags */
#define STORE_MAX_LABELS 100 /* hard cap on limits.labels_per_version */

struct store
{
    char *dir;
    int lock_fd; /* flock'ed; refuses a second opener, in or out of process */
    struct store_options opts;
    char *arn_partition, *arn_region, *arn_account; /* copies for opts.arn */
    char *arn_prefix; /* "arn:<partition>:ssm:<region>:<account>:parameter/" */
    size_t arn_prefix_len;
    MDB_env *env;
    MDB_dbi params;        /* param key -> current record (no value) */
    MDB_dbi versions;      /* id, version -> version record (with value) */
    MDB_dbi labels;        /* id, label -> version (8 bytes BE) */
    MDB_dbi feed;          /* revision (8 bytes BE) -> change row */
    MDB_dbi meta;          /* name -> value */
    MDB_dbi sessions;      /* client session id -> last sequence and outcome */
    MDB_dbi session_times; /* last use (8 bytes BE) + session id -> "" */
    MDB_txn *batch;        /* open batch write txn, or NULL */
    pthread_mutex_t copy_lock; /* a snapshot copy (any thread) excludes a
                                  restore, which replaces the env */
    MDB_txn *rtxn;             /* cached read txn, reset between queries */
    uint8_t local_token_key[TOKEN_KEY_LEN]; /* until Init sets one */
    bool local_token_key_set;
    struct sm_outcome outcome;
    struct buf out;     /* outcome body */
    struct buf scratch; /* apply-time copies of records */
    bool writemap;      /* MDB_WRITEMAP: see store_reserve */
    off_t reserved;     /* data.mdb allocated up to here (store_reserve) */
    size_t psize;       /* LMDB page size */
};

/**
 * With MDB_WRITEMAP (no_sync stores) LMDB writes new pages through the
 * map into a sparse file, and a write into a hole on a full disk is a
 * SIGBUS, not an error. So before each write transaction the file is
 * allocated (posix_fallocate) STORE_HEADROOM beyond its used end whenever
 * less than half of that is left: a transaction then writes only into
 * allocated blocks (one applies at most a 1 MiB batch of commands, a few
 * MiB of pages). RESOURCE_EXHAUSTED when the disk has no room: the write
 * is refused instead. No-op without MDB_WRITEMAP.
 */
#define STORE_HEADROOM ((off_t)64 << 20)
int store_reserve(struct store *s, struct cairn_error *err);

/* Meta keys. */
#define META_FORMAT "format"
#define META_APPLIED "applied_index"
#define META_REVISION "revision"
#define META_NEXT_ID "next_id"
#define META_N_STANDARD "count_standard"
#define META_N_ADVANCED "count_advanced"
#define META_TOKEN_KEY "token_key"
#define META_DEFAULT_TIER "setting_default_tier" /* msgpack record */
/* Cluster members: "member/" then the id as 8 big-endian bytes, a msgpack
 * map {Id, RaftAddress, ApiAddress}. */
#define META_MEMBER "member/"
#define META_MEMBER_KEY_LEN (sizeof(META_MEMBER) - 1 + 8)
/* The keyring (storage/keyring.h, docs/encryption.md): "kms/key/" then the
 * key id -> the key's msgpack record; "kms/alias/" then the alias name
 * (with its "alias/") -> {TargetKeyId, CreationDate, LastUpdatedDate};
 * "kms/due/" then the DeletionDate in ms (8 big-endian bytes) then the key
 * id -> "": keys pending deletion in date order, so that the keyring ops
 * find the keys whose time has come without reading every key. */
#define META_KMS_KEY "kms/key/"
#define META_KMS_ALIAS "kms/alias/"
#define META_KMS_DUE "kms/due/"

/* 0 (absent reads as @p def), or an LMDB error code. */
int store_meta_get_u64(MDB_txn *txn,
                       MDB_dbi dbi,
                       const char *key,
                       uint64_t def,
                       uint64_t *v);
int store_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);

/** Map an LMDB error code to a status, with context in @p err. */
int store_status_from_mdb(int rc, struct cairn_error *err, const char *what);

/** Begin the cached read txn. End it with store_read_end. */
int store_read_begin(struct store *s, MDB_txn **txn, struct cairn_error *err);
void store_read_end(struct store *s);

/** The token key: replicated (meta) if Init ran, else the local one.
 * 0, or INTERNAL if no random bytes could be had. */
int store_token_key(struct store *s,
                    MDB_txn *txn,
                    uint8_t key[TOKEN_KEY_LEN],
                    struct cairn_error *err);

/* A policy as stored: its JSON text and type name. */
struct rec_policy
{
    struct mp_str text;
    struct mp_str type;
};

struct rec_tag
{
    struct mp_str key;
    struct mp_str value;
};

/*
 * One record layout serves both tables. The parameter record (params) has
 * Name, Id and Tags plus the metadata of the newest version; a version
 * record (versions) has the metadata of that version plus Value and Labels.
 * Strings are borrowed from wherever the record was decoded from.
 */
struct rec
{
    struct mp_str name; /* display name (params only) */
    uint64_t id;        /* params only */
    uint64_t version;
    struct mp_str type;
    struct mp_str value; /* versions only */
    bool value_bin;      /* the value is a sealed blob */
    struct mp_str key_id;
    struct mp_str description;
    struct mp_str allowed_pattern;
    struct mp_str data_type;
    struct mp_str tier;
    struct mp_str user;
    int64_t ts; /* LastModifiedDate in ms */
    unsigned n_policies;
    struct rec_policy policies[10];
    unsigned n_labels; /* versions only */
    struct mp_str labels[STORE_MAX_LABELS];
    unsigned n_tags; /* params only, sorted by key */
    struct rec_tag tags[STORE_MAX_TAGS];
};

#define REC_PARAM 1
#define REC_VERSION 2

/** Encode @p r as a record of kind REC_PARAM or REC_VERSION. */
int rec_encode(const struct rec *r, int kind, struct buf *out);

/* Leading fields that the hot reads need (see rec_encode's order). */
#define REC_PARAM_HEAD 3 /* Name, Id, Version */
#define REC_VERSION_HEAD \
    5 /* Version, LastModifiedDate, Type, Value, DataType */

/** Decode a record in place: strings point into @p p, which must outlive
 * @p r. With @p max_fields > 0 only that many leading fields are read.
 * 0, or DATA_LOSS if the record is malformed. */
int rec_decode(const void *p,
               size_t n,
               struct rec *r,
               unsigned max_fields,
               struct cairn_error *err);

#endif
