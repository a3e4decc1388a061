{{/* Name of everything this release creates. */}}
{{- define "upgrade-guard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "upgrade-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "upgrade-guard.labels" -}}
{{ include "upgrade-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The configuration: the built-in profile, the chart's settings, then .Values.config. */}}
{{- define "upgrade-guard.config" -}}
{{- $base := .Files.Get "files/default.yaml" | fromYaml -}}
{{- $chart := dict
      "watch" (dict "namespaces" .Values.watchNamespaces)
      "state" (dict "namespace" .Release.Namespace)
      "actions" (dict "leader_election" (dict "lease_name" (include "upgrade-guard.fullname" .))) -}}
{{- if .Values.email.existingSecret -}}
{{- $_ := set $chart "notifications" (dict "email" (dict
      "username_file" "/etc/upgrade-guard-smtp/username"
      "password_file" "/etc/upgrade-guard-smtp/password")) -}}
{{- end -}}
{{- $config := mergeOverwrite $base $chart (deepCopy (.Values.config | default dict)) -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Whether the configuration puts any release in mode: auto. */}}
{{- define "upgrade-guard.auto" -}}
{{- $config := include "upgrade-guard.config" . | fromYaml -}}
{{- $auto := eq (dig "defaults" "mode" "recommend" $config) "auto" -}}
{{- range $r := (dig "releases" list $config) -}}
{{- if eq (dig "mode" "" $r) "auto" -}}{{- $auto = true -}}{{- end -}}
{{- end -}}
{{- if $auto -}}true{{- end -}}
{{- end -}}
