#!/usr/bin/env bash
# Issue 24: the depth table.  1, 2 and 3 hidden layers of 1024 ideal-diode neurons, without and with skip
# crossbars (inputs -> every hidden layer, every hidden layer -> outputs, as experiments/depth_backprop.py),
# on MNIST and Fashion-MNIST: full training sets, scored on the 10,000 test images after every epoch, every
# cell the same number of epochs.  Settings chosen on the validation split (experiments/sweeps/depth/*.toml,
# results in experiments/results/depth/tune_*): batch 4, float32, centred EP, fixed sweeps per phase.
#
#   EPOCHS=2 SEEDS="0" DATASETS="mnist fashion-mnist" CELLS="1H 2H 2H+skip 3H 3H+skip" bash experiments/run_depth.sh
#
# AUGMENT=K moves each training image by up to K pixels along each axis, new random shifts every epoch
# (--augment-shift; the papers compared against do not augment); those runs go to e${EPOCHS}_shiftK.
# FLIP=1 mirrors a random half of the training images left to right, a new half every epoch (--augment-flip;
# for Fashion-MNIST's garments); those runs go to e${EPOCHS}[_shiftK]_flip.
# INIT=amplifier divides the initial conductances behind each amplified hidden layer by the gain squared
# (--g-init-scaling amplifier); those runs go to e${EPOCHS}[_shiftK][_flip]_ampinit.  NUDGED=N relaxes the nudged
# phases of the deep cells with N sweeps, begun with the outputs (--solver-nudged-sweeps; 1 suffices with skips to
# the outputs, benchmarks/bench_deep.py); those runs go to ..._nudgedN.  RELAX=W over-relaxes every sweep by
# omega = W (--solver-relaxation: the same steady state, in fewer sweeps for chains without skips); ..._relaxW.
# DTYPE=float64 solves in double precision (--dtype; the nudge reaching the first layer of a chain without skips
# is below float32's resolution, experiments/depth_chain_probe.py); ..._float64.
# INVERTED=1 gives the deep cells' hidden layers that feed another hidden layer an inverted copy
# (--inverted-copies: hidden-to-hidden crossbars of both signs); those runs go to ..._inv.  VALIDATION=1 trains
# on the first 50,000 training images and scores the last 10,000 after every epoch (--validation; the test set is
# not read), for choosing settings; those go to ..._val.
# BACKWARD=C sets every amplifier's backward current gain to C (--backward-gain; non-reciprocal unless C = GAIN);
# those runs go to ..._backC.  Rates other than the defaults (LR_IN, LR_HID, LR_OUT) add _lrIN-HID-OUT before _val.
# GAIN=G sets every amplifier's gain (--amplifier-gain; default 4); other values add _gainG before _lrIN-HID-OUT.
# TARGET=T sets the output target voltage (--target; default 0.02 V); other values add _targetT.
# INIT=balanced scales the crossbars leaving a hidden layer only as far as their amplified load exceeds the
# layer's inputs (--g-init-scaling balanced; ..._balinit).
#
# Cells 1H-2048 and 1H-3072 are one hidden layer of 2048 or 3072 (the neurons of 2H or 3H in one layer: width
# controls for the deep cells), settings as 1H.  Cell 2H+skip-drop12 is 2H+skip without its hidden-to-hidden
# crossbar (--drop 1-2): two hidden layers side by side, each fed by the inputs and read by the outputs, solved
# and initialised as the deep cells (the control that tells what the 1-2 crossbar adds to 2H+skip); cell
# 3H+skip-drop12-23 is 3H+skip without its 1-2 and 2-3 crossbars (three layers side by side).
# Each (dataset, cell, seed) trains into experiments/results/depth/e$EPOCHS/<dataset>_<cell>_s<seed>/ (model,
# per-epoch log with test accuracy and seconds, curve) and checkpoints every epoch: interrupt it at any time
# and run the same command again to continue (finished runs are skipped).  Two cores: run two copies with
# different DATASETS or CELLS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CIRCUITPROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then export CIRCUITPROP_DATA="$(cd ../shared/data && pwd)"; fi
EPOCHS=${EPOCHS:-2}
SEEDS=${SEEDS:-0}
DATASETS=${DATASETS:-mnist fashion-mnist}
CELLS=${CELLS:-1H 2H+skip 3H+skip 2H 3H}
# learning rates (normalised units): crossbars from the inputs, hidden -> hidden, hidden -> outputs
LR_IN=${LR_IN:-3e6}; LR_HID=${LR_HID:-1e6}; LR_OUT=${LR_OUT:-3e5}
BACKWARD=${BACKWARD:-}  # backward current gain of every amplifier (--backward-gain; unset: A); set: ..._backC
GAIN=${GAIN:-4}      # amplifier gain after every hidden layer (0: none); not 4: ..._gainG
SWEEPS=${SWEEPS:-6}  # relaxation sweeps per phase of the deep cells (1H: 4, as the noise study); not 6: ..._sweepsS
NUDGED=${NUDGED:-}   # sweeps of the nudged phases of the deep cells (--solver-nudged-sweeps); set: ..._nudgedN
INVERTED=${INVERTED:-0}  # 1: inverted copies of the hidden layers that feed another (--inverted-copies); ..._inv
VALIDATION=${VALIDATION:-0}  # 1: train on the first 50,000 training images, score the last 10,000; ..._val
AUGMENT=${AUGMENT:-0}
TARGET=${TARGET:-0.02}  # output target voltage, V (--target); not 0.02: ..._targetT
FLIP=${FLIP:-0}
OUT=experiments/results/depth/e$EPOCHS
if [ "$AUGMENT" != 0 ]; then OUT="${OUT}_shift$AUGMENT"; fi
FLIP_ARG=--no-augment-flip
if [ "$FLIP" != 0 ]; then OUT="${OUT}_flip"; FLIP_ARG=--augment-flip; fi
INIT=${INIT:-none}
if [ "$INIT" != none ]; then OUT="${OUT}_${INIT:0:3}init"; fi
if [ "$SWEEPS" != 6 ]; then OUT="${OUT}_sweeps$SWEEPS"; fi
NUDGED_ARG=""
if [ -n "$NUDGED" ]; then OUT="${OUT}_nudged$NUDGED"; NUDGED_ARG="--solver-nudged-sweeps $NUDGED"; fi
RELAX=${RELAX:-}  # over-relaxation factor omega of every cell's sweeps (--solver-relaxation); set: ..._relaxW
RELAX_ARG=""
if [ -n "$RELAX" ]; then OUT="${OUT}_relax$RELAX"; RELAX_ARG="--solver-relaxation $RELAX"; fi
DTYPE=${DTYPE:-float32}  # floating-point type of the solves (--dtype); float64: ..._float64
if [ "$DTYPE" != float32 ]; then OUT="${OUT}_$DTYPE"; fi
INVERTED_ARG=""
if [ "$INVERTED" != 0 ]; then OUT="${OUT}_inv"; INVERTED_ARG="--inverted-copies"; fi
BACKWARD_ARG=""
if [ -n "$BACKWARD" ]; then OUT="${OUT}_back$BACKWARD"; BACKWARD_ARG="--backward-gain $BACKWARD"; fi
if [ "$GAIN" != 4 ]; then OUT="${OUT}_gain$GAIN"; fi
if [ "$LR_IN $LR_HID $LR_OUT" != "3e6 1e6 3e5" ]; then OUT="${OUT}_lr$LR_IN-$LR_HID-$LR_OUT"; fi
if [ "$TARGET" != 0.02 ]; then OUT="${OUT}_target$TARGET"; fi
DATA_ARG=""
if [ "$VALIDATION" != 0 ]; then OUT="${OUT}_val"; DATA_ARG="--validation 10000"; fi

