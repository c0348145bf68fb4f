#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for the features sluice's base
uses (resources, labels without selectors, configMapGenerator from files without hash
suffixes), so CI can validate the manifests where no kustomize binary is installed. CI
compares the two where both exist. Needs PyYAML.

    python3 deploy/kubernetes/render.py deploy/kubernetes/base > sluice.yaml
    python3 deploy/kubernetes/render.py deploy/kubernetes/base --same-as kustomized.yaml
"""
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "labels", "resources", "configMapGenerator", "generatorOptions"}


def render(root):
    with open(os.path.join(root, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - SUPPORTED
    if unknown:
        sys.exit(f"render.py: unsupported kustomization fields {sorted(unknown)}; use kubectl kustomize")
    if not (k.get("generatorOptions") or {}).get("disableNameSuffixHash"):
        sys.exit("render.py: only generators with disableNameSuffixHash: true are supported")
    docs = []
    for generator in k.get("configMapGenerator", []):
        data = {}
        for path in generator["files"]:
            with open(os.path.join(root, path)) as f:
                data[os.path.basename(path)] = f.read()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    for path in k.get("resources", []):
        with open(os.path.join(root, path)) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    for entry in k.get("labels", []):
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            sys.exit("render.py: labels with includeSelectors/includeTemplates are not supported")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    return docs


def same_objects(ours, theirs):
    """Differences between two lists of objects, matched by kind and name."""
    key = lambda d: (d["kind"], d["metadata"]["name"])
    a, b = {key(d): d for d in ours}, {key(d): d for d in theirs}
    problems = [f"only in render.py: {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only in kustomize: {k}" for k in sorted(set(b) - set(a))]
    problems += [f"differs: {k}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return problems


if __name__ == "__main__":
    docs = render(sys.argv[1])
    if len(sys.argv) == 4 and sys.argv[2] == "--same-as":
        with open(sys.argv[3]) as f:
            problems = same_objects(docs, [d for d in yaml.safe_load_all(f) if d])
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1 if problems else 0)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
