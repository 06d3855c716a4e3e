#!/usr/bin/env bash
# `make deploy`: config check → build for arm64 → sam deploy → outputs → doctor.
#
# Settings (environment or make variables):
#   STACK         CloudFormation stack name (leadbridge)
#   PREFIX        resource name prefix, the template's Prefix (leadbridge)
#   CONFIG        the config file; deployed when it exists (config/leadbridge.toml)
#   SECRET_ARNS   comma-separated ARNs of the secrets the config's connections name
#   SOURCE_SECRET_ARNS  the same for its sources
#   ALERT_EMAIL   an address subscribed to the alerts topic
#   AWS_REGION / AWS_PROFILE  where, and as whom (SSO and credential_process work)
#   SAM           the SAM CLI (make deploy installs it in .venv-deploy)
#   DRY_RUN=1     print each step's command without running it
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=${STACK:-leadbridge}
PREFIX=${PREFIX:-leadbridge}
CONFIG=${CONFIG:-config/leadbridge.toml}
SECRET_ARNS=${SECRET_ARNS:-}
SOURCE_SECRET_ARNS=${SOURCE_SECRET_ARNS:-}
ALERT_EMAIL=${ALERT_EMAIL:-}
SAM=${SAM:-sam}
LEADBRIDGE=(cargo run --quiet -p leadbridge --)

step() { printf '\n== %s\n' "$*"; }
run() {
  printf '+ %s\n' "$*"
  if [ -z "${DRY_RUN:-}" ]; then "$@"; fi
}

step "1/5 config"
if [ -f "$CONFIG" ]; then
  if [ "$CONFIG" != config/leadbridge.toml ]; then
    echo "the config layer packages config/leadbridge.toml: copy $CONFIG there first" >&2
    exit 2
  fi
  run "${LEADBRIDGE[@]}" config check "$CONFIG"
  use_config=true
else
  echo "no $CONFIG: every bot's leads go to the stack's one HubSpot connection"
  use_config=false
fi

step "2/5 build (arm64)"
run rustup target add aarch64-unknown-linux-gnu
run "$SAM" build --template-file infra/template.yaml --build-dir infra/.aws-sam/build --beta-features

step "3/5 deploy stack $STACK"
params=("Prefix=$PREFIX" "UseConfigFile=$use_config")
[ -n "$SECRET_ARNS" ] && params+=("ConnectionSecretArns=$SECRET_ARNS")
[ -n "$SOURCE_SECRET_ARNS" ] && params+=("SourceSecretArns=$SOURCE_SECRET_ARNS")
[ -n "$ALERT_EMAIL" ] && params+=("AlertEmail=$ALERT_EMAIL")
run "$SAM" deploy --template-file infra/.aws-sam/build/template.yaml --stack-name "$STACK" \
  --capabilities CAPABILITY_IAM --resolve-s3 --s3-prefix "$STACK" \
  --no-fail-on-empty-changeset --parameter-overrides "${params[@]}"

step "4/5 outputs"
run "${LEADBRIDGE[@]}" outputs --stack "$STACK"

step "5/5 doctor"
doctor=("${LEADBRIDGE[@]}" doctor --stack "$STACK")
[ "$use_config" = true ] && doctor+=(--config "$CONFIG")
run "${doctor[@]}"
