#!/usr/bin/env bash
# Copy the TrainingJob CRD (manifests/crds/, the source of truth) into the chart, which renders it via .Files.Get.
# tests/deploy fail while the two differ; run this after every change to the CRD.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/manifests/crds/trainingjobs.kubetune.dev.yaml"
dst="$root/charts/kubetune/files/crds/trainingjobs.kubetune.dev.yaml"
mkdir -p "$(dirname "$dst")"
if cmp -s "$src" "$dst"; then
  echo "chart CRD already in sync"
else
  cp "$src" "$dst"
  echo "copied $src -> $dst"
fi
