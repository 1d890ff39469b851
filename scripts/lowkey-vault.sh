#!/usr/bin/env bash
# Fetches the Lowkey Vault app jar (an independent Azure Key Vault emulator) from Maven Central
# once into ~/.cache/amlsecrets/tools and prints its path. Version 3.4.33 is the last release
# whose app runs on Java 17 (4.x needs Java 21, 5.x and later Java 25).
set -euo pipefail
VERSION="${LOWKEY_VAULT_VERSION:-3.4.33}"
DIR="${AMLSECRETS_TOOLS:-$HOME/.cache/amlsecrets/tools}/lowkey-vault"
JAR="$DIR/lowkey-vault-app-$VERSION.jar"
if [[ -s "$JAR" ]]; then echo "$JAR"; exit 0; fi
mkdir -p "$DIR"
command -v mvn >/dev/null || { echo "lowkey-vault.sh: mvn is required (apt-get install maven)" >&2; exit 1; }
if ! mvn -B -q dependency:copy \
    -Dartifact="com.github.nagyesta.lowkey-vault:lowkey-vault-app:$VERSION:jar" \
    -DoutputDirectory="$DIR" -Dmdep.overWriteReleases=false >&2; then
  echo "lowkey-vault.sh: could not fetch com.github.nagyesta.lowkey-vault:lowkey-vault-app:$VERSION from the Maven registry;" >&2
  echo "  put the jar at $JAR (or set LOWKEY_VAULT_JAR) to run the conformance tests" >&2
  exit 1
fi
echo "$JAR"
