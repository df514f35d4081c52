{{/*
The namespace the code expects its objects in (the sensors' ConfigMap, the brain's Lease).
*/}}
{{- define "homeostat.namespace" -}}
homeostat-system
{{- end }}

{{/*
Refuses a release outside that namespace, instead of installing objects the code will not find.
*/}}
{{- define "homeostat.checkNamespace" -}}
{{- if ne .Release.Namespace (include "homeostat.namespace" .) }}
{{- fail (printf "install homeostat into namespace %s (helm install -n %s --create-namespace): the brain and the sensors look for their ConfigMap and Lease there, not in %q" (include "homeostat.namespace" .) (include "homeostat.namespace" .) .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
Labels of every object; pass a dict with "ctx" (the root context) and "component".
*/}}
{{- define "homeostat.labels" -}}
app.kubernetes.io/name: homeostat
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: homeostat
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end }}

{{/*
Selector labels; same arguments as homeostat.labels.
*/}}
{{- define "homeostat.selector" -}}
app.kubernetes.io/name: homeostat
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "homeostat.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
