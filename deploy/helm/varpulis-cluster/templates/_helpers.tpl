{{- define "varpulis.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "varpulis.labels" -}}
app.kubernetes.io/name: varpulis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "varpulis.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
