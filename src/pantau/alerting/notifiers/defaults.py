# ruff: noqa: E501
"""Default notification templates, named as in Alertmanager's `default.tmpl` so a user's
`templates:` files can override any of them (`{{ define "slack.default.title" }}...`)."""

DEFAULT_TEMPLATES = r'''
{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }}{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}
{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ if .AckURL }}Acknowledge: {{ .AckURL }}
{{ end }}{{ if .ResolveURL }}Resolve: {{ .ResolveURL }}
{{ end }}
{{ end }}{{ end }}

{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}pantau{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.text" }}{{ range .Alerts }}*{{ .Status | toUpper }}* {{ .Labels.alertname }}{{ if .Annotations.summary }}: {{ .Annotations.summary }}{{ end }}
{{ if .Annotations.description }}{{ .Annotations.description }}
{{ end }}{{ if .AckURL }}<{{ .AckURL }}|Acknowledge> · <{{ .ResolveURL }}|Resolve>
{{ end }}{{ end }}{{ end }}

{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}pantau{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "email.default.text" }}{{ template "__subject" . }}
{{ if gt (len .Alerts.Firing) 0 }}
Firing:
{{ template "__text_alert_list" .Alerts.Firing }}{{ end }}{{ if gt (len .Alerts.Resolved) 0 }}
Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}{{ end }}{{ end }}
{{ define "email.default.html" }}<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>{{ template "__subject" . }}</title></head>
<body style="font-family: sans-serif">
<h2 style="color: {{ if eq .Status "firing" }}#d9534f{{ else }}#5cb85c{{ end }}">{{ .Alerts | len }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value | html }} {{ end }}</h2>
{{ if gt (len .Alerts.Firing) 0 }}<h3>[{{ .Alerts.Firing | len }}] Firing</h3>
{{ range .Alerts.Firing }}<div><b>{{ .Labels.alertname | html }}</b><ul>
{{ range .Labels.SortedPairs }}<li>{{ .Name | html }} = {{ .Value | html }}</li>
{{ end }}</ul>{{ range .Annotations.SortedPairs }}<p>{{ .Name | html }}: {{ .Value | html }}</p>{{ end }}
<p><a href="{{ .GeneratorURL }}">Source</a>{{ if .AckURL }} · <a href="{{ .AckURL }}">Acknowledge</a> · <a href="{{ .ResolveURL }}">Resolve</a>{{ end }}</p></div>
{{ end }}{{ end }}{{ if gt (len .Alerts.Resolved) 0 }}<h3>[{{ .Alerts.Resolved | len }}] Resolved</h3>
{{ range .Alerts.Resolved }}<div><b>{{ .Labels.alertname | html }}</b><ul>
{{ range .Labels.SortedPairs }}<li>{{ .Name | html }} = {{ .Value | html }}</li>
{{ end }}</ul></div>
{{ end }}{{ end }}<p><a href="{{ template "__alertmanagerURL" . }}">View in pantau</a></p>
</body></html>{{ end }}
'''
