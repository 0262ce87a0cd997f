#!/usr/bin/python3
"""Write the seed corpus for the fuzz targets in tests/fuzz/corpus/.

Run with Debian's python3 and python3-msgpack:

    apt-get install python3-msgpack
    /usr/bin/python3 tests/fuzz/make-corpus.py

The output is deterministic (fixed timestamps, keys and blobs), so running
it again rewrites the same bytes. Files it does not know about (a crash
reproducer added by hand, for example) are left alone.
"""

import os
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
TS = 1700000000000
USER = "arn:aws:iam::123456789012:user/fuzz"


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def command(op, req, ts=TS, user=USER):
    return pack({"op": op, "ts": ts, "user": user, "req": req})


def nested(depth, leaf):
    """@p depth levels of alternating arrays and maps around @p leaf."""
    obj = leaf
    for i in range(depth):
        obj = [obj] if i % 2 == 0 else {"k": obj}
    return obj


POLICIES = (
    '[{"Type":"Expiration","Version":"1.0",'
    '"Attributes":{"Timestamp":"2030-12-02T21:34:33.000Z"}},'
    '{"Type":"ExpirationNotification","Version":"1.0",'
    '"Attributes":{"Before":"15","Unit":"Days"}},'
    '{"Type":"NoChangeNotification","Version":"1.0",'
    '"Attributes":{"After":"20","Unit":"Hours"}}]'
)

# A fake sealed envelope: storage treats SecureString values as opaque.
SEALED = bytes((i * 37 + 11) & 0xFF for i in range(72))

PUT_ALL = command("PutParameter", {
    "Name": "/fuzz/app/db-url",
    "Description": "database URL",
    "Value": "postgres://db.internal:5432/app",
    "Type": "String",
    "Overwrite": False,
    "AllowedPattern": "^postgres://.*$",
    "Tags": [{"Key": "team", "Value": "storage"},
             {"Key": "env", "Value": "dev"}],
    "Tier": "Standard",
    "DataType": "text",
})


