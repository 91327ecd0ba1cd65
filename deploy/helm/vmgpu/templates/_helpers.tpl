{{/* Names. */}}
{{- define "vmgpu.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vmgpu.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", kept within 63 characters. */}}
{{- define "vmgpu.component" -}}
{{- $full := include "vmgpu.fullname" .root -}}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .suffix)))) .suffix | trimSuffix "-" -}}
{{- end -}}

{{- define "vmgpu.agentName" -}}
{{- include "vmgpu.component" (dict "root" . "suffix" "agent") -}}
{{- end -}}

{{- define "vmgpu.syncName" -}}
{{- include "vmgpu.component" (dict "root" . "suffix" "kubevirt-sync") -}}
{{- end -}}

{{- define "vmgpu.agentServiceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vmgpu.agentName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false (the admission policy and RBAC are bound to it)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vmgpu.syncServiceAccount" -}}
{{- if .Values.kubevirtSync.serviceAccount.create -}}
{{- default (include "vmgpu.syncName" .) .Values.kubevirtSync.serviceAccount.name -}}
{{- else -}}
{{- required "kubevirtSync.serviceAccount.name is required when kubevirtSync.serviceAccount.create is false" .Values.kubevirtSync.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vmgpu.catalogMapName" -}}
{{- include "vmgpu.component" (dict "root" . "suffix" "catalog") -}}
{{- end -}}

{{- define "vmgpu.configMapName" -}}
{{- if .Values.config.create -}}
{{- include "vmgpu.component" (dict "root" . "suffix" "config") -}}
{{- else -}}
{{- required "config.existingConfigMap is required when config.create is false (a ConfigMap in the release namespace with key config.yaml)" .Values.config.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{/* The image reference: digest wins over tag; the tag defaults to the chart's appVersion. */}}
{{- define "vmgpu.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Labels. */}}
{{- define "vmgpu.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "vmgpu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vmgpu
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "vmgpu.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vmgpu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "vmgpu.syncSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vmgpu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: kubevirt-sync
{{- end -}}
