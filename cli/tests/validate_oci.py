#!/usr/bin/env python3
"""Validates an OCI image layout's index, manifests and configs against the OCI image-spec
JSON schemas (from Debian's golang-github-opencontainers-image-spec-dev)."""
import json
import pathlib
import sys

import jsonschema

SCHEMA_DIR = pathlib.Path("/usr/share/gocode/src/github.com/opencontainers/image-spec/schema")


def load_schemas():
    """Schemas by id; the defs files have none and are found by file name instead."""
    store = {}
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        if schema.get("id"):
            store[schema["id"]] = schema
    return store


def local_file(uri):
    """Every $ref points at a file of the schema directory, by its last path component."""
    return json.loads((SCHEMA_DIR / uri.rsplit("/", 1)[-1].split("#")[0]).read_text())


def validator(store, name):
    schema = json.loads((SCHEMA_DIR / name).read_text())
    resolver = jsonschema.RefResolver(
        base_uri=schema.get("id", ""), referrer=schema, store=store,
        handlers={"https": local_file, "http": local_file},
    )
    return jsonschema.Draft4Validator(schema, resolver=resolver)


def blob(layout, digest):
    algo, hexpart = digest.split(":", 1)
    return json.loads((layout / "blobs" / algo / hexpart).read_text())


def main():
    layout = pathlib.Path(sys.argv[1])
    store = load_schemas()
    checks = 0
    layout_file = json.loads((layout / "oci-layout").read_text())
    validator(store, "image-layout-schema.json").validate(layout_file)
    index = json.loads((layout / "index.json").read_text())
    validator(store, "image-index-schema.json").validate(index)
    checks += 2
    for desc in index["manifests"]:
        manifest = blob(layout, desc["digest"])
        validator(store, "image-manifest-schema.json").validate(manifest)
        config = blob(layout, manifest["config"]["digest"])
        validator(store, "config-schema.json").validate(config)
        checks += 2
    print(f"{checks} documents valid")


if __name__ == "__main__":
    main()
