{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "crosswire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of every resource: the release name, plus the chart name
unless the release name already contains it. */}}
{{- define "crosswire.fullname" -}}
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

{{- define "crosswire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crosswire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crosswire.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "crosswire.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "crosswire.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crosswire.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one image of every container: repository@digest when a digest
pins it, else repository:tag (tag defaulting to the appVersion). */}}
{{- define "crosswire.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where `make image` puts the binary. An absolute path: exec in a
FROM-scratch image must not depend on PATH lookup. */}}
{{- define "crosswire.command" -}}
[/usr/local/bin/crosswire]
{{- end }}

{{- define "crosswire.statusSocket" -}}
{{- printf "%s/status.sock" (trimSuffix "/" .Values.hostPaths.runDir) }}
{{- end }}

{{/*
The datapath flags: exactly the flags `crosswire cleanup` takes, so cleanup
mode finds what the agent created and nothing else. The agent gets these
first, then its own flags (crosswire.agentArgs). One YAML list item a line.
*/}}
{{- define "crosswire.datapathArgs" -}}
- --state-dir={{ .Values.hostPaths.stateDir }}
- --socket-dir={{ .Values.hostPaths.wireguardSocketDir }}
- --interface={{ .Values.interface }}
- --mark={{ .Values.mark }}
- --mask={{ .Values.mask }}
- --table={{ .Values.table }}
- --rule-priority={{ .Values.rulePriority }}
- --nft-table={{ .Values.nftTable }}
- --log-level={{ .Values.logLevel }}
{{- end }}

{{- define "crosswire.agentArgs" -}}
- agent
{{ include "crosswire.datapathArgs" . }}
- --listen-port={{ .Values.listenPort }}
- --wg-fwmark={{ .Values.wgFwmark }}
- --mtu={{ .Values.mtu }}
- --strict={{ .Values.strict }}
{{- with .Values.clusterCIDRs }}
- --cluster-cidrs={{ join "," . }}
{{- end }}
- --resync-interval={{ .Values.resyncInterval }}
- --keepalive={{ .Values.keepalive }}
- --on-demand-peers={{ .Values.onDemandPeers }}
- --peer-idle-timeout={{ .Values.peerIdleTimeout }}
- --post-quantum={{ .Values.postQuantum.mode }}
- --pq-port={{ .Values.postQuantum.port }}
- --pq-rotate={{ .Values.postQuantum.rotate }}
- --metrics-port={{ .Values.metrics.port }}
- --metrics-per-peer={{ .Values.metrics.perPeer }}
- --status-socket={{ include "crosswire.statusSocket" . }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Container securityContext of the agent and of cleanup. */}}
{{- define "crosswire.containerSecurityContext" -}}
privileged: {{ .Values.securityContext.privileged }}
allowPrivilegeEscalation: {{ .Values.securityContext.privileged }}
runAsUser: 0
readOnlyRootFilesystem: true
capabilities:
  {{- with .Values.securityContext.capabilities.drop }}
  drop:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext.capabilities.add }}
  add:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Host-path mounts shared by the agent and cleanup. */}}
{{- define "crosswire.volumeMounts" -}}
- name: state
  mountPath: {{ .Values.hostPaths.stateDir }}
- name: wireguard-sockets
  mountPath: {{ .Values.hostPaths.wireguardSocketDir }}
- name: run
  mountPath: {{ .Values.hostPaths.runDir }}
{{- end }}

{{/* Pod spec parts shared by the agent and cleanup modes. */}}
{{- define "crosswire.podCommon" -}}
serviceAccountName: {{ include "crosswire.serviceAccountName" . }}
automountServiceAccountToken: true
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or .Values.tolerateAllTaints .Values.extraTolerations }}
tolerations:
  {{- if .Values.tolerateAllTaints }}
  - operator: Exists
  {{- end }}
  {{- with .Values.extraTolerations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}