cell_args() {  # layers, skip crossbars and one rate per crossbar (dense crossbars first, then the skips)
    case "$1" in
        1H) echo "--layers 784-1024-10 --amplifier-gain $GAIN --lr $LR_IN $LR_OUT --solver-sweeps 4" ;;
        1H-2048) echo "--layers 784-2048-10 --amplifier-gain $GAIN --lr $LR_IN $LR_OUT --solver-sweeps 4" ;;
        1H-3072) echo "--layers 784-3072-10 --amplifier-gain $GAIN --lr $LR_IN $LR_OUT --solver-sweeps 4" ;;
        2H) echo "--layers 784-1024-1024-10 --amplifier-gain $GAIN $GAIN --lr $LR_IN $LR_HID $LR_OUT --solver-sweeps $SWEEPS $NUDGED_ARG $INVERTED_ARG" ;;
        3H) echo "--layers 784-1024-1024-1024-10 --amplifier-gain $GAIN $GAIN $GAIN --lr $LR_IN $LR_HID $LR_HID $LR_OUT --solver-sweeps $SWEEPS $NUDGED_ARG $INVERTED_ARG" ;;
        2H+skip) echo "--layers 784-1024-1024-10 --skip 0-2 --skip 1-3 --amplifier-gain $GAIN $GAIN \
--lr $LR_IN $LR_HID $LR_OUT $LR_IN $LR_OUT --solver-sweeps $SWEEPS $NUDGED_ARG $INVERTED_ARG" ;;
        2H+skip-drop12) echo "--layers 784-1024-1024-10 --drop 1-2 --skip 0-2 --skip 1-3 --amplifier-gain $GAIN $GAIN \
--lr $LR_IN $LR_OUT $LR_IN $LR_OUT --solver-sweeps $SWEEPS $NUDGED_ARG" ;;
        3H+skip-drop12-23) echo "--layers 784-1024-1024-1024-10 --drop 1-2 --drop 2-3 --skip 0-2 --skip 0-3 --skip 1-4 \
--skip 2-4 --amplifier-gain $GAIN $GAIN $GAIN --lr $LR_IN $LR_OUT $LR_IN $LR_IN $LR_OUT $LR_OUT --solver-sweeps $SWEEPS $NUDGED_ARG" ;;
        3H+skip) echo "--layers 784-1024-1024-1024-10 --skip 0-2 --skip 0-3 --skip 1-4 --skip 2-4 \
--amplifier-gain $GAIN $GAIN $GAIN --lr $LR_IN $LR_HID $LR_HID $LR_OUT $LR_IN $LR_IN $LR_OUT $LR_OUT --solver-sweeps $SWEEPS $NUDGED_ARG $INVERTED_ARG" ;;
        *) echo "unknown cell $1 (1H 1H-2048 1H-3072 2H 2H+skip 2H+skip-drop12 3H 3H+skip 3H+skip-drop12-23)" >&2; exit 2 ;;
    esac
}

for dataset in $DATASETS; do
    for cell in $CELLS; do
        for seed in $SEEDS; do
            dir="$OUT/${dataset}_${cell}_s$seed"
            if [ -f "$dir/done" ]; then echo "$dir: done"; continue; fi
            mkdir -p "$dir"
            # shellcheck disable=SC2046
            .venv/bin/circuitprop train --dataset "$dataset" $(cell_args "$cell") --batch-size 4 --dtype "$DTYPE" \
                --epochs "$EPOCHS" --seed "$seed" --target "$TARGET" $DATA_ARG $BACKWARD_ARG $RELAX_ARG --augment-shift "$AUGMENT" "$FLIP_ARG" --g-init-scaling "$INIT" --resume -o "$dir/model.npz"
            touch "$dir/done"
        done
    done
done
