{{/*
Names, labels and the derived settings shared by the templates.
*/}}

{{- define "prefixd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, shortened to the 63 characters a DNS label allows. */}}
{{- define "prefixd.fullname" -}}
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

{{- define "prefixd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prefixd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prefixd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "prefixd.labels" -}}
helm.sh/chart: {{ include "prefixd.chart" . }}
{{ include "prefixd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end }}

{{/* The embedded Redis gets its own selector, so the server's never matches it. */}}
{{- define "prefixd.redis.fullname" -}}
{{- printf "%s-redis" (include "prefixd.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prefixd.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prefixd.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "prefixd.redis.labels" -}}
helm.sh/chart: {{ include "prefixd.chart" . }}
{{ include "prefixd.redis.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "prefixd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "prefixd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "prefixd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the API keys file and the Redis password, or "" when there is none. */}}
{{- define "prefixd.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if or .Values.secrets.apiKeysFile .Values.redis.password }}
{{- include "prefixd.fullname" . }}
{{- end }}
{{- end }}

{{/* Whether the chart creates the Secret itself. */}}
{{- define "prefixd.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (or .Values.secrets.apiKeysFile .Values.redis.password) }}true{{- end }}
{{- end }}

{{/* Whether an API keys file is mounted (API_KEYS_FILE set). */}}
{{- define "prefixd.hasApiKeys" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.apiKeysFile }}true{{- end }}
{{- end }}

{{/* REDIS_URL: the external one, the embedded Service, or "" (on-disk index). */}}
{{- define "prefixd.redisUrl" -}}
{{- if .Values.redis.url }}
{{- .Values.redis.url }}
{{- else if .Values.redis.embedded.enabled }}
{{- printf "redis://%s:6379/0" (include "prefixd.redis.fullname" .) }}
{{- end }}
{{- end }}

{{- define "prefixd.executionProvider" -}}
{{- if .Values.config.executionProvider }}
{{- .Values.config.executionProvider }}
{{- else if .Values.gpu.enabled }}cuda
{{- else }}cpu
{{- end }}
{{- end }}

{{/*
INTRA_OP_THREADS: the configured value, or whole cores of the CPU limit
("2" -> 2, "2.5" -> 2, "1500m" -> 1), at least 1.
*/}}
{{- define "prefixd.intraOpThreads" -}}
{{- $n := int .Values.config.intraOpThreads }}
{{- if gt $n 0 }}
{{- $n }}
{{- else }}
{{- $cpu := toString .Values.resources.limits.cpu }}
{{- if hasSuffix "m" $cpu }}
{{- max 1 (div (atoi (trimSuffix "m" $cpu)) 1000) }}
{{- else }}
{{- max 1 (int (float64 $cpu)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The smallest grace period that lets the preStop sleep and the drain finish. */}}
{{- define "prefixd.minGracePeriod" -}}
{{- $drainSeconds := div (add (int .Values.shutdown.drainTimeoutMs) 999) 1000 }}
{{- add (int .Values.shutdown.preStopSleepSeconds) $drainSeconds (int .Values.shutdown.marginSeconds) }}
{{- end }}

{{/* terminationGracePeriodSeconds, refusing a value that would cut the drain short. */}}
{{- define "prefixd.gracePeriod" -}}
{{- $min := int (include "prefixd.minGracePeriod" .) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- $min }}
{{- else }}
{{- $set := int .Values.terminationGracePeriodSeconds }}
{{- if lt $set $min }}
{{- fail (printf "terminationGracePeriodSeconds=%d is below preStopSleepSeconds (%d) + drain timeout (%d ms, rounded up to seconds) + marginSeconds (%d) = %d: Kubernetes would kill requests mid-drain; raise it or leave it null" $set (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.drainTimeoutMs) (int .Values.shutdown.marginSeconds) $min) }}
{{- end }}
{{- $set }}
{{- end }}
{{- end }}

{{/* Settings that cannot work together: refused at render time with a reason. */}}
{{- define "prefixd.validate" -}}
{{- $redis := include "prefixd.redisUrl" . }}
{{- if and .Values.redis.url .Values.redis.embedded.enabled }}
{{- fail "set redis.url or redis.embedded.enabled, not both" }}
{{- end }}
{{- if and (not $redis) (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs Redis: set redis.url or redis.embedded.enabled, or every pod keeps its own prefix index" }}
{{- end }}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]+@" .Values.redis.url }}
{{- fail "redis.url carries a password, and it would land in a ConfigMap: put it in redis.password or secrets.existingSecret instead" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.secrets.existingSecret (or .Values.secrets.apiKeysFile .Values.redis.password) }}
{{- fail "secrets.existingSecret is set: put the API keys file and the Redis password in that Secret, not in secrets.apiKeysFile or redis.password" }}
{{- end }}
{{- $managed := list "HOST" "PORT" "LOG_LEVEL" "MODEL_DIR" "MODEL_ID" "CACHE_DIR" "PREFIX_DIR" "EXECUTION_PROVIDER" "INTRA_OP_THREADS" "MAX_BATCH_SIZE" "MAX_BATCH_TOKENS" "MAX_PREFILL_TOKENS" "MAX_WAITING_REQUESTS" "REQUEST_TIMEOUT_MS" "DEFAULT_MAX_NEW_TOKENS" "MAX_INPUT_CHARS" "MAX_STOP_SEQUENCES" "BODY_LIMIT_BYTES" "MAX_PREFIX_FILE_BYTES" "SHUTDOWN_TIMEOUT_MS" "REDIS_URL" "REDIS_PASSWORD" "API_KEYS_FILE" }}
{{- range $name, $_ := .Values.config.extra }}
{{- if has $name $managed }}
{{- fail (printf "config.extra.%s: the chart sets %s itself; use its own value" $name $name) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- end }}

{{/* An emptyDir source, with a size limit when one is given: {} or {"sizeLimit":"1Gi"}. */}}
{{- define "prefixd.emptyDir" -}}
{{- if . }}{{ dict "sizeLimit" (toString .) | toJson }}{{ else }}{}{{ end }}
{{- end }}
