#!/usr/bin/env sh
# Re-create the encrypted example files from their DEMO plaintext values.
#
# DEMO ONLY: the values below are fake and public (see README.md). The
# plaintext is piped to `sops encrypt` on stdin and never written to disk;
# `--filename-override` makes sops apply the matching rule of .sops.yaml.
# Run from anywhere: ./examples/config/reencrypt.sh
set -eu
cd "$(dirname "$0")"

enc() {  # enc DEST: encrypt stdin to DEST using the creation rule for DEST
    sops --disable-version-check encrypt --filename-override "$1" > "$1.tmp"
    mv "$1.tmp" "$1"
}

enc keys/openai-prod.yaml <<'YAML'
# yaml-language-server: $schema=../../../schemas/key.schema.json
apiVersion: byok/v1
kind: Key
metadata:
  name: openai-prod
  description: Production OpenAI key for test generation and data synthesis
  labels: {team: qa-platform, env: prod}
spec:
  provider: openai
  apiKey: sk-proj-DEMO-ONLY-openai-prod-0000000000000000
  openai:
    organization: org-DEMOtestautomation
    project: proj_DEMOtestgen
  models: [gpt-4o, gpt-4o-mini]
YAML

enc keys/azure-eastus.yaml <<'YAML'
# yaml-language-server: $schema=../../../schemas/key.schema.json
apiVersion: byok/v1
kind: Key
metadata:
  name: azure-eastus
  description: Azure OpenAI resource in East US for the copilot and search
  labels: {team: qa-platform, env: prod}
spec:
  provider: azure_openai
  apiKey: 00000000demo00000000000000000001
  azure_openai:
    endpoint: https://contoso-eastus.openai.azure.com/
    apiVersion: "2024-10-21"
    deployments:
      gpt4o-prod: {model: gpt-4o}
      embed-prod: {model: text-embedding-3-small}
YAML

enc keys/vllm-internal.yaml <<'YAML'
# yaml-language-server: $schema=../../../schemas/key.schema.json
apiVersion: byok/v1
kind: Key
metadata:
  name: vllm-internal
  description: Self-hosted vLLM for flaky-test triage (data stays in-house)
  labels: {team: ml-infra}
spec:
  provider: openai_compatible
  apiKey: sk-DEMO-ONLY-vllm-internal-000000000000
  openai_compatible:
    baseUrl: https://llm.internal.example.com/v1
  models: [meta-llama/Llama-3.1-8B-Instruct]
YAML

enc secrets/shared.sops.yaml <<'YAML'
# Secrets shared by several Key documents; every value is encrypted.
openai:
  batch: sk-proj-DEMO-ONLY-openai-batch-000000000000000
YAML
