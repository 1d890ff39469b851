{{/* The chart's name. */}}
{{- define "amlsecrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object. */}}
{{- define "amlsecrets.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "amlsecrets.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "amlsecrets.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "amlsecrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "amlsecrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "amlsecrets.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "amlsecrets.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "amlsecrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "amlsecrets.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The admin port, taken from config.adminAddr. */}}
{{- define "amlsecrets.adminPort" -}}
{{- splitList ":" (toString .Values.config.adminAddr) | last | int }}
{{- end }}

{{- define "amlsecrets.leaseNamespace" -}}
{{- default .Release.Namespace .Values.config.leaderElectionNamespace }}
{{- end }}

{{- define "amlsecrets.extraCaFile" -}}
{{- if .Values.config.extraCaFile }}{{ .Values.config.extraCaFile }}{{ else if .Values.extraCaBundle }}/etc/amlsecrets/extra-ca/ca.crt{{ end }}
{{- end }}

{{/*
The rules the controllers need in every watched namespace. Verbs follow what the code does:
nothing more.
*/}}
{{- define "amlsecrets.rules" -}}
# Watch the two kinds (list+watch feed the controllers' caches; get reads a workspace on demand).
- apiGroups: ["amlsecrets.io"]
  resources: ["azuremlworkspaces", "workspacesecrets"]
  verbs: ["get", "list", "watch"]
# Write status (conditions, provenance) through the status subresource.
- apiGroups: ["amlsecrets.io"]
  resources: ["azuremlworkspaces/status", "workspacesecrets/status"]
  verbs: ["patch"]
# Add and remove the finalizer of Merge-policy WorkspaceSecrets (releases their keys on delete).
- apiGroups: ["amlsecrets.io"]
  resources: ["workspacesecrets"]
  verbs: ["patch"]
# Target Secrets: read (get; list+watch of the managed ones by label, metadata only), server-side
# apply (patch, plus create when the apply creates one), and delete of an owned Secret left with no
# keys under deletionPolicy Delete. Credential Secrets named by a workspace are read with get.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Workload identity: read a ServiceAccount's client-id/tenant-id annotations, and watch them so a
# changed annotation re-checks its workspaces.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch"]
# Workload identity: a TokenRequest for the ServiceAccount a workspace names (exchanged at Entra ID).
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
# Events about transitions a user cares about (create; patch updates the series of a repeat).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# WorkspaceSecretPush: watch them (list+watch feed the cache; get re-reads one before a push, so
# its last digests are current), patch their finalizer (delete what they wrote, unlabel the
# source), and write their status. Their source Secrets need nothing beyond the Secret rule above:
# get reads one, patch adds or removes the label amlsecrets.io/push-source, list+watch follow the
# labelled ones (metadata only).
- apiGroups: ["amlsecrets.io"]
  resources: ["workspacesecretpushes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["amlsecrets.io"]
  resources: ["workspacesecretpushes/status"]
  verbs: ["patch"]
{{- if .Values.config.rolloutWorkloads }}
# Rollouts (config.rolloutWorkloads): find opted-in workloads (list, metadata only), read their pod
# template (get) and set the digest annotation (patch); list pods to tell whether a workload that
# opted in later runs with older data.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}
{{- end }}