def sm_seeds():
    s = {}
    s["init"] = command("Init", {"TokenKey": bytes(range(32))})
    s["put-all-fields"] = PUT_ALL
    s["put-overwrite"] = command("PutParameter", {
        "Name": "/fuzz/app/db-url",
        "Value": "postgres://db2.internal:5432/app",
        "Overwrite": True,
    })
    s["put-advanced-policies"] = command("PutParameter", {
        "Name": "/fuzz/app/session-key",
        "Value": "x" * 200,
        "Type": "String",
        "Tier": "Advanced",
        "Policies": POLICIES,
    })
    s["put-stringlist"] = command("PutParameter", {
        "Name": "/fuzz/app/flags",
        "Value": "a,b,c",
        "Type": "StringList",
        "Tier": "Intelligent-Tiering",
    })
    s["put-securestring"] = command("PutParameter", {
        "Name": "/fuzz/app/password",
        "Value": SEALED,
        "Type": "SecureString",
        "KeyId": "alias/aws/ssm",
        "ValueLength": 12,
    })
    s["put-root-ec2-image"] = command("PutParameter", {
        "Name": "golden-ami",
        "Value": "ami-0123456789abcdef0",
        "Type": "String",
        "DataType": "aws:ec2:image",
    })
    s["put-15-levels"] = command("PutParameter", {
        "Name": "".join("/l%d" % i for i in range(15)),
        "Value": "deep",
        "Type": "String",
    })
    s["label"] = command("LabelParameterVersion", {
        "Name": "/fuzz/app/db-url",
        "ParameterVersion": 1,
        "Labels": ["prod", "beta", "1-not-valid"],
    })
    s["unlabel"] = command("UnlabelParameterVersion", {
        "Name": "/fuzz/app/db-url",
        "ParameterVersion": 1,
        "Labels": ["beta", "absent"],
    })
    s["add-tags"] = command("AddTagsToResource", {
        "ResourceType": "Parameter",
        "ResourceId": "/fuzz/app/flags",
        "Tags": [{"Key": "owner", "Value": "alice@example.com"}],
    })
    s["remove-tags"] = command("RemoveTagsFromResource", {
        "ResourceType": "Parameter",
        "ResourceId": "/fuzz/app/db-url",
        "TagKeys": ["env", "absent"],
    })
    s["update-setting"] = command("UpdateServiceSetting", {
        "SettingId": "/ssm/parameter-store/default-parameter-tier",
        "SettingValue": "Advanced",
    })
    s["reset-setting"] = command("ResetServiceSetting", {
        "SettingId": "arn:aws:ssm:us-east-1:123456789012:servicesetting"
                     "/ssm/parameter-store/default-parameter-tier",
    })
    s["delete"] = command("DeleteParameter", {"Name": "/fuzz/app/flags"})
    s["delete-many"] = command("DeleteParameters", {
        "Names": ["/fuzz/app/password", "golden-ami", "/fuzz/absent"],
    })

    # Read request bodies: query_run sees every input as one too.
    s["q-get-parameter"] = pack({"Name": "/fuzz/app/db-url:prod",
                                 "WithDecryption": True})
    s["q-get-parameters"] = pack({"Names": ["/fuzz/app/db-url:1",
                                            "golden-ami", "/nope"]})
    s["q-by-path"] = pack({
        "Path": "/fuzz/", "Recursive": True, "MaxResults": 2,
        "ParameterFilters": [{"Key": "Type", "Option": "Equals",
                              "Values": ["String", "StringList"]}],
    })
    s["q-describe"] = pack({
        "ParameterFilters": [{"Key": "Name", "Option": "BeginsWith",
                              "Values": ["/fuzz"]}],
        "MaxResults": 50, "NextToken": "AAAA-not-a-token",
    })
    s["q-list-tags"] = pack({"ResourceType": "Parameter",
                             "ResourceId": "/fuzz/app/db-url"})

    # Malformed commands.
    s["bad-truncated"] = PUT_ALL[: len(PUT_ALL) // 2]
    s["bad-trailing-bytes"] = PUT_ALL + b"\xc0\x01"
    s["bad-wrong-types"] = pack({"op": 7, "ts": "yesterday", "user": None,
                                 "req": [1, 2, 3]})
    s["bad-field-types"] = command("PutParameter", {
        "Name": 12, "Value": ["a"], "Type": True, "Overwrite": "yes",
        "Tags": {"Key": "v"}, "ValueLength": -1,
    })
    s["bad-unknown-op"] = command("DropEverything", {"Name": "/fuzz"})
    # map32 claiming 4 billion pairs; str32 and array32 claiming 4 GiB.
    s["bad-huge-map"] = b"\xdf\xff\xff\xff\xff\xa2op"
    s["bad-huge-str"] = (b"\x84\xa2op\xdb\xff\xff\xff\xf0PutParameter")
    s["bad-huge-array"] = (b"\x84\xa2op\xacPutParameter\xa3req\x81\xa5Names"
                           b"\xdd\x7f\xff\xff\xff\xa1a")
    s["bad-30-deep"] = command("PutParameter", nested(30, "leaf"))
    s["bad-empty"] = b""
    # The keyring (docs/encryption.md): material is 73 bytes "CRNW" 1 fp8
    # nonce12 ct32 tag16 (fixed bytes: the state machine never decrypts).
    fp = bytes(range(8))
    material = b"CRNW\x01" + fp + bytes(60)
    key = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    s["kms-create-default"] = command("CreateKey", {
        "KeyId": key, "Material": material, "RootKey": fp.hex(),
        "Default": True, "Description": "default"})
    s["kms-rotate"] = command("RotateKey", {
        "KeyId": key, "Version": 2, "Material": material,
        "RootKey": fp.hex()})
    s["kms-alias"] = command("CreateAlias", {
        "AliasName": "alias/fuzz", "TargetKeyId": key})
    s["kms-schedule-deletion"] = command("ScheduleKeyDeletion", {
        "KeyId": "alias/fuzz", "PendingWindowInDays": 7})
    s["kms-rewrap"] = command("RewrapKeyring", {
        "RootKey": fp.hex(), "Keys": [{"KeyId": key, "Versions": [
            {"Version": 1, "Material": material}]}]})
    s["put-secure-sealed"] = command("PutParameter", {
        "Name": "/fuzz/secure", "Type": "SecureString",
        "Value": b"CRNE\x01" + bytes(40), "ValueLength": 6,
        "KeyId": "alias/aws/ssm"})
    return s


def mp_seeds():
    s = {}
    s["nil"] = pack(None)
    s["scalars"] = pack([True, False, 0, 127, -32, 255, 65535, 2**32,
                         2**64 - 1, -2**63, "", "s", b"", b"\x00bin"])
    s["floats"] = pack([1.5, -0.0, float("inf"), float("nan")])
    s["float32"] = msgpack.packb([0.25, float("-inf")], use_single_float=True)
    s["strings"] = pack(["x" * 31, "y" * 32, "z" * 300, "caf\u00e9"])
    s["str-bad-utf8"] = b"\x92\xa3\xff\xfe\xfd\xa2\xc3\x28"
    s["bin16"] = pack(bytes(range(256)) * 2)
    # fixext1, a timestamp96 (type -1) and ext8.
    s["ext"] = (b"\x93\xd4\x01\x01\xc7\x0c\xff" + b"\x00" * 12 +
                pack(msgpack.ExtType(5, b"abc")))
    s["map-int-keys"] = b"\x82\x01\xa1a\xc0\x02"
    s["map-dup-keys"] = b"\x82\xa1k\x01\xa1k\x02"
    s["map-nested"] = pack({"Parameters": [
        {"Name": "/a/b", "Value": "v", "Version": 3,
         "LastModifiedDate": 1700000000.5, "Labels": ["x"]}],
        "NextToken": "tok"})
    s["command"] = PUT_ALL
    s["depth-24"] = pack(nested(24, 1))
    s["depth-25"] = pack(nested(25, 1))
    s["depth-30"] = pack(nested(30, 1))
    s["truncated"] = PUT_ALL[:-3]
    s["two-objects"] = pack(1) + pack(2)
    s["huge-map32"] = b"\xdf\xff\xff\xff\xff"
    s["huge-array32"] = b"\x91\xdd\xff\xff\xff\xff\x01"
    s["huge-bin32"] = b"\xc6\xff\xff\xff\xff\x00"
    s["huge-str32"] = b"\xdb\x80\x00\x00\x00ab"
    s["reserved-c1"] = b"\x92\xc1\x00"
    s["empty"] = b""
    return s


def frame(items):
    body = pack(items)
    return struct.pack(">I", len(body)) + body


def wire_seeds():
    """Byte streams as a server reads them: one or more frames."""
    req = pack({"Name": "/a/b"})
    s = {}
    s["request"] = frame([0, 1, "GetParameter", 5000, {}, req])
    s["request-meta"] = frame([0, 7, "PutParameter", 0,
                               {"cid": "c" * 32, "seq": 3,
                                "consistency": "stale", "stream": True,
                                "user": "arn:aws:iam::0:root"},
                               pack({"Name": "/a", "Value": "v",
                                     "Type": "String"})])
    s["response"] = frame([1, 1, 5, "ParameterNotFound",
                           "Parameter /a not found.", b"", False])
    s["cancel"] = frame([2, 9])
    s["ping"] = frame([3, 42]) + frame([4, 42])
    s["goaway"] = frame([5, 14, "shutting down"])
    s["pipelined"] = b"".join(frame([0, i, "GetParameter", 0, {}, req])
                              for i in range(1, 6))
    s["split-length"] = s["request"][:2]
    s["zero-length"] = b"\0\0\0\0"
    s["huge-length"] = b"\x7f\xff\xff\xff\x96\x00"
    s["wrong-types"] = frame([0, "one", 7, "x", [], {}])
    s["unknown-type"] = frame([9, 1])
    s["not-array"] = frame({"type": 0})
    return s


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name + ".mp"), "wb") as f:
            f.write(data)
    print("%s: %d seeds, %d bytes" % (d, len(seeds),
                                      sum(len(v) for v in seeds.values())))


def main():
    if msgpack.version < (1, 0, 0):
        sys.exit("python3-msgpack >= 1.0 is required")
    write("sm", sm_seeds())
    write("mp", mp_seeds())
    write("wire", wire_seeds())


if __name__ == "__main__":
    main()
