{{/* The chart's name, or nameOverride. */}}
{{- define "upgrade-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of everything this release creates (fullnameOverride wins). */}}
{{- define "upgrade-guard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "upgrade-guard.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount the daemon runs as (created by the chart unless
     serviceAccount.create=false names an existing one). */}}
{{- define "upgrade-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "upgrade-guard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.create=false needs serviceAccount.name (an existing ServiceAccount)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "upgrade-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upgrade-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "upgrade-guard.labels" -}}
{{ include "upgrade-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The watched namespaces as a JSON list; [] means every namespace. */}}
{{- define "upgrade-guard.watched" -}}
{{- if and .Values.watchAllNamespaces .Values.watchNamespaces -}}
{{- fail "watchAllNamespaces and watchNamespaces contradict each other: set one" -}}
{{- end -}}
{{- if .Values.watchAllNamespaces -}}[]
{{- else if .Values.watchNamespaces -}}{{ toJson .Values.watchNamespaces }}
{{- else if eq .Values.profile "genesys" -}}{{ toJson (list "gim" "gsp" "gca") }}
{{- else -}}{{ toJson (list .Release.Namespace) }}
{{- end -}}
{{- end -}}

{{/* The configuration: the profile's, the chart's settings, then .Values.config. */}}
{{- define "upgrade-guard.config" -}}
{{- $base := dict -}}
{{- if eq .Values.profile "genesys" -}}
{{- $base = .Files.Get "files/default.yaml" | fromYaml -}}
{{- end -}}
{{- $chart := dict
      "watch" (dict "namespaces" (include "upgrade-guard.watched" . | fromJsonArray))
      "state" (dict "namespace" .Release.Namespace)
      "actions" (dict "leader_election" (dict "lease_name" (include "upgrade-guard.fullname" .))) -}}
{{- with .Values.clusterName -}}
{{- $_ := set $chart "cluster" . -}}
{{- end -}}
{{- if .Values.auth.enabled -}}
{{- $_ := set $chart "http" (dict "authentication" "kubernetes") -}}
{{- end -}}
{{- /* Alerts link to the API through the Service (their generatorURL). */ -}}
{{- $notifications := dict "external_url" (printf "http://%s.%s.svc:%v" (include "upgrade-guard.fullname" .) .Release.Namespace .Values.service.port) -}}
{{- if .Values.email.existingSecret -}}
{{- $_ := set $notifications "email" (dict
      "username_file" "/etc/upgrade-guard-smtp/username"
      "password_file" "/etc/upgrade-guard-smtp/password") -}}
{{- end -}}
{{- if .Values.events.enabled -}}
{{- $_ := set $notifications "kubernetes_events" true -}}
{{- end -}}
{{- $_ := set $chart "notifications" $notifications -}}
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

{{/* A duration as the configuration writes it ("15m", "1h30m", "90s") in whole seconds. */}}
{{- define "upgrade-guard.seconds" -}}
{{- $total := 0 -}}
{{- range $part := regexFindAll "[0-9]+(ms|s|m|h|d)" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+" $part | int -}}
{{- $unit := regexFind "(ms|s|m|h|d)$" $part -}}
{{- $total = add $total (get (dict "ms" 0 "s" $n "m" (mul $n 60) "h" (mul $n 3600) "d" (mul $n 86400)) $unit) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* The grace period a stopping pod needs with rollback enabled: the longest
     rollback_timeout, plus the time upgrade-guard gives helm past it (as much again,
     between 15 and 60 s), plus 30 s to record the outcome. */}}
{{- define "upgrade-guard.rollbackGrace" -}}
{{- $config := include "upgrade-guard.config" . | fromYaml -}}
{{- $longest := include "upgrade-guard.seconds" (dig "defaults" "rollback_timeout" "5m" $config) | int -}}
{{- range $r := (dig "releases" list $config) -}}
{{- $t := include "upgrade-guard.seconds" (dig "rollback_timeout" "0s" $r) | int -}}
{{- if gt $t $longest -}}{{- $longest = $t -}}{{- end -}}
{{- end -}}
{{- add $longest (max 15 (min $longest 60)) 30 -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: as set (refused below the rollback grace when rollback
     is enabled), else the rollback grace or 60. */}}
{{- define "upgrade-guard.terminationGrace" -}}
{{- $set := .Values.terminationGracePeriodSeconds -}}
{{- if .Values.rollback.enabled -}}
{{- $need := include "upgrade-guard.rollbackGrace" . | int -}}
{{- if kindIs "invalid" $set -}}{{- $need -}}
{{- else if lt (int $set) $need -}}
{{- fail (printf "terminationGracePeriodSeconds %d is shorter than a rollback may take (%d s: the longest rollback_timeout, helm's grace and a margin): a restart of upgrade-guard during a rollback would kill helm and leave the release locked; leave it empty or raise it" (int $set) $need) -}}
{{- else -}}{{- $set -}}{{- end -}}
{{- else -}}
{{- if kindIs "invalid" $set -}}60{{- else -}}{{- $set -}}{{- end -}}
{{- end -}}
{{- end -}}
