{{/* Names and labels. */}}
{{- define "trdscreen.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trdscreen.fullname" -}}
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

{{- define "trdscreen.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trdscreen.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trdscreen.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "trdscreen.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "trdscreen.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trdscreen.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trdscreen.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where the pods find their files. */}}
{{- define "trdscreen.settingsFile" -}}/etc/trdscreen/config/settings.toml{{- end }}
{{- define "trdscreen.knowledgeDir" -}}/etc/trdscreen/knowledge{{- end }}
{{- define "trdscreen.tlsDir" -}}/etc/trdscreen/tls{{- end }}
{{- define "trdscreen.smartDir" -}}/etc/trdscreen/smart{{- end }}
{{- define "trdscreen.smartNextDir" -}}/etc/trdscreen/smart-next{{- end }}
{{- define "trdscreen.clientCADir" -}}/etc/trdscreen/client-ca{{- end }}
{{- define "trdscreen.viewLinkDir" -}}/etc/trdscreen/view-link{{- end }}
{{- define "trdscreen.bearerDir" -}}/etc/trdscreen/bearer{{- end }}
{{- /* The export volume, and the export's directory on it (a volume's root may hold lost+found). */}}
{{- define "trdscreen.exportVolume" -}}/var/lib/trdscreen/exports{{- end }}
{{- define "trdscreen.exportDir" -}}/var/lib/trdscreen/exports/nightly{{- end }}
{{- define "trdscreen.workDir" -}}/var/lib/trdscreen/work{{- end }}

{{/* Refuses settings that cannot work, with the value to fix named. */}}
{{- define "trdscreen.validate" -}}
{{- $cds := .Values.config.cds }}
{{- if and $cds.enabled (not $cds.service_url) }}
{{- fail "config.cds.enabled needs config.cds.service_url, the https URL the EHR calls, ending in /cds-services" }}
{{- end }}
{{- if and $cds.enabled (not $cds.clients) }}
{{- fail "config.cds.enabled needs at least one trusted client in config.cds.clients" }}
{{- end }}
{{- if and .Values.viewLink.secretName (not $cds.enabled) }}
{{- fail "viewLink.secretName signs the clinician view's links: it needs config.cds.enabled" }}
{{- end }}
{{- $mode := .Values.config.fhir.auth.mode }}
{{- if and (eq $mode "smart") (not .Values.fhirCredentials.smartPrivateKey.secretName) }}
{{- fail "config.fhir.auth.mode smart needs fhirCredentials.smartPrivateKey.secretName" }}
{{- end }}
{{- if and (eq $mode "smart") (not .Values.config.fhir.auth.client_id) }}
{{- fail "config.fhir.auth.mode smart needs config.fhir.auth.client_id" }}
{{- end }}
{{- if and (eq $mode "bearer") (not .Values.fhirCredentials.bearerToken.secretName) }}
{{- fail "config.fhir.auth.mode bearer needs fhirCredentials.bearerToken.secretName" }}
{{- end }}
{{- $callers := .Values.config.callers }}
{{- if not (has $callers.authentication (list "none" "jwt" "mtls")) }}
{{- fail "config.callers.authentication must be none, jwt or mtls" }}
{{- end }}
{{- if and (eq $callers.authentication "mtls") (not .Values.tls.clientCA.secretName) }}
{{- fail "config.callers.authentication mtls needs tls.clientCA.secretName: the CA bundle client certificates are verified against" }}
{{- end }}
{{- if and (eq $callers.authentication "mtls") (not $callers.mtls.clients) }}
{{- fail "config.callers.authentication mtls needs config.callers.mtls.clients: without them every call is refused" }}
{{- end }}
{{- if and .Values.tls.clientCA.secretName (not .Values.tls.enabled) }}
{{- fail "tls.clientCA.secretName (mutual TLS) needs tls.enabled" }}
{{- end }}
{{- if and .Values.fhirCredentials.smartNextPrivateKey.secretName (ne $mode "smart") }}
{{- fail "fhirCredentials.smartNextPrivateKey needs config.fhir.auth.mode smart" }}
{{- end }}
{{- if and .Values.config.fhir.auth.next_key_id (not .Values.fhirCredentials.smartNextPrivateKey.secretName) }}
{{- fail "config.fhir.auth.next_key_id needs fhirCredentials.smartNextPrivateKey.secretName" }}
{{- end }}
{{- if and .Values.fhirCredentials.smartNextPrivateKey.secretName (eq .Values.fhirCredentials.smartNextPrivateKey.secretName .Values.fhirCredentials.smartPrivateKey.secretName) (eq .Values.fhirCredentials.smartNextPrivateKey.key .Values.fhirCredentials.smartPrivateKey.key) }}
{{- fail "fhirCredentials.smartNextPrivateKey names the same Secret key as fhirCredentials.smartPrivateKey" }}
{{- end }}
{{- if and .Values.jwksIngress.enabled (ne $mode "smart") }}
{{- fail "jwksIngress.enabled needs config.fhir.auth.mode smart: only the SMART client has keys to publish" }}
{{- end }}
{{- if and .Values.jwksIngress.enabled (not .Values.jwksIngress.host) }}
{{- fail "jwksIngress.enabled needs jwksIngress.host" }}
{{- end }}
{{- if and (eq $callers.authentication "jwt") (not (and $callers.jwt.issuer $callers.jwt.audiences)) }}
{{- fail "config.callers.authentication jwt needs config.callers.jwt.issuer and config.callers.jwt.audiences" }}
{{- end }}
{{- if and (eq $callers.authentication "jwt") (not (hasPrefix "https://" $callers.jwt.issuer)) }}
{{- fail "config.callers.jwt.issuer must be an https URL" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName" }}
{{- end }}
{{- if and .Values.batch.enabled (not .Values.config.fhir.base_url) }}
{{- fail "batch.enabled needs config.fhir.base_url" }}
{{- end }}
{{- if and .Values.batch.enabled (eq .Values.batch.source "group") (not .Values.batch.groupId) }}
{{- fail "batch.source group needs batch.groupId" }}
{{- end }}
{{- if and .Values.batch.enabled (eq .Values.batch.source "bulk") (not .Values.batch.export.persistentVolumeClaim) }}
{{- fail "batch.source bulk needs batch.export.persistentVolumeClaim: a ReadWriteMany volume the export writes and every shard reads" }}
{{- end }}
{{- end }}

{{/* Pod-level security context shared by the service and the job. */}}
{{- define "trdscreen.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ int64 .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ int64 .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "trdscreen.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ int64 .Values.podSecurityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Volumes (and their mounts) shared by the service and the job: settings, knowledge, secrets, /tmp. */}}
{{- define "trdscreen.volumes" -}}
- name: config
  configMap:
    name: {{ include "trdscreen.fullname" . }}
{{- if .Values.viewLink.secretName }}
- name: view-link
  secret:
    secretName: {{ .Values.viewLink.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.viewLink.key }}
        path: secret
{{- end }}
{{- if .Values.config.audit.base_url }}
- name: audit-spill
  {{- if .Values.audit.spillClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.audit.spillClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.audit.spillSizeLimit }}
  {{- end }}
{{- end }}
{{- if .Values.knowledgeOverrides }}
- name: knowledge
  configMap:
    name: {{ include "trdscreen.fullname" . }}-knowledge
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if eq .Values.config.fhir.auth.mode "smart" }}
- name: smart
  secret:
    secretName: {{ .Values.fhirCredentials.smartPrivateKey.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.fhirCredentials.smartPrivateKey.key }}
        path: private-key.pem
{{- end }}
{{- if .Values.fhirCredentials.smartNextPrivateKey.secretName }}
- name: smart-next
  secret:
    secretName: {{ .Values.fhirCredentials.smartNextPrivateKey.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.fhirCredentials.smartNextPrivateKey.key }}
        path: private-key.pem
{{- end }}
{{- if .Values.tls.clientCA.secretName }}
- name: client-ca
  secret:
    secretName: {{ .Values.tls.clientCA.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.tls.clientCA.key }}
        path: ca.crt
{{- end }}
{{- if eq .Values.config.fhir.auth.mode "bearer" }}
- name: bearer
  secret:
    secretName: {{ .Values.fhirCredentials.bearerToken.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.fhirCredentials.bearerToken.key }}
        path: token
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "trdscreen.volumeMounts" -}}
- name: config
  mountPath: /etc/trdscreen/config
  readOnly: true
{{- if .Values.viewLink.secretName }}
- name: view-link
  mountPath: {{ include "trdscreen.viewLinkDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.config.audit.base_url }}
- name: audit-spill
  mountPath: {{ include "trdscreen.auditDir" . }}
{{- end }}
{{- if .Values.knowledgeOverrides }}
- name: knowledge
  mountPath: {{ include "trdscreen.knowledgeDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "trdscreen.tlsDir" . }}
  readOnly: true
{{- end }}
{{- if eq .Values.config.fhir.auth.mode "smart" }}
- name: smart
  mountPath: {{ include "trdscreen.smartDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.fhirCredentials.smartNextPrivateKey.secretName }}
- name: smart-next
  mountPath: {{ include "trdscreen.smartNextDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.tls.clientCA.secretName }}
- name: client-ca
  mountPath: {{ include "trdscreen.clientCADir" . }}
  readOnly: true
{{- end }}
{{- if eq .Values.config.fhir.auth.mode "bearer" }}
- name: bearer
  mountPath: {{ include "trdscreen.bearerDir" . }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Rolls the pods when the settings or knowledge change. */}}
{{- define "trdscreen.configChecksum" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/* The audit spill volume's mount; each pod or shard spills into a directory of its own in it. */}}
{{- define "trdscreen.auditDir" -}}
/var/lib/trdscreen/audit
{{- end }}
