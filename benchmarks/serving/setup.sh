#!/usr/bin/env bash
# Create the side venvs the serving benchmark needs, next to this script:
#   .venv-mlflow   MLflow's scoring server   (requirements-mlflow.txt)
#   .venv-bentoml  BentoML                   (requirements-bentoml.txt)
#   .venv-tools    py-spy, for --profile     (requirements-tools.txt)
# and install wrk from Debian's packages if it is missing. Safe to re-run: a venv whose
# requirements are already satisfied is left alone. A venv that fails to install is
# reported and skipped; run.py then reports its cells as "n/a (...)".
set -u
here="$(cd "$(dirname "$0")" && pwd)"
# The same interpreter as the project venv, so every server runs the same Python.
python="${PYTHON:-$("$here/../../.venv/bin/python" -c 'import sys; print(sys._base_executable)')}"

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
    else
        echo "wrk is missing: sudo apt-get install -y wrk" >&2
    fi
fi

status=0
for name in mlflow bentoml tools; do
    venv="$here/.venv-$name"
    requirements="$here/requirements-$name.txt"
    stamp="$venv/.installed"
    if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
        echo "$venv: up to date"
        continue
    fi
    echo "$venv: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')"
    if "$python" -m venv "$venv" \
        && "$venv/bin/python" -m pip install --quiet --upgrade pip \
        && "$venv/bin/python" -m pip install --quiet -r "$requirements"; then
        cp "$requirements" "$stamp"
    else
        echo "$venv: installation FAILED" >&2
        status=1
    fi
done
exit $status
