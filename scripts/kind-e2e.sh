#!/usr/bin/env bash
# Opt-in end-to-end run on a local kind cluster (needs docker, kind, kubectl and helm on PATH; minutes, not seconds):
#   1. a cluster from kind-config.yaml (on-demand and tainted spot workers),
#   2. both images built from this checkout and loaded into the nodes,
#   3. the chart installed (operator + MLflow), `helm test`,
#   4. examples/digits-ddp.yaml with the built trainer image, waited on until Succeeded,
#   5. a second job, whose worker's spot node is drained mid-run: the job must relaunch and still succeed.
# The cluster is deleted on exit unless KEEP_CLUSTER=1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CLUSTER="${CLUSTER:-kubetune-e2e}"
TAG="${TAG:-e2e}"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-ghcr.io/kubetune/operator:$TAG}"
TRAINER_IMAGE="${TRAINER_IMAGE:-ghcr.io/kubetune/trainer:$TAG}"
NAMESPACE="${NAMESPACE:-kubetune-system}"
JOB_NAMESPACE="${JOB_NAMESPACE:-default}"
TIMEOUT="${TIMEOUT:-15m}"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 2; }
done

log() { printf '\n==> %s\n' "$*"; }

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "failed (exit $rc): state for the post-mortem"
    kubectl get tj,pods -A -o wide || true
    kubectl -n "$NAMESPACE" logs deployment/kubetune-operator --tail=200 || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" == "1" ]]; then
    log "KEEP_CLUSTER=1: cluster $CLUSTER kept (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# A TrainingJob from an example, renamed, with the built trainer image and the spot toleration (to let it land on
# spot nodes as well as on-demand ones); an optional epoch count keeps it running long enough to be interrupted.
job_manifest() {
  local example="$1" name="$2" epochs="${3:-}"
  sed -e "s/^  name: .*/  name: $name/" \
      -e "${epochs:+s/^    epochs: .*/    epochs: $epochs/}" \
      -e "/^spec:/a\\  image: $TRAINER_IMAGE" \
      -e "/^spec:/a\\  tolerations: [{key: kubernetes.azure.com/scalesetpriority, operator: Equal, value: spot, effect: NoSchedule}]" \
      "$example"
}

log "cluster $CLUSTER from kind-config.yaml"
kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
kubectl get nodes -L node.kubernetes.io/capacity,karpenter.sh/capacity-type

log "images"
docker build -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
docker build -f trainer/Dockerfile -t "$TRAINER_IMAGE" .
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$TRAINER_IMAGE"

log "helm install"
helm install kubetune charts/kubetune --namespace "$NAMESPACE" --create-namespace --wait --timeout 10m \
  --set operator.image.repository="${OPERATOR_IMAGE%:*}" \
  --set operator.image.tag="${OPERATOR_IMAGE##*:}" \
  --set operator.image.pullPolicy=Never \
  --set operator.nodeSelector."node\.kubernetes\.io/capacity"=on-demand \
  --set mlflow.enabled=true \
  --set mlflow.persistence.enabled=false
helm test kubetune --namespace "$NAMESPACE" --logs

log "digits-ddp until Succeeded"
job_manifest examples/digits-ddp.yaml digits-ddp | kubectl apply -n "$JOB_NAMESPACE" -f -
kubectl get tj -n "$JOB_NAMESPACE"
kubectl wait -n "$JOB_NAMESPACE" --for=jsonpath='{.status.phase}'=Succeeded tj/digits-ddp --timeout="$TIMEOUT"
kubectl get tj digits-ddp -n "$JOB_NAMESPACE" -o wide

log "preemption: drain a spot node under a running job"
job_manifest examples/digits-ddp.yaml digits-ddp-spot 400 | kubectl apply -n "$JOB_NAMESPACE" -f -
kubectl wait -n "$JOB_NAMESPACE" --for=jsonpath='{.status.phase}'=Running tj/digits-ddp-spot --timeout=5m
spot_nodes="$(kubectl get nodes -l karpenter.sh/capacity-type=spot -o jsonpath='{.items[*].metadata.name}')"
victim=""
for _ in $(seq 60); do
  for node in $(kubectl get pods -n "$JOB_NAMESPACE" -l kubetune.dev/job=digits-ddp-spot \
                  -o jsonpath='{.items[*].spec.nodeName}'); do
    if [[ " $spot_nodes " == *" $node "* ]]; then victim="$node"; break 2; fi
  done
  sleep 2
done
if [[ -z "$victim" ]]; then
  # No worker landed on spot capacity: drain the node of any worker, which exercises the same relaunch path.
  victim="$(kubectl get pods -n "$JOB_NAMESPACE" -l kubetune.dev/job=digits-ddp-spot \
              -o jsonpath='{.items[0].spec.nodeName}')"
  echo "no worker on a spot node; draining $victim instead"
fi
kubectl get pods -n "$JOB_NAMESPACE" -l kubetune.dev/job=digits-ddp-spot -o wide
kubectl drain "$victim" --ignore-daemonsets --delete-emptydir-data --timeout=5m
kubectl wait -n "$JOB_NAMESPACE" --for=jsonpath='{.status.phase}'=Succeeded tj/digits-ddp-spot --timeout="$TIMEOUT"
kubectl uncordon "$victim"
kubectl get tj digits-ddp-spot -n "$JOB_NAMESPACE" -o yaml | sed -n '/^status:/,$p'
kubectl get events -n "$JOB_NAMESPACE" --field-selector involvedObject.name=digits-ddp-spot
log "kind-e2e: passed"
