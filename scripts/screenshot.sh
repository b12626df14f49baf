#!/usr/bin/env bash
# Starts Easel under Xvfb (Mesa's lavapipe Vulkan for wgpu) with the tiny fixture model and a
# document, and saves screenshots of the real window:
#   OUT/app-mask.png     a painted inpainting mask on the GPU canvas
#   OUT/app-refined.png  the picture after an only-masked refine of that mask (made with
#                        `easel generate --inpaint-area only-masked`, the same job the Refine button runs)
#   OUT/app-1000x700.png the same window at 1000×700 (the side panels shrink before the canvas)
#   OUT/app-staged.png   two inpainting results staged over the picture (Ctrl+Enter pressed twice
#                        with xdotool), the staging bar with ‹ › Accept Discard
# Needs: xvfb xauth imagemagick mesa-vulkan-drivers libvulkan1 xdotool (see README). Usage:
#   scripts/screenshot.sh [OUT_DIR]    (default: assets/screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-assets/screenshots}
mkdir -p "$OUT"
BIN=${EASEL_BIN:-target/release/easel}
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Data folder: the tiny model (its yaml points at the fixture CLIP config) and the open document.
DATA=$WORK/data
mkdir -p "$DATA/models" "$DATA/document"
cp tests/fixtures/models/tiny-sd15.safetensors "$DATA/models/"
sed "s|version: tiny-clip|version: $PWD/tests/fixtures/models/tiny-clip|" \
    tests/fixtures/models/tiny-sd15.yaml > "$DATA/models/tiny-sd15.yaml"
INIT=tests/fixtures/ref/img2img/init.png
MASK=tests/fixtures/ref/img2img/mask.png
cp "$INIT" "$DATA/document/image.png"
cp "$MASK" "$DATA/document/mask.png"

shot() { # name [WIDTHxHEIGHT] [KEYS...]: KEYS are xdotool key names pressed (2 s apart) before the shot
    local size=${2:-1280x800}
    local keys=("${@:3}")
    export HOME=$WORK/home EASEL_DATA_DIR=$DATA EASEL_WINDOW_SIZE=$size
    mkdir -p "$HOME"
    Xvfb :77 -screen 0 "${size}x24" >/dev/null 2>&1 &
    local xvfb=$!
    sleep 1
    DISPLAY=:77 WGPU_BACKEND=vulkan "$BIN" >"$WORK/$1.log" 2>&1 &
    local app=$!
    sleep "${EASEL_SHOT_WAIT:-8}"
    if [ ${#keys[@]} -gt 0 ]; then
        # No window manager: give the window the keyboard focus by hand.
        local window
        window=$(DISPLAY=:77 xdotool search --name Easel | head -1)
        DISPLAY=:77 xdotool windowfocus --sync "$window"
        for key in "${keys[@]}"; do
            DISPLAY=:77 xdotool key "$key"
            sleep 2
        done
        sleep "${EASEL_SHOT_JOB_WAIT:-6}"
    fi
    DISPLAY=:77 import -window root "$OUT/$1.png"
    kill "$app" 2>/dev/null || true
    wait "$app" 2>/dev/null || true
    kill "$xvfb" 2>/dev/null || true
    wait "$xvfb" 2>/dev/null || true
    grep -i "first frame\|error\|panic" "$WORK/$1.log" || true
    echo "wrote $OUT/$1.png"
}

shot app-mask
"$BIN" generate --model "$DATA/models/tiny-sd15.safetensors" --prompt "a red barn in a field" \
    --width 64 --height 64 --steps 8 --seed 7 --init "$INIT" --mask "$MASK" \
    --inpaint-area only-masked --padding 32 --strength 0.4 --out "$WORK/refined.png" >/dev/null
cp "$WORK/refined.png" "$DATA/document/image.png"
shot app-refined
shot app-1000x700 1000x700

# Staged results: the refined picture open with its mask, image to image with the tiny model
# selected; Ctrl+Enter twice queues two inpaints whose results are staged over the picture.
cp "$INIT" "$DATA/document/image.png"
cat > "$DATA/settings.json" <<JSON
{"selected_model": "$DATA/models/tiny-sd15.safetensors", "mode": "ImageToImage",
 "params": {"prompt": "a red barn in a field", "steps": 8, "seed": 7}}
JSON
shot app-staged 1280x800 ctrl+Return ctrl+Return
