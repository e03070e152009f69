#!/usr/bin/env bash
# Installs what the tests need besides Rust, and only what is missing, so it is quick to run
# again: the wasm32-wasip2 target (the guests), ffmpeg (ffprobe and the PSNR check read the
# videos), Debian's Chromium and Node.js (a real browser plays them), and playwright-core from
# tests/browser/package-lock.json (drives that browser; never a downloaded one).
# tests/run.sh calls this, and so does .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 --toolchain 1.95.0 >/dev/null

missing=()
command -v ffprobe >/dev/null || missing+=(ffmpeg)
# tests/browser.rs and play.mjs take another browser from $CHROMIUM; Debian's by default.
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# playwright-core needs Node.js 20 or later (Debian 12's own package is 18).
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "tests/setup.sh: Node.js $(node --version) is too old for playwright-core; install Node.js 20 or later" >&2
  exit 1
fi

if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
