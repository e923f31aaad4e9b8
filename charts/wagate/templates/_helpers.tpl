{{/* Names and labels shared by every template. */}}

{{- define "wagate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wagate.fullname" -}}
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

{{/* Object name of a role: "<fullname>-<role>". Call with (list $ "worker"). The fullname is cut to 44
   characters so that the longest names stay legal: "-cleanup" for a CronJob (52 at most, since
   its Jobs add a suffix) and "-autoscaler-metrics" for a Service (63). */}}
{{- define "wagate.roleName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "wagate.fullname" $root | trunc 44 | trimSuffix "-") (index . 1) -}}
{{- end -}}

{{/*
The labels of every object, then commonLabels. A common label never replaces one of the
chart's own (a key twice is YAML that Helm, kustomize and Flux refuse; a changed name or
instance would leave the ServiceMonitor selecting nothing), nor the labels that templates add
after these: the role (wagate.roleLabels), the scrape job's, the metrics Services' and the
dashboard's.
*/}}
{{- define "wagate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "wagate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wagate
{{- with omit .Values.commonLabels "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" "app.kubernetes.io/component" "wagate.io/job" "wagate.io/metrics" "grafana_dashboard" }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The labels of a monitoring object: the chart's (wagate.labels), then the template's own (such
as grafana_dashboard), then the object's additionalLabels, each key once. An additional label
replaces a common or template label of the same key, never one of the chart's own. Call with
(list $ additionalLabels templateLabels).
*/}}
{{- define "wagate.labelsWithAdditional" -}}
{{- $root := index . 0 -}}
{{- $additional := omit (index . 1 | default dict) "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" -}}
{{- toYaml (mustMergeOverwrite (include "wagate.labels" $root | fromYaml) (index . 2) $additional) -}}
{{- end -}}

{{/* Selector labels of a role's pods. Call with (list $ "worker"). */}}
{{- define "wagate.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "wagate.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
Labels of a role's pods: its selector labels, then commonLabels. A common label never replaces a
selector label (the pods would no longer match their Deployment) nor the scrape job's label.
Call with (list $ "worker").
*/}}
{{- define "wagate.podLabels" -}}
{{- $root := index . 0 -}}
{{ include "wagate.selectorLabels" . }}
{{- with omit $root.Values.commonLabels "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "wagate.io/job" }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Where a role's pods may run. Call with the role's values (.Values.worker). */}}
{{- define "wagate.podPlacement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* All labels of a role's objects. Call with (list $ "worker"). */}}
{{- define "wagate.roleLabels" -}}
{{ include "wagate.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
The fixed scrape job of a role. ServiceMonitor and PodMonitor take the job label from it, so
the "down" alerts in files/alerts.yaml (job=~".*wagate-ingest") find every role whatever the
release is called.
*/}}
{{- define "wagate.jobName" -}}
{{- printf "wagate-%s" . -}}
{{- end -}}

{{/* By digest when one is given (what kustomize's images: digest gives too), else by tag. */}}
{{- define "wagate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
A value as an environment variable's text. YAML numbers reach templates as float64, which
print as 3.145728e+06 from a million up: whole numbers are printed as integers.
*/}}
{{- define "wagate.envText" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- printf "%d" (int64 .) | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end -}}

{{- define "wagate.secretName" -}}
{{- default (include "wagate.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The worker Deployment's name, which the autoscaler, its Role and KEDA point at. */}}
{{- define "wagate.workerName" -}}
{{- include "wagate.roleName" (list . "worker") -}}
{{- end -}}

{{- define "wagate.configName" -}}
{{- include "wagate.roleName" (list . "config") -}}
{{- end -}}

{{/* Rolls the pods when the chart-made Secret or the settings change. */}}
{{- define "wagate.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{- define "wagate.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "wagate.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/*
The Cluster Autoscaler keeps a node that runs a pod with an emptyDir (its default
--skip-nodes-with-local-storage), so after a peak the nodes of the ingest, worker and
autoscaler pods were never taken away. /tmp holds nothing to keep: the Deployments' pods say so.
Not the Jobs': a migration or cleanup moved mid-run would start over. Call with the role's values;
a podAnnotations entry of the same key wins.
*/}}
{{- define "wagate.evictableTmp" -}}
{{- if not (hasKey (default dict .podAnnotations) "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes") -}}
cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes: tmp
{{- end -}}
{{- end -}}

{{- define "wagate.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
The container fields every role shares: image, command line, settings, security. Call with
(list $ "worker"), or with the whole command line after the root: (list $ "cleanup" "--days" "40").
*/}}
{{- define "wagate.containerBase" -}}
{{- $root := index . 0 -}}
image: {{ include "wagate.image" $root }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
args: {{ toJson (rest .) }}
envFrom:
  - configMapRef:
      name: {{ include "wagate.configName" $root }}
securityContext:
  {{- toYaml $root.Values.securityContext | nindent 2 }}
volumeMounts:
  {{- include "wagate.tmpMount" $root | nindent 2 }}
  {{- /* Every role built on this reads the Secret, and its pod has the volume (wagate.secretVolume). */}}
  {{- with include "wagate.secretMount" $root }}{{ . | nindent 2 }}{{ end }}
  {{- if and (eq (index . 1) "worker") $root.Values.worker.replyTexts }}
  - name: reply-texts
    mountPath: {{ include "wagate.replyTextsDir" $root }}
    readOnly: true
  {{- end }}
{{- end -}}

{{/* Where a shop's own reply texts (worker.replyTexts) are mounted. */}}
{{- define "wagate.replyTextsDir" -}}
/etc/wagate/reply-texts
{{- end -}}

{{/* Fails the render with a clear message when a required credential is missing. */}}
{{- define "wagate.validateSecrets" -}}
{{- if not .Values.secrets.existingSecret -}}
{{- $_ := required "secrets.databaseUrl is required (the PostgreSQL URL), or name a Secret in secrets.existingSecret" .Values.secrets.databaseUrl -}}
{{- $_ := required "secrets.amqpUrl is required (the RabbitMQ URL), or name a Secret in secrets.existingSecret" .Values.secrets.amqpUrl -}}
{{- /* What every pod would refuse at start, and the migration hook, which reads only DATABASE_URL, never sees: refused here, before any pod is replaced. */ -}}
{{- if not (regexMatch "^postgres(ql)?://\\S+$" (trim .Values.secrets.databaseUrl)) -}}
{{- fail "secrets.databaseUrl must be a URL such as postgres://user:password@host:5432/database (scheme postgres or postgresql)" -}}
{{- end -}}
{{- /* As the pods parse it: the authority ends at the first /, ? or #, so a password with one of
       them raw reads as a host and a port that is no number; every % of the user and password
       starts an escape of two hex digits. */ -}}
{{- if not (regexMatch "^amqps?://(([^/?#\\s%]|%[0-9A-Fa-f]{2})*@)?(\\[[0-9A-Fa-f:.]+\\]|[^/?#@\\s:\\[\\]]+)(:[0-9]*)?([/?#]\\S*)?$" (trim .Values.secrets.amqpUrl)) -}}
{{- fail "secrets.amqpUrl must be a URL such as amqp://user:password@host:5672/vhost (scheme amqp or amqps, a host, a port that is a number, and in the user and password /, ?, # and % written %2F, %3F, %23 and %25): the ingest and worker pods refuse another at start" -}}
{{- end -}}
{{- if regexMatch "[^\\x21-\\x7e]" (trim .Values.secrets.whatsappAccessToken) -}}
{{- fail "secrets.whatsappAccessToken holds a space or a character an Authorization header cannot carry: paste the token alone, without \"Bearer \"; the worker pods refuse it at start" -}}
{{- end -}}
{{- if not (or .Values.secrets.whatsappAppSecret .Values.secrets.twilioAuthToken) -}}
{{- fail "secrets.whatsappAppSecret or secrets.twilioAuthToken is required: without one every webhook is refused (or name a Secret in secrets.existingSecret)" -}}
{{- end -}}
{{- $fromExtraEnv := include "wagate.extraEnvSecrets" . | fromJsonArray -}}
{{- if and (not (include "wagate.ingestTwilioAuthToken" .)) (not .Values.secrets.twilioWebhookSharedKey) (not (has "TWILIO_WEBHOOK_SHARED_KEY" $fromExtraEnv)) -}}
{{- fail "secrets.twilioWebhookSharedKey is required with ingest.twilioAuthToken false: without the auth token the ingest checks Twilio's webhooks against the shared key alone, and without one refuses them all" -}}
{{- end -}}
{{- if and .Values.secrets.twilioWebhookSharedKey (not .Values.secrets.twilioAuthToken) -}}
{{- fail "secrets.twilioAuthToken is required with secrets.twilioWebhookSharedKey: the worker sends Twilio replies with the auth token, and a shared key only signs webhooks" -}}
{{- end -}}
{{- if and .Values.secrets.twilioAuthToken (not .Values.config.PUBLIC_BASE_URL) -}}
{{- fail "config.PUBLIC_BASE_URL is required with secrets.twilioAuthToken: Twilio signs the URL it calls, and wagate refuses Twilio in production without it" -}}
{{- end -}}
{{- if and .Values.secrets.whatsappAppSecret (not .Values.secrets.whatsappAccessToken) -}}
{{- fail "secrets.whatsappAccessToken is required with secrets.whatsappAppSecret: the worker sends Meta replies with it, and refuses to start without it" -}}
{{- end -}}
{{- if and .Values.secrets.twilioAuthToken (not .Values.config.TWILIO_ACCOUNT_SID) -}}
{{- fail "config.TWILIO_ACCOUNT_SID is required with secrets.twilioAuthToken: the worker sends Twilio replies with it, and refuses to start without it" -}}
{{- end -}}
{{- if eq .Values.worker.autoscaling.mode "keda" -}}
{{- $_ := required "secrets.rabbitmqManagementUrl is required with worker.autoscaling.mode keda (KEDA reads the queues through the management API)" .Values.secrets.rabbitmqManagementUrl -}}
{{- end -}}
{{- end -}}
{{- /* The most workers the mode can run: with autoscaling off, maxReplicas is unused and worker.replicas is the count. */ -}}
{{- $shards := int .Values.config.WORK_SHARDS -}}
{{- $fixedWorkers := eq .Values.worker.autoscaling.mode "off" -}}
{{- $mostWorkers := ternary .Values.worker.replicas .Values.worker.autoscaling.maxReplicas $fixedWorkers | int -}}
{{- $mostWorkersFrom := ternary "worker.replicas" "worker.autoscaling.maxReplicas" $fixedWorkers -}}
{{- if gt $mostWorkers $shards -}}
{{- fail (printf "%s (%d) is above config.WORK_SHARDS (%d): a worker beyond the shard count owns no shard; lower it, or raise config.WORK_SHARDS after `wagate reshard --to N` has resharded the queues (the upgrade's migration hook refuses a count the queues were not built with)" $mostWorkersFrom $mostWorkers $shards) -}}
{{- end -}}
{{- if gt (int .Values.worker.autoscaling.minReplicas) (int .Values.worker.autoscaling.maxReplicas) -}}
{{- fail "worker.autoscaling.minReplicas is above worker.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if gt (int .Values.ingest.autoscaling.minReplicas) (int .Values.ingest.autoscaling.maxReplicas) -}}
{{- fail "ingest.autoscaling.minReplicas is above ingest.autoscaling.maxReplicas" -}}
{{- end -}}
{{- /* A budget that no eviction can satisfy makes every node drain hang. */ -}}
{{- $pdb := .Values.ingest.podDisruptionBudget -}}
{{- $fewestIngest := ternary .Values.ingest.autoscaling.minReplicas .Values.ingest.replicas .Values.ingest.autoscaling.enabled | int -}}
{{- if and $pdb.enabled (ge (int $pdb.minAvailable) $fewestIngest) -}}
{{- fail (printf "ingest.podDisruptionBudget.minAvailable (%d) must be below the fewest ingest pods (%d), or no ingest pod could ever be evicted and node drains would hang: lower it, run more ingest pods (ingest.autoscaling.minReplicas, or ingest.replicas without the HPA), or set ingest.podDisruptionBudget.enabled=false" (int $pdb.minAvailable) $fewestIngest) -}}
{{- end -}}
{{- /* Both scrape every pod: each series twice, differing only in the service label, and every sum() doubled. */ -}}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled -}}
{{- fail "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled are both true: Prometheus would scrape every pod twice and every sum() in the alerts and the dashboard would double (a worker lag read as half, the invalid-signature floor halved). Enable one of them" -}}
{{- end -}}
{{- /* REPLY_TEXTS_DIR twice in one container: Kubernetes keeps the last, and the mounted texts would be ignored. */ -}}
{{- if .Values.worker.replyTexts -}}
{{- range (concat .Values.extraEnv .Values.worker.extraEnv) -}}
{{- if eq (get . "name") "REPLY_TEXTS_DIR" -}}
{{- fail "REPLY_TEXTS_DIR is in extraEnv or worker.extraEnv while worker.replyTexts mounts the texts and sets it: remove it from extraEnv" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Two NODE_OPTIONS in one container: Kubernetes keeps the last, silently. */ -}}
{{- if .Values.worker.nodeOptions -}}
{{- range (concat .Values.extraEnv .Values.worker.extraEnv) -}}
{{- if eq (get . "name") "NODE_OPTIONS" -}}
{{- fail "NODE_OPTIONS is in extraEnv or worker.extraEnv while worker.nodeOptions sets it for worker pods too: put the worker's options in worker.nodeOptions, or set worker.nodeOptions to \"\" to leave NODE_OPTIONS to extraEnv" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* The chart derives ports, probes, Services, NetworkPolicies, grace periods, the connection
       budget, the autoscaler's write guard and KEDA's queue trigger from these: set through
       extraEnv they would win over the ConfigMap in the pod while the rest still followed config,
       and a pod would be killed mid-drain, probed on a closed port, refused the count it was
       configured to, or KEDA would watch queues no worker reads. */ -}}
{{- $derived := dict "PORT" "config.PORT" "METRICS_PORT" "config.METRICS_PORT" "SHUTDOWN_TIMEOUT_MS" "config.SHUTDOWN_TIMEOUT_MS" "WORKER_DRAIN_TIMEOUT_MS" "worker.drainTimeoutSeconds" "AUTOSCALER_MAX_REPLICAS" "worker.autoscaling.maxReplicas" "AUTOSCALER_MIN_REPLICAS" "worker.autoscaling.minReplicas" "QUEUE_PREFIX" "config.QUEUE_PREFIX" "WORK_SHARDS" "config.WORK_SHARDS" -}}
{{- range (concat .Values.extraEnv .Values.ingest.extraEnv .Values.worker.extraEnv .Values.autoscaler.extraEnv) -}}
{{- $name := get . "name" -}}
{{- if hasKey $derived $name -}}
{{- fail (printf "%s is set in an extraEnv: set %s instead, from which the chart also derives the pods' ports, probes, grace period, connection budget, write guard or KEDA trigger" $name (get $derived $name)) -}}
{{- end -}}
{{- end -}}
{{- /* The autoscaler's identity, lease and target come from its pod and the release: one
       identity in an extraEnv would be every replica's, and each would renew the one lease as
       its own, two leaders scaling at once; another lease, Deployment or namespace would be
       refused by its Role, which names the chart's. */ -}}
{{- range (concat .Values.extraEnv .Values.autoscaler.extraEnv) -}}
{{- $name := get . "name" -}}
{{- if has $name (list "AUTOSCALER_IDENTITY" "AUTOSCALER_LEASE_NAME" "AUTOSCALER_DEPLOYMENT" "AUTOSCALER_NAMESPACE") -}}
{{- fail (printf "%s is set in an extraEnv: the chart sets it from the autoscaler's pod and the release (a shared AUTOSCALER_IDENTITY would make every replica the lease's holder, two leaders at once; another lease, Deployment or namespace is outside its Role); remove it" $name) -}}
{{- end -}}
{{- end -}}
{{- include "wagate.validateSecretFiles" . -}}
{{- include "wagate.validateConfig" . -}}
{{- include "wagate.validateConnectionBudget" . -}}
{{- end -}}

{{/*
Relations between settings that the schema cannot express. Each process checks them at start
and refuses to run; failing the render instead stops a release before any pod crash-loops.
*/}}
{{- define "wagate.validateConfig" -}}
{{- $c := .Values.config -}}
{{- $window := int64 $c.REPLAY_WINDOW_SECONDS -}}
{{- if lt (mul (int64 $c.RETENTION_DAYS) 86400) (add $window 300) -}}
{{- fail (printf "config.RETENTION_DAYS (%d) must keep dedupe keys longer than config.REPLAY_WINDOW_SECONDS (%d s) plus 5 minutes, or replayed messages would pass: raise it to at least %d" (int64 $c.RETENTION_DAYS) $window (add (div (add $window 300 86399) 86400))) -}}
{{- end -}}
{{- if lt (int64 $c.ORDER_RETENTION_DAYS) (int64 $c.RETENTION_DAYS) -}}
{{- fail (printf "config.ORDER_RETENTION_DAYS (%d) is below config.RETENTION_DAYS (%d): an order and its reply removed before their message would let a dead-letter replay of that message make a second order and reply; raise it" (int64 $c.ORDER_RETENTION_DAYS) (int64 $c.RETENTION_DAYS)) -}}
{{- end -}}
{{- if lt (int64 $c.BROKER_MAX_MESSAGE_BYTES) (int64 $c.MAX_BODY_BYTES) -}}
{{- fail (printf "config.MAX_BODY_BYTES (%d) is above config.BROKER_MAX_MESSAGE_BYTES (%d): a message the body carries could be too large for the broker; lower it, or raise both if your RabbitMQ's max_message_size allows" (int64 $c.MAX_BODY_BYTES) (int64 $c.BROKER_MAX_MESSAGE_BYTES)) -}}
{{- end -}}
{{- if lt (int64 $c.MAX_IN_FLIGHT_BYTES) (int64 $c.MAX_BODY_BYTES) -}}
{{- fail (printf "config.MAX_IN_FLIGHT_BYTES (%d) is below config.MAX_BODY_BYTES (%d): the largest body could never be read" (int64 $c.MAX_IN_FLIGHT_BYTES) (int64 $c.MAX_BODY_BYTES)) -}}
{{- end -}}
{{- if eq (int $c.PORT) (int $c.METRICS_PORT) -}}
{{- fail (printf "config.PORT and config.METRICS_PORT are both %d: the ingest serves webhooks and metrics on two ports" (int $c.PORT)) -}}
{{- end -}}
{{- $previous := 0 -}}
{{- range (splitList "," (toString $c.RETRY_DELAYS_MS)) -}}
{{- if or (gt (len .) 10) (gt (int64 .) 2147483647) -}}
{{- fail (printf "config.RETRY_DELAYS_MS (%s): each delay must be at most 2147483647 ms (about 24.8 days; the tiers are recorded as integers)" $c.RETRY_DELAYS_MS) -}}
{{- end -}}
{{- if le (int64 .) (int64 $previous) -}}
{{- fail (printf "config.RETRY_DELAYS_MS (%s): the tiers must ascend, each delay longer than the one before" $c.RETRY_DELAYS_MS) -}}
{{- end -}}
{{- $previous = . -}}
{{- end -}}
{{- $days := int64 .Values.cleanup.days -}}
{{- if and $days (lt (mul $days 86400) (add $window 300)) -}}
{{- fail (printf "cleanup.days (%d) is shorter than config.REPLAY_WINDOW_SECONDS (%d s) plus 5 minutes: the cleanup refuses it every night, since replayed messages would no longer be recognised as duplicates" $days $window) -}}
{{- end -}}
{{- if gt $days (int64 $c.ORDER_RETENTION_DAYS) -}}
{{- fail (printf "cleanup.days (%d) is longer than config.ORDER_RETENTION_DAYS (%d): the cleanup refuses it every night, since messages would outlive their orders and replies; raise config.ORDER_RETENTION_DAYS" $days (int64 $c.ORDER_RETENTION_DAYS)) -}}
{{- end -}}
{{- $a := .Values.autoscaler -}}
{{- if or (ge (int $a.renewDeadlineSeconds) (int $a.leaseDurationSeconds)) (ge (int $a.retryPeriodSeconds) (int $a.renewDeadlineSeconds)) -}}
{{- fail (printf "autoscaler: retryPeriodSeconds (%d) < renewDeadlineSeconds (%d) < leaseDurationSeconds (%d) must hold, or the autoscaler refuses to start" (int $a.retryPeriodSeconds) (int $a.renewDeadlineSeconds) (int $a.leaseDurationSeconds)) -}}
{{- end -}}
{{- end -}}

{{/*
The port of config.OTEL_EXPORTER_OTLP_ENDPOINT, or "" when tracing is off: the URL's own port,
else its scheme's (an OTLP/HTTP endpoint behind a plain https:// name is on 443).
*/}}
{{- define "wagate.otlpPort" -}}
{{- with .Values.config.OTEL_EXPORTER_OTLP_ENDPOINT -}}
{{- $url := urlParse . -}}
{{- /* From the end of host: hostname drops an IPv6 address's brackets, which host keeps. */ -}}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" -}}
{{- if $port -}}{{ $port }}
{{- else if eq $url.scheme "https" -}}443
{{- else if eq $url.scheme "http" -}}80
{{- else -}}{{ fail (printf "config.OTEL_EXPORTER_OTLP_ENDPOINT (%s) must be an http:// or https:// URL, such as http://otel-collector.observability:4318" .) }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Spreads a role's pods across zones and nodes when its topologySpread is on: a preference
(ScheduleAnyway), never a blocker. Workers on one node lose every shard with it; the
autoscaler's leader and standby on one node stop all scaling with it.
*/}}
{{- define "wagate.topologySpread" -}}
{{- $ := index . 0 -}}
{{- $role := index . 1 -}}
{{- $spread := (index $.Values $role).topologySpread -}}
{{- if $spread.enabled }}
topologySpreadConstraints:
  {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: {{ $spread.maxSkew }}
    topologyKey: {{ $key }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "wagate.selectorLabels" (list $ $role) | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{- /* A Prometheus duration as the schema allows it (a whole number of ms, s or m), in milliseconds. */ -}}
{{- define "wagate.durationMs" -}}
{{- $number := regexFind "^[0-9]+" . | int -}}
{{- $unit := trimPrefix (toString $number) . -}}
{{- if eq $unit "m" }}{{ mul $number 60000 }}{{ else if eq $unit "s" }}{{ mul $number 1000 }}{{ else }}{{ $number }}{{ end -}}
{{- end -}}
