{{/* Whether the NetworkPolicies let out the ports of the URLs the pods connect to. */}}

{{/*
The ports a connection URL names, one per host ("postgres://u@a:6432,b/db" gives 6432 and the
default): what the pods connect to, which the NetworkPolicy's egress must allow. Read with
regular expressions, since urlParse fails on a URL of several hosts. Args: list url defaultPort.
*/}}
{{- define "wagate.urlPorts" -}}
{{- $url := index . 0 -}}
{{- $authority := regexReplaceAll "[/?#].*$" (regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" $url "") "" -}}
{{- $hosts := regexReplaceAll "^.*@" $authority "" -}}
{{- $ports := list -}}
{{- range splitList "," $hosts -}}
{{- $port := regexFind ":[0-9]+$" . | trimPrefix ":" -}}
{{- $ports = append $ports (default (toString (index $ 1)) $port) -}}
{{- end -}}
{{- $ports | uniq | join "," -}}
{{- end -}}

{{/*
"true" when a networkPolicy.extraEgress rule lets a TCP port out, else "". A rule that lists no
ports lets out every port, an entry without a port every port of its protocol, and an entry with
an endPort the whole range. Args: list $ port.
*/}}
{{- define "wagate.extraEgressAllows" -}}
{{- $port := int (index . 1) -}}
{{- range (index . 0).Values.networkPolicy.extraEgress -}}
{{- if not .ports -}}true{{- end -}}
{{- range .ports -}}
{{- $inRange := and (le (int .port) $port) (le $port (int (default .port .endPort))) -}}
{{- if and (eq (default "TCP" .protocol) "TCP") (or (not .port) $inRange) -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The chart's own Secret holds the URLs, so their ports are known: a NetworkPolicy that lets out
another port would leave every pod unready (Postgres) or every message in the outbox (RabbitMQ)
with no error the render could give later. A port is let out by the service's own rule or by
an networkPolicy.extraEgress rule that lists it or lists no ports (migrations.databaseUrlFrom's
users open the pods' PgBouncer port there and keep postgres.port for the direct one). With an
existingSecret the URLs are not the chart's to read, and the ports must be set by hand.
*/}}
{{- define "wagate.validateNetworkPolicyPorts" -}}
{{- $np := .Values.networkPolicy -}}
{{- if not .Values.secrets.existingSecret -}}
{{- range $check := list (list "secrets.databaseUrl" .Values.secrets.databaseUrl 5432 "networkPolicy.postgres.port" $np.postgres.port "PgBouncer listens on 6432" "every pod is refused its Postgres") (list "secrets.amqpUrl" .Values.secrets.amqpUrl 5672 "networkPolicy.rabbitmq.port" $np.rabbitmq.port "amqps:// is on 5671 unless the URL names a port" "no message leaves the outbox") -}}
{{- $url := index $check 1 -}}
{{- if $url -}}
{{- $default := ternary 5671 (index $check 2) (hasPrefix "amqps:" $url) -}}
{{- $ports := include "wagate.urlPorts" (list $url $default) -}}
{{- range $port := splitList "," $ports -}}
{{- if not (or (eq $port (toString (index $check 4))) (include "wagate.extraEgressAllows" (list $ $port))) -}}
{{- fail (printf "%s connects to port %s, but %s is %v and no networkPolicy.extraEgress rule lets it out: set %s to it (%s; for a URL of several ports, to one of them, and allow the others in networkPolicy.extraEgress), or %s" (index $check 0) $port (index $check 3) (index $check 4) (index $check 3) (index $check 5) (index $check 6)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The worker sends every reply to config.WHATSAPP_GRAPH_API_URL or config.TWILIO_API_URL (unset,
the provider's own https URL, on 443), and its policy lets out only networkPolicy.providers.ports
and the extraEgress rules: a URL on another port, an egress proxy's say, would have every reply
dropped and dead-lettered. An unset URL is checked only for a provider the release replies
through, as far as the chart can tell (a credential of it in the Secret the chart makes or in
secrets.existingSecretKeys, or for Twilio config.TWILIO_ACCOUNT_SID): a Twilio-only shop's proxy
need not let out Meta's 443. A URL that an extraEnv sets is not the chart's to read.
*/}}
{{- define "wagate.validateProviderPorts" -}}
{{- $providerPorts := .Values.networkPolicy.providers.ports -}}
{{- $allowed := list -}}
{{- range $providerPorts }}{{ $allowed = append $allowed (toString .) }}{{ end -}}
{{- $fromExtraEnv := list -}}
{{- range (concat .Values.extraEnv .Values.worker.extraEnv) }}{{ $fromExtraEnv = append $fromExtraEnv .name }}{{ end -}}
{{- $held := include "wagate.heldSecretKeys" (list . "" "WHATSAPP_APP_SECRET?" "WHATSAPP_ACCESS_TOKEN?" "TWILIO_AUTH_TOKEN?") | fromJsonArray -}}
{{- $repliesThroughMeta := or (has "WHATSAPP_APP_SECRET" $held) (has "WHATSAPP_ACCESS_TOKEN" $held) -}}
{{- $repliesThroughTwilio := or (has "TWILIO_AUTH_TOKEN" $held) (not (empty .Values.config.TWILIO_ACCOUNT_SID)) -}}
{{- range $provider := list (list "WHATSAPP_GRAPH_API_URL" "https://graph.facebook.com" $repliesThroughMeta) (list "TWILIO_API_URL" "https://api.twilio.com" $repliesThroughTwilio) -}}
{{- $name := index $provider 0 -}}
{{- $url := get $.Values.config $name -}}
{{- if and (or $url (index $provider 2)) (not (has $name $fromExtraEnv)) -}}
{{- $port := include "wagate.urlPorts" (list (default (index $provider 1) $url) (ternary 80 443 (hasPrefix "http:" $url))) -}}
{{- if not (or (has $port $allowed) (include "wagate.extraEgressAllows" (list $ $port))) -}}
{{- $setting := ternary (printf "config.%s" $name) (printf "config.%s (unset: %s)" $name (index $provider 1)) (not (empty $url)) -}}
{{- fail (printf "%s connects to port %s, but networkPolicy.providers.ports is %v and no networkPolicy.extraEgress rule lets it out: add %s to networkPolicy.providers.ports (and the address to networkPolicy.providers.cidrs) or point config.%s at a port it lets out, or every reply sent there is dropped and ends in the dead-letter queue" $setting $port $providerPorts $port $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the block (list inner outer), IPv4 or IPv6, lies inside the other, or is the same
block: its prefix is no shorter, and the leading bits of the other's prefix are the same.
*/}}
{{- define "wagate.cidrWithin" -}}
{{- $inner := splitList "/" (index . 0) -}}
{{- $outer := splitList "/" (index . 1) -}}
{{- $outerLength := atoi (index $outer 1) -}}
{{- $innerBits := include "wagate.addressBits" (index $inner 0) -}}
{{- $outerBits := include "wagate.addressBits" (index $outer 0) -}}
{{- if and (ge (atoi (index $inner 1)) $outerLength) (eq (substr 0 $outerLength $innerBits) (substr 0 $outerLength $outerBits)) -}}
true
{{- end -}}
{{- end -}}

{{- /* An address as its bits, 32 of IPv4 or 128 of IPv6 (a "::" stands for the groups of zeros it leaves out). */ -}}
{{- define "wagate.addressBits" -}}
{{- if contains ":" . -}}
{{- $halves := splitList "::" . -}}
{{- $head := list -}}
{{- if ne (index $halves 0) "" }}{{ $head = splitList ":" (index $halves 0) }}{{ end -}}
{{- $tail := list -}}
{{- if and (eq (len $halves) 2) (ne (index $halves 1) "") }}{{ $tail = splitList ":" (index $halves 1) }}{{ end -}}
{{- /* A dotted IPv4 address at the end (::ffff:10.0.0.1) stands for two groups. */ -}}
{{- $named := 0 -}}
{{- range concat $head $tail }}{{ $named = add $named (ternary 2 1 (contains "." .)) }}{{ end -}}
{{- $groups := $head -}}
{{- range until (sub 8 $named | int) }}{{ $groups = append $groups "0" }}{{ end -}}
{{- $groups = concat $groups $tail -}}
{{- $nibbles := dict "0" "0000" "1" "0001" "2" "0010" "3" "0011" "4" "0100" "5" "0101" "6" "0110" "7" "0111" "8" "1000" "9" "1001" "a" "1010" "b" "1011" "c" "1100" "d" "1101" "e" "1110" "f" "1111" -}}
{{- range $groups -}}
{{- if contains "." . }}{{ range splitList "." . }}{{ printf "%08b" (atoi .) }}{{ end -}}
{{- else if or (gt (len .) 4) (not (regexMatch "^[0-9a-fA-F]+$" .)) }}{{ fail (printf "%s is not an IPv6 address: each group between colons is 1 to 4 hex digits" $) -}}
{{- else }}{{ range splitList "" (printf "%s%s" (repeat (sub 4 (len .) | int) "0") (lower .)) }}{{ index $nibbles . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- range splitList "." . }}{{ printf "%08b" (atoi .) }}{{ end -}}
{{- end -}}
{{- end -}}
