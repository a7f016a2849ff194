#!/bin/sh
# Code or prose? Text classification by competing character models: one model per class, and
# each line goes to the model that finds it least surprising (`charrnn eval --per line` with
# two checkpoints; its `best` column). Everything comes from this machine: English prose (the
# licence texts in /usr/share/common-licenses) and Python source (the standard library).
# Whole files are held out for the test. Each model trains for 2 minutes on one thread.
#
#   sh examples/code_vs_prose.sh            # CHARRNN="python -m charrnn" to run from a clone
#
# Byte models (--bytes): both models then have the same vocabulary, so no character is ever
# unknown to one of them (a prose model that never saw '{' finds it very surprising, which is
# the point; a character model could only skip it).
set -eu
CHARRNN=${CHARRNN:-charrnn}
PY=${PYLIB:-/root/.pyenv/versions/3.11.7/lib/python3.11}
LIC=${LICENSES:-/usr/share/common-licenses}
OUT=${OUT:-$(mktemp -d)}  # checkpoints, held-out lines and their scores
mkdir -p "$OUT"
# a small model (2x128, B32 T64): many steps in two minutes
TRAIN="--bytes --hidden 128 --batch 32 --seq 64 --max-time 2m --threads 1 --test-fraction 0"
TRAIN="$TRAIN --quiet --out $OUT --force"

# prose: every licence but two; code: three packages of the standard library (.py files only)
$CHARRNN train $LIC/GPL-1 $LIC/GPL-2 $LIC/GPL-3 $LIC/LGPL-2 $LIC/LGPL-2.1 $LIC/LGPL-3 \
    $LIC/GFDL-1.2 $LIC/GFDL-1.3 $LIC/MPL-1.1 $LIC/Artistic $LIC/BSD $LIC/CC0-1.0 \
    --name prose $TRAIN > "$OUT/prose.log"
$CHARRNN train $PY/email $PY/json $PY/http --glob '*.py' --name code $TRAIN > "$OUT/code.log"

# held out: the non-blank lines of two other licences and of two other modules
grep -hv '^[[:space:]]*$' $LIC/Apache-2.0 $LIC/MPL-2.0 > "$OUT/prose.txt"
grep -hv '^[[:space:]]*$' $PY/textwrap.py $PY/shlex.py > "$OUT/code.txt"

echo "checkpoints and scores in $OUT"
for class in prose code; do
    $CHARRNN eval --per line "$OUT/$class.txt" -c "$OUT/prose-best.npz" -c "$OUT/code-best.npz" \
        > "$OUT/$class.tsv"
    # columns: line, chars, prose (bits/byte), code (bits/byte), best, text
    awk -F'\t' -v want="$class" 'NR > 1 { n++; right += ($5 == want) }
        END { printf "%s lines: %d of %d classified right (%.1f%%)\n", want, right, n, 100 * right / n }' \
        "$OUT/$class.tsv"
done
