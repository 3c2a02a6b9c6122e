#!/usr/bin/env python3
"""Checks an OCI image layout against the official image-spec JSON Schemas.

Usage: oci_layout_check.py SCHEMAS_DIR LAYOUT_DIR

Validates oci-layout, index.json, every manifest and image index reachable
from it, and every image config, with the schemas copied unchanged from
opencontainers/image-spec (../shared/oci-image-spec-schemas). The schemas
refer to each other by https://opencontainers.org/schema/... ids; those are
resolved to the local files by name. Every descriptor's blob must exist and
match its digest and size. Prints one line per checked document; exits 1 on
the first failure with the reason.
"""

import hashlib
import json
import os
import sys

import jsonschema

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


class Checker:
    def __init__(self, schemas_dir, layout):
        self.schemas_dir = schemas_dir
        self.layout = layout
        self.checked = 0

    def load_schema(self, name):
        with open(os.path.join(self.schemas_dir, name)) as handle:
            return json.load(handle)

    def resolve_remote(self, uri):
        # https://opencontainers.org/schema/image/defs.json -> defs.json
        return self.load_schema(uri.rsplit("/", 1)[-1].split("#")[0])

    def validate(self, document, schema_name, what):
        schema = self.load_schema(schema_name)
        resolver = jsonschema.RefResolver(
            base_uri=schema.get("id", ""), referrer=schema,
            handlers={"https": self.resolve_remote, "http": self.resolve_remote})
        validator = jsonschema.Draft4Validator(schema, resolver=resolver)
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        if errors:
            error = errors[0]
            fail("%s does not match %s at %s: %s" % (what, schema_name, "/".join(map(str, error.path)), error.message))
        self.checked += 1
        print("ok   %-28s %s" % (schema_name, what))

    def blob(self, descriptor, what):
        algorithm, _, digest = descriptor["digest"].partition(":")
        path = os.path.join(self.layout, "blobs", algorithm, digest)
        if not os.path.isfile(path):
            fail("%s: blob %s is missing" % (what, descriptor["digest"]))
        with open(path, "rb") as handle:
            content = handle.read()
        if len(content) != descriptor["size"]:
            fail("%s: blob %s is %d bytes, the descriptor says %d" % (what, descriptor["digest"], len(content), descriptor["size"]))
        if hashlib.new(algorithm, content).hexdigest() != digest:
            fail("%s: blob %s does not match its digest" % (what, descriptor["digest"]))
        return content

    def check_index(self, index, what):
        self.validate(index, "image-index-schema.json", what)
        for descriptor in index.get("manifests", []):
            name = descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name", descriptor["digest"])
            content = json.loads(self.blob(descriptor, name))
            if descriptor["mediaType"] == INDEX:
                self.check_index(content, "index " + name)
            elif descriptor["mediaType"] == MANIFEST:
                self.check_manifest(content, name)
            else:
                fail("%s: unexpected media type %s in an index" % (name, descriptor["mediaType"]))

    def check_manifest(self, manifest, name):
        self.validate(manifest, "image-manifest-schema.json", "manifest " + name)
        if manifest["config"]["mediaType"] != CONFIG:
            fail("manifest %s: config media type %s" % (name, manifest["config"]["mediaType"]))
        config = json.loads(self.blob(manifest["config"], "config of " + name))
        self.validate(config, "config-schema.json", "config " + name)
        for layer in manifest["layers"]:
            self.blob(layer, "layer of " + name)
        if len(config["rootfs"]["diff_ids"]) != len(manifest["layers"]):
            fail("config %s: %d diff_ids for %d layers" % (name, len(config["rootfs"]["diff_ids"]), len(manifest["layers"])))

    def run(self):
        with open(os.path.join(self.layout, "oci-layout")) as handle:
            self.validate(json.load(handle), "image-layout-schema.json", "oci-layout")
        with open(os.path.join(self.layout, "index.json")) as handle:
            self.check_index(json.load(handle), "index.json")
        print("%d documents valid" % self.checked)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    Checker(sys.argv[1], sys.argv[2]).run()
