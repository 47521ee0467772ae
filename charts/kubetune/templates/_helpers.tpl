{{/* The chart's name, truncated to a DNS label. */}}
{{- define "kubetune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: the release name, or "<release>-<chart>" when it lacks the chart name. */}}
{{- define "kubetune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "kubetune.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kubetune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetune
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "operator"). */}}
{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetune.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "kubetune.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "kubetune.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The training pods' ServiceAccount: the name the operator gives the worker pods. */}}
{{- define "kubetune.trainerServiceAccount" -}}
kubetune-trainer
{{- end }}

{{/* Namespaces that get the trainer's ServiceAccount and Role: the release namespace plus trainer.namespaces. */}}
{{- define "kubetune.trainerNamespaces" -}}
{{- prepend .Values.trainer.namespaces .Release.Namespace | uniq | toJson }}
{{- end }}

{{/* The MLflow server's Service name and in-cluster URI. */}}
{{- define "kubetune.mlflowName" -}}
{{- printf "%s-mlflow" (include "kubetune.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "kubetune.mlflowUri" -}}
{{- printf "http://%s.%s.svc:%d" (include "kubetune.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) }}
{{- end }}

{{/* The PostgreSQL Service/StatefulSet/Secret name. */}}
{{- define "kubetune.postgresqlName" -}}
{{- printf "%s-postgresql" (include "kubetune.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The PostgreSQL password: the value, else the one already in the Secret, else a new random one. */}}
{{- define "kubetune.postgresqlPassword" -}}
{{- if .Values.postgresql.password }}
{{- .Values.postgresql.password }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "kubetune.postgresqlName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "password") }}
{{- index $existing.data "password" | b64dec }}
{{- else }}
{{- randAlphaNum 24 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The CRD annotations: keep the CRD (and so every TrainingJob) on helm uninstall when crds.keep. */}}
{{- define "kubetune.crdAnnotations" -}}
{{- if .Values.crds.keep }}
annotations:
  helm.sh/resource-policy: keep
{{- end }}
{{- end }}
