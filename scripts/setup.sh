# Shared by the test command and the dev cluster (scripts/test.sh, scripts/dev.sh): installs
# what the build needs on a fresh machine and points both at one build cache, so whichever
# runs first compiles RocksDB for both.

# RocksDB's bindings need libclang (bindgen) and a C++ compiler.
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  echo "installing clang and libclang-dev"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-dev >/dev/null
fi

if ! command -v curl >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl >/dev/null
fi

# Keep the build cache outside the clone: RocksDB takes ~12 minutes to compile on 2 cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian-target}"
