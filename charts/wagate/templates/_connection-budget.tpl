{{/*
The Postgres connections a release may hold at once. Each process opens at most its pool, and
Postgres refuses connections beyond max_connections: a release sized past it runs fine at its
usual size, then, at a traffic peak when the autoscalers add pods, the new pods cannot connect.
NOTES prints the worst case, and wagate.validateConnectionBudget refuses a render above
database.maxConnections.
*/}}

{{/*
A Deployment's rollingUpdate.maxSurge: its template and the budget both read it here, so they
cannot drift. The autoscaler's Deployment sets no strategy and gets Kubernetes' default, 25%.
*/}}
{{- define "wagate.maxSurge" -}}
{{- get (dict "ingest" "25%" "worker" "1" "autoscaler" "25%") . -}}
{{- end -}}

{{/*
The pool of one process of a role, as digits, or "" when an extraEnv sets DB_POOL_MAX through
valueFrom, which the chart cannot read. Call with (list $ "worker"). The role's extraEnv comes
after the global one in the container and Kubernetes keeps the last of two same-named
variables; an empty value counts as unset in wagate, which then takes its own default of 10.
*/}}
{{- define "wagate.poolSize" -}}
{{- $root := index . 0 -}}
{{- $pool := toString (int64 $root.Values.config.DB_POOL_MAX) -}}
{{- range concat $root.Values.extraEnv (index $root.Values (index . 1) "extraEnv") -}}
{{- if eq (get . "name") "DB_POOL_MAX" -}}
{{- $pool = ternary "" (toString (default "10" (get . "value")) | trim) (hasKey . "valueFrom") -}}
{{- end -}}
{{- end -}}
{{- ternary $pool "" (regexMatch "^[0-9]+$" $pool) -}}
{{- end -}}

{{/*
One role's share as JSON. Call with (list name pods podsFrom maxSurge pool poolFrom): pods is its
most pods and podsFrom the value that sets them, podsFrom and maxSurge "" for a Job (one pod at a
time). Kubernetes rounds a percentage maxSurge up. "connections" is -1 when the pool is unknown.
*/}}
{{- define "wagate.roleConnections" -}}
{{- $pods := int (index . 1) -}}
{{- $maxSurge := toString (index . 3) -}}
{{- $surge := 0 -}}
{{- if hasSuffix "%" $maxSurge -}}
{{- $surge = div (add (mul $pods (trimSuffix "%" $maxSurge | int)) 99) 100 -}}
{{- else if $maxSurge -}}
{{- $surge = int $maxSurge -}}
{{- end -}}
{{- $pool := toString (index . 4) -}}
{{- $connections := ternary (mul (add $pods $surge) (int $pool)) -1 (ne $pool "") -}}
{{- dict "name" (index . 0) "pods" $pods "podsFrom" (index . 2) "maxSurge" $maxSurge "surge" $surge "pool" $pool "poolFrom" (index . 5) "connections" $connections | toJson -}}
{{- end -}}

