{{/*
How a role gets the Secret keys it reads: as variables (secretKeyRef), or with secrets.asFiles as
files of a read-only secret volume, each named by NAME_FILE (wagate reads NAME_FILE for every
secret, and refuses NAME and NAME_FILE together). The helpers that take keys are called with
(list $ secretName key...); a key ending in "?" is optional (a provider the shop does not use),
and one ending in "!" is passed only when the Secret surely holds it, also as a variable: a
setting an extraEnv may give instead (the collector's headers, from a Secret of its own).
Each role gets only the keys it reads.
*/}}

{{/*
Whether ingest pods get TWILIO_AUTH_TOKEN: "true" or "". Unset counts as the default, true, so
that `helm upgrade --reuse-values` from a release before the value keeps it.
*/}}
{{- define "wagate.ingestTwilioAuthToken" -}}
{{- ternary "true" "" (dig "twilioAuthToken" true .Values.ingest | toString | eq "true") -}}
{{- end -}}

{{/*
The secrets an extraEnv gives, as a JSON list of NAMEs (NAME_FILE counted as NAME): a file that a
secrets injector writes, say. A render check that a key is in the Secret leaves these out.
*/}}
{{- define "wagate.extraEnvSecrets" -}}
{{- $names := list -}}
{{- range (concat .Values.extraEnv .Values.ingest.extraEnv .Values.worker.extraEnv .Values.autoscaler.extraEnv) -}}
{{- $names = append $names (trimSuffix "_FILE" .name) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Where secrets.asFiles mounts a role's keys, one file per key. */}}
{{- define "wagate.secretFilesDir" -}}
/etc/wagate/secrets
{{- end -}}

{{/*
Of the keys given, those the Secret surely holds, as a JSON list: the required ones, and the
optional ones the chart knows of. It knows the Secret it makes (the values that are set); an
existingSecret it cannot read, so secrets.existingSecretKeys says which optional keys that holds.
As files only these are passed. A NAME_FILE whose file is missing stops wagate at start, and a
volume item whose key is missing from the Secret fails the mount (unless marked optional, which
leaves the file out): an optional key is passed only when it is surely there. A required key
missing from the Secret stops the pod, as its secretKeyRef does.
*/}}
{{- define "wagate.heldSecretKeys" -}}
{{- $root := index . 0 -}}
{{- $s := $root.Values.secrets -}}
{{- $valueOf := dict "WHATSAPP_VERIFY_TOKEN" "whatsappVerifyToken" "WHATSAPP_APP_SECRET" "whatsappAppSecret" "WHATSAPP_ACCESS_TOKEN" "whatsappAccessToken" "TWILIO_AUTH_TOKEN" "twilioAuthToken" "TWILIO_WEBHOOK_SHARED_KEY" "twilioWebhookSharedKey" "ADMIN_TOKEN" "adminToken" "OTEL_EXPORTER_OTLP_HEADERS" "otlpHeaders" -}}
{{- $keys := list -}}
{{- range $key := slice . 2 -}}
{{- $name := trimSuffix "!" (trimSuffix "?" $key) -}}
{{- $held := ternary (has $name $s.existingSecretKeys) (not (empty (get $s (get $valueOf $name)))) (not (empty $s.existingSecret)) -}}
{{- if or (not (or (hasSuffix "?" $key) (hasSuffix "!" $key))) $held -}}
{{- $keys = append $keys $name -}}
{{- end -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{/* The env entries of a role's keys: NAME from the Secret, or with secrets.asFiles NAME_FILE. */}}
{{- define "wagate.secretEnv" -}}
{{- include "wagate.secretEnvEntries" . | trim -}}
{{- end -}}

{{- define "wagate.secretEnvEntries" -}}
{{- $root := index . 0 -}}
{{- if $root.Values.secrets.asFiles -}}
{{- range $name := include "wagate.heldSecretKeys" . | fromJsonArray }}
- name: {{ $name }}_FILE
  value: {{ printf "%s/%s" (include "wagate.secretFilesDir" $root) $name | quote }}
{{- end }}
{{- else -}}
{{- $held := include "wagate.heldSecretKeys" . | fromJsonArray -}}
{{- range $key := slice . 2 }}
{{- $name := trimSuffix "!" (trimSuffix "?" $key) }}
{{- if or (not (hasSuffix "!" $key)) (has $name $held) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ index $ 1 }}
      key: {{ $name }}
      {{- if hasSuffix "?" $key }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The pod's volume of its keys, with secrets.asFiles; nothing otherwise. */}}
{{- define "wagate.secretVolume" -}}
{{- if (index . 0).Values.secrets.asFiles -}}
- name: secrets
  secret:
    secretName: {{ index . 1 }}
    # 0440: the files belong to root and the pods' fsGroup (podSecurityContext.fsGroup), so the
    # process reads them through its group and nothing can write them.
    defaultMode: 288
    items:
      {{- range $name := include "wagate.heldSecretKeys" . | fromJsonArray }}
      - key: {{ $name }}
        path: {{ $name }}
      {{- end }}
{{- end -}}
{{- end -}}

{{/* The container's mount of that volume, with secrets.asFiles; nothing otherwise. Call with $. */}}
{{- define "wagate.secretMount" -}}
{{- if .Values.secrets.asFiles -}}
- name: secrets
  mountPath: {{ include "wagate.secretFilesDir" . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
Settings that would make every process refuse to start: a secret both as NAME and as NAME_FILE,
one from the chart and one from an extraEnv, or files the process cannot read. Only the keys the
chart surely passes count: an optional key missing from the Secret may come from elsewhere, such
as a file a secrets injector writes and an extraEnv names.
*/}}
{{- define "wagate.validateSecretFiles" -}}
{{- $s := .Values.secrets -}}
{{- $passed := include "wagate.heldSecretKeys" (list . "" "DATABASE_URL" "AMQP_URL" "WHATSAPP_VERIFY_TOKEN?" "WHATSAPP_APP_SECRET?" "WHATSAPP_ACCESS_TOKEN?" "TWILIO_AUTH_TOKEN?" "TWILIO_WEBHOOK_SHARED_KEY?" "ADMIN_TOKEN?" "OTEL_EXPORTER_OTLP_HEADERS!") | fromJsonArray -}}
{{- range (concat .Values.extraEnv .Values.ingest.extraEnv .Values.worker.extraEnv .Values.autoscaler.extraEnv) -}}
{{- $name := trimSuffix "_FILE" .name -}}
{{- if and (eq .name "OTEL_EXPORTER_OTLP_HEADERS") (has .name $passed) -}}
{{- fail "OTEL_EXPORTER_OTLP_HEADERS is set in an extraEnv while the chart passes it from the Secret (secrets.otlpHeaders, or secrets.existingSecretKeys): set it in one place" -}}
{{- else if and $s.asFiles (has .name $passed) -}}
{{- fail (printf "%s is set in an extraEnv while secrets.asFiles passes %s_FILE from the Secret, and wagate refuses both at once: remove it from the extraEnv" .name .name) -}}
{{- else if and $s.asFiles (hasSuffix "_FILE" .name) (has $name $passed) -}}
{{- fail (printf "%s is set in an extraEnv while secrets.asFiles sets it to the Secret's mounted key, and a pod would get it twice: remove it from the extraEnv (to take %s from a file of your own, leave it out of the chart's Secret, where it is optional: its value unset, and not listed in secrets.existingSecretKeys)" .name $name) -}}
{{- else if and (not $s.asFiles) (hasSuffix "_FILE" .name) (has $name $passed) -}}
{{- fail (printf "%s is set in an extraEnv while the chart passes %s from the Secret as a variable, and wagate refuses both at once: remove it from the extraEnv (to take %s from a file of your own, leave it out of the chart's Secret, where it is optional: its value unset, and not listed in secrets.existingSecretKeys)" .name $name $name) -}}
{{- end -}}
{{- end -}}
{{- $fromExtraEnv := include "wagate.extraEnvSecrets" . | fromJsonArray -}}
{{- $listed := concat $s.existingSecretKeys $fromExtraEnv -}}
{{- /* Twilio configured where the chart cannot see its value (a Secret of your own, an extraEnv): what the values check for secrets.twilioAuthToken holds for it too. */ -}}
{{- if and (or (has "TWILIO_AUTH_TOKEN" $listed) (has "TWILIO_WEBHOOK_SHARED_KEY" $listed)) (not .Values.config.PUBLIC_BASE_URL) -}}
{{- fail "config.PUBLIC_BASE_URL is required when Twilio is configured (TWILIO_AUTH_TOKEN or TWILIO_WEBHOOK_SHARED_KEY in secrets.existingSecretKeys or an extraEnv): Twilio signs the URL it calls, and wagate refuses Twilio in production without it" -}}
{{- end -}}
{{- if and (has "TWILIO_AUTH_TOKEN" $listed) (not .Values.config.TWILIO_ACCOUNT_SID) -}}
{{- fail "config.TWILIO_ACCOUNT_SID is required when TWILIO_AUTH_TOKEN is in secrets.existingSecretKeys or an extraEnv: the worker sends Twilio replies with it, and refuses to start without it" -}}
{{- end -}}
{{- if $s.asFiles -}}
{{- if and $s.existingSecret (has "WHATSAPP_APP_SECRET" $s.existingSecretKeys) (not (has "WHATSAPP_ACCESS_TOKEN" $listed)) -}}
{{- fail "secrets.existingSecretKeys lists WHATSAPP_APP_SECRET without WHATSAPP_ACCESS_TOKEN: with secrets.asFiles only the keys listed are mounted, and the worker sends Meta replies with the access token (it would dead-letter every one)" -}}
{{- end -}}
{{- if and $s.existingSecret (not (include "wagate.ingestTwilioAuthToken" .)) (not (has "TWILIO_WEBHOOK_SHARED_KEY" $listed)) -}}
{{- fail "secrets.existingSecretKeys must list TWILIO_WEBHOOK_SHARED_KEY with ingest.twilioAuthToken false: without the auth token the ingest checks Twilio's webhooks against the shared key alone, and without one refuses them all" -}}
{{- end -}}
{{- if and $s.existingSecret (has "TWILIO_WEBHOOK_SHARED_KEY" $s.existingSecretKeys) (not (has "TWILIO_AUTH_TOKEN" $listed)) -}}
{{- fail "secrets.existingSecretKeys lists TWILIO_WEBHOOK_SHARED_KEY without TWILIO_AUTH_TOKEN: with secrets.asFiles only the keys listed are mounted, the worker sends Twilio replies with the auth token, and a shared key only signs webhooks" -}}
{{- end -}}
{{- if and $s.existingSecret (not (or (has "WHATSAPP_APP_SECRET" $s.existingSecretKeys) (has "TWILIO_AUTH_TOKEN" $s.existingSecretKeys))) -}}
{{- fail "secrets.existingSecretKeys must list WHATSAPP_APP_SECRET or TWILIO_AUTH_TOKEN with secrets.asFiles and secrets.existingSecret: the chart cannot read your Secret, so it mounts only the optional keys listed there, and without a provider secret every webhook is refused. List every optional key your Secret holds" -}}
{{- end -}}
{{- if not .Values.podSecurityContext.fsGroup -}}
{{- fail "secrets.asFiles needs podSecurityContext.fsGroup: the mounted files belong to root and that group (mode 0440), and a process outside it could not read them" -}}
{{- end -}}
{{- end -}}
{{- end -}}
