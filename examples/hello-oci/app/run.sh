#!/bin/sh
# hello-oci: a decloud sample app. Greets whoever its arguments name and fingerprints its
# dataset and input files, into $IEXEC_OUT/result.txt, which computed.json declares as the
# deterministic output. Only the environment variables of the app contract are used, so the
# same image runs on decloud and on iExec.
set -eu

out="${IEXEC_OUT:?IEXEC_OUT is not set: run me as a decloud (or iExec) app}"
in="${IEXEC_IN:-/iexec_in}"

describe() {
    printf '%s: %s bytes, sha256 %s\n' "$1" "$(wc -c < "$in/$1")" \
        "$(sha256sum < "$in/$1" | cut -d ' ' -f 1)"
}

{
    printf 'Hello, %s!\n' "${*:-world}"
    if [ -n "${IEXEC_DATASET_FILENAME:-}" ]; then
        describe "$IEXEC_DATASET_FILENAME"
    fi
    i=1
    while [ "$i" -le "${IEXEC_INPUT_FILES_NUMBER:-0}" ]; do
        eval "name=\${IEXEC_INPUT_FILE_NAME_$i}"
        describe "$name"
        i=$((i + 1))
    done
} > "$out/result.txt"

printf '{"deterministic-output-path": "%s/result.txt"}\n' "$out" > "$out/computed.json"
echo "hello-oci: wrote $out/result.txt"
