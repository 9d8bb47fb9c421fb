{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "presize.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "presize.fullname" -}}
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

{{- define "presize.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "presize.labels" -}}
helm.sh/chart: {{ include "presize.chart" . }}
app.kubernetes.io/name: {{ include "presize.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: presize
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "agent"). */}}
{{- define "presize.selectorLabels" -}}
app.kubernetes.io/name: {{ include "presize.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "presize.componentLabels" -}}
{{ include "presize.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* "<fullname>-<component>", e.g. presize-webhook. */}}
{{- define "presize.componentName" -}}
{{- printf "%s-%s" (include "presize.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ServiceAccount name of a component. */}}
{{- define "presize.serviceAccountName" -}}
{{- $sa := index .ctx.Values .component "serviceAccount" -}}
{{- if $sa.create -}}
{{- default (include "presize.componentName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* "repository:tag" of a component's image (tag defaults to appVersion). */}}
{{- define "presize.image" -}}
{{- $image := index .ctx.Values .component "image" -}}
{{- printf "%s:%s" $image.repository (default .ctx.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "presize.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Names that several templates must agree on. */}}
{{- define "presize.webhookConfigName" -}}
{{- include "presize.fullname" . -}}
{{- end -}}

{{- define "presize.webhookServiceName" -}}
{{- include "presize.componentName" (dict "ctx" . "component" "webhook") -}}
{{- end -}}

{{- define "presize.controllerServiceName" -}}
{{- include "presize.componentName" (dict "ctx" . "component" "controller") -}}
{{- end -}}

{{- define "presize.webhookTLSSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "presize.fullname" .)) .Values.webhook.tls.secretName -}}
{{- end -}}

{{- define "presize.leaseName" -}}
{{- default (include "presize.controllerServiceName" .) .Values.controller.leaderElection.leaseName -}}
{{- end -}}

{{/* Username of the agent's ServiceAccount as a TokenReview reports it:
     system:serviceaccount:<release namespace>:<agent ServiceAccount>. */}}
{{- define "presize.agentIdentity" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "presize.serviceAccountName" (dict "ctx" . "component" "agent")) -}}
{{- end -}}

{{/* Usernames the controller accepts reports from, comma-separated: the chart's agent, then
     controller.agentIdentities. */}}
{{- define "presize.agentIdentities" -}}
{{- $names := prepend (.Values.controller.agentIdentities | default list) (include "presize.agentIdentity" .) -}}
{{- join "," (uniq $names) -}}
{{- end -}}

{{- define "presize.controllerURL" -}}
{{- printf "%s://%s.%s.svc:%d" .Values.controller.scheme (include "presize.controllerServiceName" .) .Release.Namespace (int .Values.controller.port) -}}
{{- end -}}

{{/* The certificate mode in effect: cert-manager, self or helm. */}}
{{- define "presize.tlsMode" -}}
{{- if .Values.certManager.enabled -}}cert-manager{{- else -}}{{ .Values.webhook.tls.mode }}{{- end -}}
{{- end -}}

{{/* DNS names the webhook's serving certificate must carry, as a list. */}}
{{- define "presize.webhookDNSNames" -}}
{{- $svc := include "presize.webhookServiceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) -}}
{{- if .Values.webhook.url -}}
{{- $names = append $names (urlParse .Values.webhook.url).hostname -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}