{{/*
The worst case as JSON: {"roles": [...wagate.roleConnections], "total": N, "unknown": [names]}.
Each role at its most pods and in a rolling update at once, with the migrate hook and a cleanup
run beside them: unlikely together, but nothing stops it, and a refused connection at that
moment fails webhooks. wagate's own commands fix the pools of the autoscaler (2), migrate (1) and
cleanup (2) whatever DB_POOL_MAX says (src/commands/*.ts).
*/}}
{{- define "wagate.connectionBudget" -}}
{{- $v := .Values -}}
{{- $roles := list -}}
{{- $ingestPods := ternary $v.ingest.autoscaling.maxReplicas $v.ingest.replicas $v.ingest.autoscaling.enabled -}}
{{- $ingestFrom := ternary "ingest.autoscaling.maxReplicas" "ingest.replicas" $v.ingest.autoscaling.enabled -}}
{{- $roles = append $roles (include "wagate.roleConnections" (list "ingest" $ingestPods $ingestFrom (include "wagate.maxSurge" "ingest") (include "wagate.poolSize" (list . "ingest")) "DB_POOL_MAX") | fromJson) -}}
{{- $workerScaled := has $v.worker.autoscaling.mode (list "builtin" "keda" "hpa") -}}
{{- $workerPods := ternary $v.worker.autoscaling.maxReplicas $v.worker.replicas $workerScaled -}}
{{- $workerFrom := ternary "worker.autoscaling.maxReplicas" "worker.replicas" $workerScaled -}}
{{- $roles = append $roles (include "wagate.roleConnections" (list "worker" $workerPods $workerFrom (include "wagate.maxSurge" "worker") (include "wagate.poolSize" (list . "worker")) "DB_POOL_MAX") | fromJson) -}}
{{- if eq $v.worker.autoscaling.mode "builtin" -}}
{{- $roles = append $roles (include "wagate.roleConnections" (list "autoscaler" $v.autoscaler.replicas "autoscaler.replicas" (include "wagate.maxSurge" "autoscaler") 2 "its own pool") | fromJson) -}}
{{- end -}}
{{- if $v.migrations.enabled -}}
{{- $roles = append $roles (include "wagate.roleConnections" (list "migrate Job" 1 "" "" 1 "its own pool") | fromJson) -}}
{{- end -}}
{{- if $v.cleanup.enabled -}}
{{- $roles = append $roles (include "wagate.roleConnections" (list "cleanup CronJob" 1 "" "" 2 "its own pool") | fromJson) -}}
{{- end -}}
{{- $total := 0 -}}
{{- $unknown := list -}}
{{- range $roles -}}
{{- if lt (int .connections) 0 -}}
{{- $unknown = append $unknown .name -}}
{{- else -}}
{{- $total = add $total (int .connections) -}}
{{- end -}}
{{- end -}}
{{- dict "roles" $roles "total" $total "unknown" $unknown | toJson -}}
{{- end -}}

{{/*
How the worst case adds up, one "- role: …" line per role, for NOTES and the refusal, e.g.
"- ingest: 13 pods (10 at ingest.autoscaling.maxReplicas, + 3 in a rolling update at maxSurge 25%) × 10 connections (DB_POOL_MAX) = 130".
*/}}
{{- define "wagate.connectionBudgetLines" -}}
{{- range (include "wagate.connectionBudget" . | fromJson).roles }}
{{- $pods := add .pods .surge }}
- {{ .name }}: {{ $pods }} pod{{ if ne $pods 1 }}s{{ end }}
{{- if .podsFrom }} ({{ int .pods }} at {{ .podsFrom }}, + {{ int .surge }} in a rolling update at maxSurge {{ .maxSurge }}){{ end }}
{{- if .pool }} × {{ .pool }} connection{{ if ne .pool "1" }}s{{ end }} ({{ .poolFrom }}) = {{ int .connections }}
{{- else }} × DB_POOL_MAX set through valueFrom, which the chart cannot read: not counted
{{- end }}
{{- end }}
{{- end -}}

{{/* Fails the render when the worst case is above database.maxConnections (0: not declared). */}}
{{- define "wagate.validateConnectionBudget" -}}
{{- $declared := int .Values.database.maxConnections -}}
{{- if $declared -}}
{{- $budget := include "wagate.connectionBudget" . | fromJson -}}
{{- $lines := include "wagate.connectionBudgetLines" . | replace "\n" "\n  " -}}
{{- if $budget.unknown -}}
{{- fail (printf "database.maxConnections is declared, but DB_POOL_MAX of %s is set through valueFrom in an extraEnv, which the chart cannot read to count connections: give it as a value" (join ", " $budget.unknown)) -}}
{{- end -}}
{{- if gt (int $budget.total) $declared -}}
{{- fail (printf "the release may open %d Postgres connections at once, more than database.maxConnections (%d); new pods could not connect at a traffic peak. The worst case, each role at its most pods during a rolling update:%s\nTo fit, do one or more of: lower ingest.autoscaling.maxReplicas or worker.autoscaling.maxReplicas (ingest.replicas or worker.replicas when not autoscaled); lower DB_POOL_MAX (at least 2; group commit lets a few connections carry thousands of requests a second) for one role through ingest.extraEnv or worker.extraEnv, or for both through config.DB_POOL_MAX; raise max_connections in Postgres and database.maxConnections with it; or put PgBouncer in transaction mode in front and declare its max_client_conn as database.maxConnections" (int $budget.total) $declared $lines) -}}
{{- end -}}
{{- end -}}
{{- end -}}
