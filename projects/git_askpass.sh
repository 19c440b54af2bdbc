#!/bin/sh
# GIT_ASKPASS helper (projects.credentials.git_env): git runs it with its prompt as the one
# argument and reads the answer from stdout. The values come from variables set only in the
# environment of the one git process that needs them; nothing is on a command line or on disk.
case "$1" in
  Username*) printf '%s\n' "$KARGO_GIT_USERNAME" ;;
  Password*) printf '%s\n' "$KARGO_GIT_PASSWORD" ;;
  *) exit 1 ;;
esac
